"""TTS in the corpus's other languages (issue 19): Whisper-base CER of our generators beside espeak-ng and the
held-out recordings, on the same sentences, in one run.

    .venv/bin/python benchmarks/tts_lang_cer.py --json          # 20 + 20 sentences per language, ~10 min on a core
    .venv/bin/python benchmarks/tts_lang_cer.py --json --previous-lm OLD_LM_DIR   # + an earlier LM, same run

Held-out sentences: ``--n`` evenly spaced prompts of at least 4 words from asterisk-core-sounds-{es,fr,it} (held
out: never trained on; the recordings are the ground truth, 8 kHz telephone speech). The trainable
asterisk-prompt voices read the same prompt list, so the multilingual model's corpus leaves these sentences out
(those of ``--n`` 20 and 40: ``--list-heldout FILE`` writes them, with the free-text sentences below, for
``speechlm acoustic align-corpus --exclude-texts FILE``). Systems: ``ground_truth`` (the
recordings), ``espeak_ng`` (the Debian formant synthesiser, an anchor that speaks every language), ``ours``
(what ``speechlm tts --lang xx`` uses: the shipped multilingual duration model, ``--ours MODEL`` another),
``lm_default`` (the codec LM, default voice, seed 0; ``--previous-lm`` adds another codec LM beside it as
``lm_previous``), and ``tts_duration`` (the English default, which refuses them; the row says so).

Free text: ``--free`` sentences per language (cs, es, fr, it, nl) from the offline sentence pool, none of them a
real recording's transcript (and left out of synthetic training corpora by ``--list-heldout``), for ``ours`` and
``espeak_ng`` (no recordings exist): how the model reads what it never heard, the prompts' narrow vocabulary aside.
Whisper base is told the language. CER drops spaces and normalises the texts (``speechlm.text.wer``); corpus CER
(errors over reference characters) and the median of the sentences' CERs (one sentence on which Whisper loops,
writing far more than was said, cannot dominate it). Writes OUT/results.json (``--json``: also
docs/results/tts_lang_cer__default.json, rendered into docs/tts.md) and a listening page per language,
OUT/LANG/index.html (every system's audio side by side).
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

import numpy as np

SR = 16000
LANGS = ("es", "fr", "it")
FREE_LANGS = ("cs", "es", "fr", "it", "nl")
ESPEAK_VOICES = {"cs": "cs", "es": "es", "fr": "fr", "it": "it", "nl": "nl"}
TRAIN_MANIFESTS = ("data/real/asterisk_prompts/manifest.jsonl", "data/real/fillets_cs/manifest.jsonl",
                   "data/real/fillets_nl/manifest.jsonl")


def free_sentences(lang: str, n: int, seed: int = 7) -> list[str]:
    """``n`` sentences of 4-20 words in ``lang`` from the offline pool, none a training transcript."""
    from speechlm.data.manifest import read_manifest
    from speechlm.data.sentences import SentenceSampler, norm_text

    seen = {norm_text(u.text) for m in TRAIN_MANIFESTS if Path(m).is_file() for u in read_manifest(m) if u.text}
    sampler, out = SentenceSampler(lang, seed), []
    for _ in range(50 * n):
        if len(out) >= n:
            break
        t = sampler.take(1)[0].text
        if 4 <= len(t.split()) <= 20 and norm_text(t) not in seen and t not in out:
            out.append(t)
    return out


def speak_espeak(text: str, lang: str) -> np.ndarray:
    from speechlm.audio.io import load_audio

    with tempfile.NamedTemporaryFile(suffix=".wav") as f:
        subprocess.run(["espeak-ng", "-v", ESPEAK_VOICES[lang], "-w", f.name, text], check=True)
        return load_audio(f.name, sr=SR)[0][0]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=20, help="sentences per language")
    p.add_argument("--out", default="runs/tts_lang_cer")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--json", action="store_true", help="also write docs/results/tts_lang_cer__default.json")
    p.add_argument("--previous-lm", default=None, help="another codec LM (name or folder) measured beside lm_default")
    p.add_argument("--ours", default=None, help="the duration model measured as ours (default: what `speechlm tts "
                   "--lang xx` loads)")
    p.add_argument("--free", type=int, default=20, help="free-text sentences per language (0: none)")
    p.add_argument("--no-lm", action="store_true", help="leave the codec LM out (faster)")
    p.add_argument("--list-heldout", default=None, metavar="FILE",
                   help="only write the held-out sentences of --n 20 and 40, the free-text ones of --free up to 40 "
                        "and the development ones of tts_voice_select.py, one per line, to FILE (what a training "
                        "corpus must leave out) and exit")
    args = p.parse_args()
    if args.list_heldout:
        from tts_eval import pick_sentences

        texts: list[str] = []
        for lang in LANGS:
            for n in (20, 40):
                texts += [u.text for u in pick_sentences(f"data/real/asterisk_core_{lang}/manifest.jsonl", n)
                          if u.text not in texts]
        for lang in FREE_LANGS:  # the free-text sentences of --free up to 40, and tts_voice_select's (seed 3)
            texts += [t for t in free_sentences(lang, 40) + free_sentences(lang, 10, seed=3) if t not in texts]
        Path(args.list_heldout).write_text("".join(t + "\n" for t in texts), encoding="utf-8")
        print(f"{args.list_heldout}: {len(texts)} sentences")
        return 0
    if args.n < 1 or args.free < 0:
        p.error("--n must be at least 1 and --free at least 0")

    import torch
    from tts_eval import pick_sentences

    from speechlm.audio.io import load_audio, save_audio
    from speechlm.data.manifest import manifest_root
    from speechlm.eval.whisper import WhisperJudge
    from speechlm.tasks.tts import TTS, TTSInputError
    from speechlm.text.wer import char_errors

    torch.set_num_threads(args.threads)
    out = Path(args.out)
    lms = {} if args.no_lm else {"lm_default": TTS.load("lm_default")}
    if args.previous_lm:
        lms["lm_previous"] = TTS.load(args.previous_lm)
    default = TTS.load()
    ours = TTS.load(args.ours, lang=LANGS[0])
    if not hasattr(ours, "am") or LANGS[0] not in ours.am.langs:
        raise SystemExit(f"{ours} does not speak {LANGS[0]}: no multilingual duration model to measure")
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
        counts = {s: [0, 0] for s in ("ground_truth", "espeak_ng", "ours", *lms)}
        per: dict[str, list[float]] = {s: [] for s in counts}  # each sentence's CER
        gen_s = {s: 0.0 for s in ("espeak_ng", "ours", *lms)}
        audio_s = dict(gen_s)
        for u in sents:
            for s in counts:
                t0 = time.perf_counter()
                if s == "ground_truth":
                    wav = load_audio(u.audio_path(root), sr=SR)[0][0]
                elif s == "espeak_ng":
                    wav = speak_espeak(u.text, lang)
                elif s == "ours":
                    wav = ours.generate(u.text, lang=lang).wav
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
                per[s].append(c.errors / max(c.ref_len, 1))
        rows[lang] = {"n": len(sents), "cer": {s: e / max(r, 1) for s, (e, r) in counts.items()},
                      "cer_median": {s: float(np.median(v)) for s, v in per.items()},
                      "rtf": {s: gen_s[s] / max(audio_s[s], 1e-9) for s in gen_s},
                      "tts_duration": refused or "generated (unexpected: it is English only)"}
        print(lang, {s: round(v, 3) for s, v in rows[lang]["cer"].items()}, flush=True)
        from codec_intelligibility import write_page

        write_page(out / lang, sents, list(counts), [f"CER {s}: {v:.3f}" for s, v in rows[lang]["cer"].items()],
                   n=len(sents), title=f"TTS in {lang}: held-out sentences")
    free: dict[str, dict] = {}
    for lang in FREE_LANGS if args.free else ():
        counts = {s: [0, 0] for s in ("espeak_ng", "ours")}
        per = {s: [] for s in counts}
        gen_s = {s: 0.0 for s in counts}
        audio_s = dict(gen_s)
        texts = free_sentences(lang, args.free)
        for k, text in enumerate(texts):
            for s in counts:
                t0 = time.perf_counter()
                wav = speak_espeak(text, lang) if s == "espeak_ng" else ours.generate(text, lang=lang).wav
                gen_s[s] += time.perf_counter() - t0
                audio_s[s] += len(wav) / SR
                (out / "free" / lang / s).mkdir(parents=True, exist_ok=True)
                save_audio(out / "free" / lang / s / f"{k:03d}.wav", wav, SR)
                c = char_errors(text, judge.transcribe(wav, SR, lang), lang)
                counts[s][0] += c.errors
                counts[s][1] += c.ref_len
                per[s].append(c.errors / max(c.ref_len, 1))
        free[lang] = {"n": len(texts), "cer": {s: e / max(r, 1) for s, (e, r) in counts.items()},
                      "cer_median": {s: float(np.median(v)) for s, v in per.items()},
                      "rtf": {s: gen_s[s] / max(audio_s[s], 1e-9) for s in gen_s}}
        print("free", lang, {s: round(v, 3) for s, v in free[lang]["cer"].items()}, flush=True)
    res = {"kind": "tts_lang_cer", "command": shlex.join(["benchmarks/tts_lang_cer.py", *sys.argv[1:]]),
           "judge": "whisper-base", "threads": args.threads, "sentences": "asterisk-core-sounds-{lang} (held out)",
           "models": {**{s: t.lm.model_id for s, t in lms.items()}, "tts_duration": default.am.model_id,
                      "ours": ours.am.model_id},
           "rows": rows, "free": free}
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(res, indent=2, ensure_ascii=False) + "\n")
    if args.json:
        Path("docs/results/tts_lang_cer__default.json").write_text(json.dumps(res, indent=2, ensure_ascii=False)
                                                                     + "\n")
    return 0 if rows else 1


if __name__ == "__main__":
    raise SystemExit(main())
