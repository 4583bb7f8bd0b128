"""First streamed byte of /v1/audio/speech with and without the watermark (docs/safety.md), through FastAPI's
TestClient, one thread: two rounds of 5 requests each way.

    .venv/bin/python benchmarks/watermark_first_byte.py
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
TEXT = "Please leave your message after the tone, and someone will call you back as soon as possible."


def main() -> int:
    import torch
    from fastapi.testclient import TestClient

    from speechlm.serve.app import create_app
    from speechlm.serve.config import ServeConfig
    from speechlm.tasks.tts import TTS

    torch.set_num_threads(1)
    tts = TTS.load()
    d = Path(tempfile.mkdtemp())
    for wm in (False, True, False, True):
        with TestClient(create_app(ServeConfig(voices_dir=d / "v", threads=1, watermark=wm), tts)) as c:
            ts = []
            for _ in range(5):
                t0 = time.perf_counter()
                with c.stream("POST", "/v1/audio/speech", json={"input": TEXT, "response_format": "pcm"}) as r:
                    it = r.iter_bytes()
                    first = b""
                    while len(first) == 0:
                        first = next(it)
                    ts.append(time.perf_counter() - t0)
                    for _ in it:
                        pass
            print(f"watermark {wm}: first byte median {1000 * statistics.median(ts):.0f} ms "
                  f"{[round(1000 * t) for t in ts]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
