"""Where the aligned codec LM loses words, on validation utterances of its own training split (never trained on):
Whisper-base WER of (a) the ground-truth codes, (b) greedy per-frame predictions with the true previous frames
(teacher forcing), (c) greedy generation with the exact guide (the data's durations, pitch, energy), (d) greedy
generation with the NAR's guide (what inference does). All heard through the codec.

    taskset -c 0 .venv/bin/python benchmarks/aligned_lm_ablation.py runs/aligned_lm/small --n 20 --threads 1

Needs the run's feature cache (``extra.features``) and its manifest (``data/piper_joe/manifest.jsonl``: texts are
matched by token ids).
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

import numpy as np


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run", help="aligned LM run folder (with codes.npz)")
    p.add_argument("--manifest", default="data/piper_joe/manifest.jsonl")
    p.add_argument("--n", type=int, default=20)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()

    import torch

    from speechlm.eval.whisper import WhisperJudge
    from speechlm.lm.aligned import Guide
    from speechlm.lm.aligned_train import load_items
    from speechlm.tasks.tts_aligned import AlignedTTS
    from speechlm.text.symbols import default_symbols
    from speechlm.text.tts_input import token_ids
    from speechlm.text.wer import word_errors
    from speechlm.tokenizers.source_filter.quantizer import greedy_pick

    torch.set_num_threads(args.threads)
    tts = AlignedTTS.load(args.run)
    m = tts.lm.model
    items = load_items(tts.lm.meta["extra"]["features"], tts.nar.am, tts.codec, Path(args.run) / "codes.npz", False)
    rng = random.Random(0)  # the training split's shuffle (aligned_train: seed 0, first 2 % validation)
    idx = list(range(len(items)))
    rng.shuffle(idx)
    val = idx[: max(1, int(len(idx) * 0.02))][: args.n]
    sym = default_symbols()
    texts: dict[tuple, str] = {}
    for line in open(args.manifest, encoding="utf-8"):
        u = json.loads(line)
        texts.setdefault(tuple(token_ids(u["tags"]["tts_tokens"], sym)), u["text"])
    judge = WhisperJudge.load("base", threads=args.threads)

    def hear(codes: np.ndarray) -> np.ndarray:
        return np.concatenate(list(tts.codec.decode_stream(codes, codes.shape[1] * tts.codec.hop)))

    def forced(guide: Guide, codes: np.ndarray) -> np.ndarray:
        cond, mask = m.condition([guide], [0])
        with torch.no_grad():
            lg = m(cond, torch.from_numpy(codes.astype(np.int64))[None], mask)
        return np.stack([greedy_pick(x[0], k == m.cfg.voicing_stream).numpy() for k, x in enumerate(lg)])

    acc = {k: [0, 0] for k in ("truth", "teacher_forced", "exact_guide", "nar_guide")}
    for i in val:
        it = items[i]
        ids = torch.from_numpy(it.ids)
        g = m.guide(ids, dur=torch.from_numpy(it.dur))
        exact = Guide(ids, g.dur, torch.from_numpy(it.pitch), torch.from_numpy(it.energy), g.states)
        variants = {"truth": it.codes, "teacher_forced": forced(exact, it.codes),
                    "exact_guide": m.generate(exact).numpy(), "nar_guide": tts.codes(it.ids.tolist())[0]}
        for k, codes in variants.items():
            c = word_errors(texts[tuple(it.ids.tolist())], judge.transcribe(hear(codes), 16000, "en"))
            acc[k][0] += c.errors
            acc[k][1] += c.ref_len
    print(json.dumps({"n": len(val), **{k: round(e / max(n, 1), 3) for k, (e, n) in acc.items()}}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
