"""What the watermark costs in intelligibility: Whisper-base WER of the default TTS's speech, unmarked and marked
(what `speechlm tts` and the server write), on development sentences.

    .venv/bin/python benchmarks/watermark_wer.py --n 80

Sentences: ``benchmarks/tts_decode_ablation.py``'s development pool (fortune sentences outside the TTS training
draws; not the held-out test sentences). The same generated audio is judged twice; the mark carries the payload
`speechlm tts` writes (family ``tts_duration``, user id 0).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

SR = 16000


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=80, help="development sentences (default 80)")
    p.add_argument("--threads", type=int, default=2, help="Whisper threads")
    p.add_argument("--out", default=None, help="write the result as JSON here")
    args = p.parse_args()
    if args.n < 1 or args.threads < 1:
        raise SystemExit("--n and --threads must be >= 1")

    import torch
    from tqdm import tqdm
    from tts_decode_ablation import dev_sentences

    from speechlm.eval.whisper import WhisperJudge
    from speechlm.safety.watermark import embed, make_payload
    from speechlm.tasks.tts import TTS
    from speechlm.text.wer import word_errors

    torch.set_num_threads(1)
    tts = TTS.load()
    judge = WhisperJudge.load("base", threads=args.threads)
    payload = make_payload("tts_duration", 0)
    counts = {"unmarked": [0, 0], "marked": [0, 0]}
    for s in tqdm(dev_sentences(args.n), desc="sentences"):
        wav = tts.generate(s).wav.astype(np.float32)
        for name, x in (("unmarked", wav), ("marked", embed(wav, SR, payload))):
            c = word_errors(s, judge.transcribe(x, SR, "en"))
            counts[name][0] += c.errors
            counts[name][1] += c.ref_len
    res = {"kind": "watermark_wer", "command": f".venv/bin/python benchmarks/watermark_wer.py --n {args.n}",
           "model": tts.am.model_id, "judge": "whisper-base",
           "sentences": args.n, **{k: {"wer": e / max(n, 1), "errors": e, "words": n} for k, (e, n) in counts.items()}}
    print(f"{args.n} development sentences, Whisper base: unmarked WER {res['unmarked']['wer']:.3f} "
          f"({counts['unmarked'][0]}/{counts['unmarked'][1]}), marked {res['marked']['wer']:.3f} "
          f"({counts['marked'][0]}/{counts['marked'][1]})")
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(res, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
