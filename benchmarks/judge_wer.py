"""How good and how fast each WER judge is: Whisper base (beam 5, and greedy), Whisper tiny.en, pocketsphinx.

    .venv/bin/python benchmarks/judge_wer.py --out runs/judge_wer

Sets (English, held out: never trained on):
- ``asterisk``: ``--n`` prompts evenly spaced over data/real/asterisk_core_en (one real voice, 8 kHz telephone
  recordings, upsampled to 16 kHz);
- ``pocketsphinx-testdata``: data/real/pocketsphinx_testdata (real read speech, 16 kHz), all of it;
- ``flite``: ``--flite`` sentences synthesised with ``flite -voice slt`` (0 to skip).
A set whose manifest is missing is left out. Each clip is transcribed on one thread; seconds per clip exclude
loading. Corpus WER uses the project's English normaliser (:mod:`speechlm.text.wer`). Writes OUT/results.json
and prints a markdown table.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SETS = {
    "asterisk": ROOT / "data/real/asterisk_core_en/manifest.jsonl",
    "pocketsphinx-testdata": ROOT / "data/real/pocketsphinx_testdata/manifest.jsonl",
}
FLITE_SENTENCES = [
    "The birch canoe slid on the smooth planks.",
    "Glue the sheet to the dark blue background.",
    "It is easy to tell the depth of a well.",
    "These days a chicken leg is a rare dish.",
    "Rice is often served in round bowls.",
    "The juice of lemons makes fine punch.",
    "The box was thrown beside the parked truck.",
    "The hogs were fed chopped corn and garbage.",
    "Four hours of steady work faced us.",
    "A large size in stockings is hard to sell.",
    "The boy was there when the sun rose.",
    "A rod is used to catch pink salmon.",
    "The source of the huge river is the clear spring.",
    "Kick the ball straight and follow through.",
    "Help the woman get back to her feet.",
    "A pot of tea helps to pass the evening.",
    "Smoky fires lack flame and heat.",
    "The soft cushion broke the man's fall.",
    "The salt breeze came across from the sea.",
    "The girl at the booth sold fifty bonds.",
]
JUDGES = ("whisper-base", "whisper-base-greedy", "whisper-tiny.en", "pocketsphinx")


def _clips(name: str, n: int, tmp: Path) -> list[tuple[str, str]]:
    """(audio path, reference text) pairs of one set."""
    if name == "flite":
        out = []
        for i, text in enumerate(FLITE_SENTENCES[:n]):
            wav = tmp / f"flite_{i:02d}.wav"
            subprocess.run(["flite", "-voice", "slt", "-t", text, "-o", str(wav)], check=True, capture_output=True)
            out.append((str(wav), text))
        return out
    from speechlm.data.manifest import manifest_root, read_manifest

    utts = [u for u in read_manifest(SETS[name]) if u.lang == "en"]
    if n and len(utts) > n:
        utts = [utts[i * len(utts) // n] for i in range(n)]
    root = manifest_root(SETS[name])
    return [(str(u.audio_path(root)), u.text) for u in utts]


def _judge(name: str):
    """(load seconds, transcribe(wav16) -> str)."""
    t0 = time.perf_counter()
    if name.startswith("whisper-"):
        from speechlm.eval.whisper import WhisperJudge

        model = "base" if name.startswith("whisper-base") else "tiny.en"
        j = WhisperJudge.load(model, threads=1, beam_size=1 if name.endswith("greedy") else 5)
        fn = lambda x: j.transcribe(x, 16000, "en")  # noqa: E731
    else:
        from speechlm.eval.asr import get_transcriber

        fn = get_transcriber(name, None, "en").transcribe
    return time.perf_counter() - t0, fn


def main() -> int:
    import torch

    from speechlm.audio.io import load_audio
    from speechlm.text.wer import NORMALIZER, word_errors

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=60, help="asterisk prompts (evenly spaced; 0 = all)")
    p.add_argument("--flite", type=int, default=20, help="flite sentences (0 = none)")
    p.add_argument("--judge", action="append", choices=JUDGES, help="judges to run (default all)")
    p.add_argument("--out", required=True)
    args = p.parse_args()
    torch.set_num_threads(1)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="judge_wer_"))
    sets = {k: _clips(k, args.n if k == "asterisk" else 0, tmp) for k, v in SETS.items() if v.is_file()}
    if args.flite and shutil.which("flite"):
        sets["flite"] = _clips("flite", args.flite, tmp)
    audio = {k: [(load_audio(a, sr=16000)[0][0], t) for a, t in v] for k, v in sets.items()}
    rows = []
    for judge in args.judge or JUDGES:
        load_s, fn = _judge(judge)
        for set_name, clips in audio.items():
            errors = words = 0
            seconds = 0.0
            hyps = []
            for wav, text in clips:
                t0 = time.perf_counter()
                hyp = fn(wav)
                seconds += time.perf_counter() - t0
                c = word_errors(text, hyp, "en")
                errors, words = errors + c.errors, words + c.ref_len
                hyps.append(hyp)
            audio_s = sum(len(w) for w, _ in clips) / 16000
            row = dict(judge=judge, set=set_name, clips=len(clips), wer=round(errors / words, 4), words=words,
                       s_per_clip=round(seconds / len(clips), 3), rtf=round(seconds / audio_s, 3),
                       load_s=round(load_s, 2), hyps=hyps)
            rows.append(row)
            print(f"{judge:>20s} {set_name:>22s}  WER {row['wer']:.3f}  {row['s_per_clip']:.2f} s/clip", flush=True)
    shutil.rmtree(tmp, ignore_errors=True)
    meta = dict(normalizer=NORMALIZER, threads=1, n_asterisk=args.n, flite=args.flite,
                refs={k: [t for _, t in v] for k, v in sets.items()})
    (out / "results.json").write_text(json.dumps(dict(meta=meta, rows=rows), indent=1, ensure_ascii=False))
    print("\n| judge | set | clips | WER | s/clip (1 thread) | RTF |\n|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['judge']} | {r['set']} | {r['clips']} | {r['wer']:.3f} | {r['s_per_clip']:.2f} | {r['rtf']:.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
