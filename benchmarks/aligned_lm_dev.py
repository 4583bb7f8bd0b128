"""Development check of the aligned codec LM: Whisper-base WER on sentences that are neither training nor test
sentences, for decoding settings, beside the NAR baseline heard through its tokens (the same duration model).

    taskset -c 0 .venv/bin/python benchmarks/aligned_lm_dev.py runs/aligned_lm/small --n 20 --threads 1

Sentences: the first ``--n`` of ``--sentences`` (a JSONL of ``{"text": ...}``), by default the development
sentences of ``benchmarks/tts_decode_ablation.py`` (kept out of the Piper corpus; not the test sentences).
Writes OUT/dev.json (default: RUN/dev.json) and prints one row per setting.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run", help="aligned LM run or checkpoint")
    p.add_argument("--sentences", default=None, help="JSONL of {\"text\": ...} (default: the development set)")
    p.add_argument("--n", type=int, default=20)
    p.add_argument("--temperatures", default="0,0.7", help="comma-separated; 0 = greedy")
    p.add_argument("--top-k", type=int, default=20)
    p.add_argument("--env-stages", default="", help="comma-separated envelope stages to decode (greedy; default all)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--no-nar", dest="nar", action="store_false", help="skip the NAR baseline row")
    p.add_argument("--out", default=None)
    args = p.parse_args()

    import torch

    from speechlm.eval.whisper import WhisperJudge
    from speechlm.lm.sampling import SamplingConfig
    from speechlm.tasks.tts_aligned import AlignedTTS
    from speechlm.text.wer import word_errors

    torch.set_num_threads(args.threads)
    if args.sentences:
        texts = [json.loads(line)["text"] for line in open(args.sentences, encoding="utf-8") if line.strip()][: args.n]
    else:
        from tts_decode_ablation import dev_sentences

        texts = dev_sentences(args.n)
    tts = AlignedTTS.load(args.run)
    judge = WhisperJudge.load("base", threads=args.threads)
    settings: list[tuple[str, object]] = [("nar_tokens", None)] if args.nar else []
    settings += [(f"aligned_T{t}", SamplingConfig(temperature=float(t), top_k=args.top_k, top_p=1.0))
                 for t in args.temperatures.split(",") if t]
    settings += [(f"aligned_env{n}", int(n)) for n in args.env_stages.split(",") if n]
    rows = {}
    for name, cfg in settings:
        errs = ins_del = ref = 0
        gen = audio = 0.0
        for i, text in enumerate(texts):
            t0 = time.perf_counter()
            if cfg is None:
                res = tts.nar.generate(text)
            elif isinstance(cfg, int):
                tts.env_stages = cfg
                res = tts.generate(text)
                tts.env_stages = tts.codec.quantizer.n_env_stages
            else:
                res = tts.generate(text, seed=i, temperature=cfg.temperature, top_k=cfg.top_k)
            gen += time.perf_counter() - t0
            audio += res.duration
            c = word_errors(text, judge.transcribe(res.wav, res.sample_rate, "en"))
            errs, ins_del, ref = errs + c.errors, ins_del + c.insertions + c.deletions, ref + c.ref_len
        rows[name] = {"wer": errs / max(ref, 1), "ins_del": ins_del / max(ref, 1), "rtf": gen / max(audio, 1e-9)}
        print(f"{name}: WER {rows[name]['wer']:.3f}  ins+del {rows[name]['ins_del']:.3f}  RTF {rows[name]['rtf']:.3f}",
              flush=True)
    out = Path(args.out) if args.out else Path(args.run) / "dev.json"
    out.write_text(json.dumps({"model": tts.model_id, "n": len(texts), "sentences": args.sentences,
                               "top_k": args.top_k, "rows": rows}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
