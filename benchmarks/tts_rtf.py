"""Real-time factor of ``speechlm tts`` (compute seconds per second of audio), codec LMs side by side.

    .venv/bin/python benchmarks/tts_rtf.py --model OLD_LM_DIR --model default --threads 2

Each model speaks the same three sentences in its default voice (seed 1) after one warm-up call; prints RTF over
all three and the compute per generated frame, twice: with the codec decoder's state after the voice prompt
decoded again for every call (a new voice each time), and kept from call to call (the same voice again, or the
sentences of one long text).
"""

from __future__ import annotations

import argparse
import time

SENTENCES = ("The quick brown fox jumps over the lazy dog.",
             "Speech language models generate audio the way text models generate words.",
             "It was a bright cold day in April, and the clocks were striking thirteen.")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", action="append", default=[], help="codec LM name or folder (repeatable)")
    p.add_argument("--threads", type=int, default=2)
    a = p.parse_args()
    import torch

    from speechlm.tasks.tts import TTS

    torch.set_num_threads(a.threads)
    print("| model | codec | prompt decoder state | threads | audio s | RTF | ms per frame |\n"
          "|---|---|---|---|---|---|---|")
    for m in a.model or ["default"]:
        tts = TTS.load(m)
        tts.generate("Warm up.", seed=0)
        for kept in (False, True):
            secs = dur = frames = 0.0
            for s in SENTENCES:
                if not kept:
                    tts.clear_cache()
                t0 = time.perf_counter()
                r = tts.generate(s, seed=1)
                secs += time.perf_counter() - t0
                dur += r.duration
                frames += sum(r.frames)
            print(f"| {m} | {tts.codec.tokenizer_id} | {'kept' if kept else 'decoded each call'} | {a.threads} | "
                  f"{dur:.2f} | {secs / dur:.3f} | {1000 * secs / frames:.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
