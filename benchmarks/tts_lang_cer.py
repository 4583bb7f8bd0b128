"""TTS in the corpus's other languages (issue 19): Whisper-base CER of our generators beside espeak-ng and the
held-out recordings, on the same sentences, in one run.

    .venv/bin/python benchmarks/tts_lang_cer.py --json          # 20 sentences per language, ~8 min on one core
    .venv/bin/python benchmarks/tts_lang_cer.py --json --previous-lm OLD_LM_DIR   # + an earlier LM, same run

Sentences: ``--n`` evenly spaced prompts of at least 4 words from asterisk-core-sounds-{es,fr,it} (held out:
never trained on; the recordings are the ground truth, 8 kHz telephone speech). Whisper base is told the
language. Systems: ``ground_truth`` (the recordings), ``espeak_ng`` (the Debian formant synthesiser, an anchor
that speaks every language), ``lm_default`` (our codec LM, the one generator here that takes these languages,
default voice, seed 0; ``--previous-lm`` adds another codec LM beside it as ``lm_previous``), and
``tts_duration`` (the default model: English only, so it refuses them and the row says so rather than scoring
nothing). CER drops spaces and normalises the texts (``speechlm.text.wer``).
Writes OUT/results.json (``--json``: also docs/results/tts_lang_cer__default.json, rendered into docs/tts.md).
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SR = 16000
LANGS = ("es", "fr", "it")
ESPEAK_VOICES = {"es": "es", "fr": "fr", "it": "it"}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=20, help="sentences per language")
    p.add_argument("--out", default="runs/tts_lang_cer")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--json", action="store_true", help="also write docs/results/tts_lang_cer__default.json")
    p.add_argument("--previous-lm", default=None, help="another codec LM (name or folder) measured beside lm_default")
    args = p.parse_args()
    if args.n < 1:
        p.error("--n must be at least 1")

    import torch
    from tts_eval import pick_sentences

    from speechlm.audio.io import load_audio, save_audio
    from speechlm.data.manifest import manifest_root
    from speechlm.eval.whisper import WhisperJudge
    from speechlm.tasks.tts import TTS, TTSInputError
    from speechlm.text.wer import char_errors

    torch.set_num_threads(args.threads)
    out = Path(args.out)
    lms = {"lm_default": TTS.load("lm_default")}
    if args.previous_lm:
        lms["lm_previous"] = TTS.load(args.previous_lm)
    default = TTS.load()
    judge = WhisperJudge.load("base", threads=args.threads)
    rows: dict[str, dict] = {}
    for lang in LANGS:
        manifest = f"data/real/asterisk_core_{lang}/manifest.jsonl"
        if not Path(manifest).is_file():
            print(f"skipping {lang}: {manifest} is missing (scripts/get_real_speech.sh)", file=sys.stderr)
            continue
        sents, root = pick_sentences(manifest, args.n), manifest_root(manifest)
        refused = None
        try:
            default.generate(sents[0].text, lang=lang)
        except TTSInputError as exc:
            refused = str(exc).splitlines()[0]
        counts = {s: [0, 0] for s in ("ground_truth", "espeak_ng", *lms)}
        gen_s = {s: 0.0 for s in ("espeak_ng", *lms)}
        audio_s = dict(gen_s)
        for u in sents:
            for s in counts:
                t0 = time.perf_counter()
                if s == "ground_truth":
                    wav = load_audio(u.audio_path(root), sr=SR)[0][0]
                elif s == "espeak_ng":
                    with tempfile.NamedTemporaryFile(suffix=".wav") as f:
                        subprocess.run(["espeak-ng", "-v", ESPEAK_VOICES[lang], "-w", f.name, u.text], check=True)
                        wav = load_audio(f.name, sr=SR)[0][0]
                else:
                    wav = lms[s].generate(u.text, lang=lang, seed=0).wav
                if s in gen_s:
                    gen_s[s] += time.perf_counter() - t0
                    audio_s[s] += len(wav) / SR
                (out / lang / s).mkdir(parents=True, exist_ok=True)
                save_audio(out / lang / s / f"{u.id}.wav", wav, SR)
                c = char_errors(u.text, judge.transcribe(wav, SR, lang), lang)
                counts[s][0] += c.errors
                counts[s][1] += c.ref_len
        rows[lang] = {"n": len(sents), "cer": {s: e / max(r, 1) for s, (e, r) in counts.items()},
                      "rtf": {s: gen_s[s] / max(audio_s[s], 1e-9) for s in gen_s},
                      "tts_duration": refused or "generated (unexpected: it is English only)"}
        print(lang, {s: round(v, 3) for s, v in rows[lang]["cer"].items()}, flush=True)
    res = {"kind": "tts_lang_cer", "command": shlex.join(["benchmarks/tts_lang_cer.py", *sys.argv[1:]]),
           "judge": "whisper-base", "threads": args.threads, "sentences": "asterisk-core-sounds-{lang} (held out)",
           "models": {**{s: t.lm.model_id for s, t in lms.items()}, "tts_duration": default.am.model_id},
           "rows": rows}
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(res, indent=2, ensure_ascii=False) + "\n")
    if args.json:
        Path("docs/results/tts_lang_cer__default.json").write_text(json.dumps(res, indent=2, ensure_ascii=False)
                                                                     + "\n")
    return 0 if rows else 1


if __name__ == "__main__":
    raise SystemExit(main())
