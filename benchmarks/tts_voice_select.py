"""Which of a multi-speaker duration model's training voices reads each language most clearly? Whisper-base CER on
development sentences (never the benchmark's), voice by voice, to choose the model's default voice per language.

    .venv/bin/python benchmarks/tts_voice_select.py RUN --n 6 --report data/aligned_synth_ml/report.json \
        --json runs/voice_select.json
    speechlm acoustic export RUN -o speechlm/assets/tts_multilingual --lang-voice it=NAME ...   # the choices

Sentences: ``--n`` per language from the offline pool drawn with seed 3 (``tts_lang_cer.free_sentences``; the
benchmark draws with seed 7 and training corpora leave both out). Candidates per language: every real voice
(a speaker name without an engine prefix) and the ``--synthetic`` synthetic voices with the most training
speech. The chosen voice has the lowest median sentence CER (ties: the corpus CER); the table prints both.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

SR = 16000


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", help="a multi-speaker duration model (run, checkpoint or asset name)")
    p.add_argument("--n", type=int, default=6, help="development sentences per language (default 6)")
    p.add_argument("--synthetic", type=int, default=3, help="synthetic voices tried per language (default 3)")
    p.add_argument("--report", action="append", default=[], metavar="REPORT_JSON",
                   help="an `acoustic align-corpus` report.json: its kept minutes rank the synthetic voices "
                        "(repeatable; without one they are taken in name order)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--json", default=None, help="write the per-voice CERs and the choices here")
    args = p.parse_args()

    import torch
    from tts_lang_cer import free_sentences

    from speechlm.eval.whisper import WhisperJudge
    from speechlm.tasks.tts_duration import DurationTTS
    from speechlm.text.wer import char_errors

    torch.set_num_threads(args.threads)
    tts = DurationTTS.load(args.model)
    extra = tts.am.meta.get("extra") or {}
    speakers, langs_of = list(extra.get("speakers") or []), extra.get("speaker_langs") or {}
    if not speakers:
        raise SystemExit(f"{args.model} has one voice: nothing to choose")
    minutes: dict[str, float] = {}  # training minutes per voice, from the corpus reports
    for r in args.report:
        for key, m in json.loads(Path(r).read_text())["kept_minutes"].items():
            minutes[key.split("/", 1)[1]] = m
    judge = WhisperJudge.load("base", threads=args.threads)
    out: dict[str, dict] = {}
    for lang in tts.am.langs:
        own = [s for s in speakers if langs_of.get(s) == lang]
        real = [s for s in own if ":" not in s]
        synth = sorted((s for s in own if ":" in s), key=lambda s: (-minutes.get(s, 0.0), s))[: args.synthetic]
        texts = free_sentences(lang, args.n, seed=3)
        rows = {}
        for name in real + synth:
            i = speakers.index(name)
            errs, refs, per = 0, 0, []
            for t in texts:
                feat = np.concatenate([tts.features(ids, 1.0, None, lang, speaker=i)[0] for _, ids in
                                       tts.text_chunks(t, lang)])
                wav = np.concatenate(list(tts.render(feat)[1]))
                c = char_errors(t, judge.transcribe(wav, SR, lang), lang)
                errs, refs = errs + c.errors, refs + c.ref_len
                per.append(c.errors / max(c.ref_len, 1))
            rows[name] = {"cer": errs / max(refs, 1), "cer_median": float(np.median(per)), "real": name in real}
            print(f"{lang} {name:45s} CER {rows[name]['cer']:.3f}  median {rows[name]['cer_median']:.3f}",
                  flush=True)
        best = min(rows, key=lambda s: (rows[s]["cer_median"], rows[s]["cer"]))
        out[lang] = {"voices": rows, "chosen": best, "default": extra.get("lang_voices", {}).get(lang)}
        print(f"{lang}: {best}", flush=True)
    print(" ".join(f"--lang-voice {lang}={v['chosen']}" for lang, v in out.items()))
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps({"command": " ".join(["benchmarks/tts_voice_select.py", *sys.argv[1:]]),
                                               "model": tts.am.model_id, "langs": out}, indent=1,
                                              ensure_ascii=False) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
