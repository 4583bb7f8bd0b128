"""Spectrograms of one clip through several codecs, or of one text spoken by several codec LMs, stacked in one
PNG (look before reading the tables).

    .venv/bin/python benchmarks/codec_spectrograms.py --model default --model pitch \
        --audio /usr/share/asterisk/sounds/en_US_f_Allison/activated.wav -o docs/codec_pitch_spectrogram.png
    .venv/bin/python benchmarks/codec_spectrograms.py --lm OLD_LM_DIR --lm default \
        --text "Hello from speechlm." -o docs/tts_spectrogram.png
"""

from __future__ import annotations

import argparse
import io
from pathlib import Path


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--audio", help="an audio file (any rate; resampled to the codec's)")
    p.add_argument("--model", action="append", default=[], help="codec name or folder (repeatable)")
    p.add_argument("--lm", action="append", default=[], help="codec LM name or folder (repeatable; with --text)")
    p.add_argument("--text", help="text the --lm models speak (default voice, seed 0)")
    p.add_argument("--fmax", type=float, default=4000.0, help="top of the plotted band, Hz")
    p.add_argument("-o", "--output", required=True, help="PNG path")
    a = p.parse_args()

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    import torch

    from speechlm.audio.io import load_audio
    from speechlm.tokenizers.codec.api import Codec
    from speechlm.utils.atomic import atomic_write_bytes

    if bool(a.model) == bool(a.lm) or (a.model and not a.audio) or (a.lm and not a.text):
        p.error("give --model (codecs) with --audio, or --lm (codec LMs) with --text")
    rows = []
    if a.model:
        codecs = [Codec.load(m) for m in a.model]
        sr = codecs[0].sample_rate
        x = load_audio(a.audio, sr=sr)[0][0]
        rows.append((f"input: {Path(a.audio).name}", x))
        for c in codecs:
            y, _ = c.decode(c.encode(x, sr))
            rows.append((f"{c.tokenizer_id}, {c.bitrates[-1]:g} kbps", y[: len(x)]))
    for m in a.lm:
        from speechlm.tasks.tts import TTS

        tts = TTS.load(m)
        res = tts.generate(a.text, seed=0)
        sr = res.sample_rate
        rows.append((f"{Path(str(tts.lm.path)).name} on {tts.codec.tokenizer_id}: {a.text!r}", res.wav))
    n_fft, hop = 1024, sr // 100
    top = int(a.fmax / (sr / n_fft)) + 1
    fig, axes = plt.subplots(len(rows), 1, figsize=(8, 2.3 * len(rows)), sharex=True, squeeze=False)
    axes = axes[:, 0]
    for ax, (label, s) in zip(axes, rows):
        spec = torch.stft(torch.from_numpy(np.ascontiguousarray(s, dtype=np.float32)), n_fft, hop,
                          window=torch.hann_window(n_fft), return_complex=True).abs().numpy()
        ax.imshow(20 * np.log10(spec[:top] + 1e-5), origin="lower", aspect="auto", vmin=-70, vmax=20,
                  extent=[0, len(s) / sr, 0, a.fmax], cmap="magma")
        ax.set_title(label, fontsize=9)
        ax.set_ylabel("Hz")
    axes[-1].set_xlabel("s")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=70)
    atomic_write_bytes(a.output, buf.getvalue())
    print(a.output)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
