"""Spectrograms of one sentence of our TTS, unmarked and marked, and their difference (docs/safety.md).

    .venv/bin/python benchmarks/watermark_spectrogram.py   # docs/watermark_spectrogram.png; prints the mean change
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
TEXT = "Please leave your message after the tone, and someone will call you back."


def main() -> int:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from speechlm.safety import watermark as W
    from speechlm.tasks.tts import TTS

    x = TTS.load().generate(TEXT).wav
    y = W.embed(x, 16000, W.make_payload("tts_duration", 0))

    def spec(a: np.ndarray) -> np.ndarray:  # [bins, frames] dB, the watermark's own STFT (32 ms, hop 16 ms)
        return 10 * np.log10(W._power(W._stft(a.astype(np.float64), 256)) + 1e-10).T

    sx, sy = spec(x), spec(y)
    fig, ax = plt.subplots(3, 1, figsize=(10, 8), sharex=True)
    t = np.arange(sx.shape[1]) * 0.016
    f = np.arange(sx.shape[0]) * 16000 / 512
    for a, s, title in ((ax[0], sx, "unmarked"), (ax[1], sy, "marked")):
        a.pcolormesh(t, f, s, vmin=sx.max() - 80, vmax=sx.max(), shading="auto")
        a.set_title(title)
        a.set_ylabel("Hz")
    d = np.clip(sy - sx, -6, 6)
    d[sx < sx.max() - 60] = 0
    im = ax[2].pcolormesh(t, f, d, cmap="RdBu_r", vmin=-6, vmax=6, shading="auto")
    ax[2].set_title("marked - unmarked (dB; cells 60 dB under the peak blank)")
    ax[2].set_ylabel("Hz")
    ax[2].set_xlabel("s")
    fig.colorbar(im, ax=ax[2])
    fig.tight_layout()
    fig.savefig(ROOT / "docs" / "watermark_spectrogram.png", dpi=70)
    print(f"mean |change| of cells within 60 dB of the peak: {np.abs(sy - sx)[sx > sx.max() - 60].mean():.2f} dB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
