"""Spectrograms of one held-out sentence from every system of a ``benchmarks/tts_eval.py`` run, one above another.

    .venv/bin/python benchmarks/tts_spectrograms.py runs/tts_eval asterisk_core_en_conf-waitforleader \
        -o docs/tts_duration_spectrogram.png
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def panel(ax, wav, title: str, fontsize: int = 9) -> None:
    """One 16-kHz waveform ``[T]`` as a spectrogram on ``ax`` (0-8 kHz, a faint dither so silence has a floor)."""
    import numpy as np

    ax.specgram(wav + 1e-6 * np.random.default_rng(0).standard_normal(len(wav)), NFFT=512, Fs=16000, noverlap=384,
                cmap="magma", vmin=-110)
    ax.set_title(title, fontsize=fontsize, loc="left")
    ax.set_xlim(0, max(len(wav) / 16000, 0.1))
    ax.set_ylim(0, 8000)
    ax.set_ylabel("Hz")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run", help="an OUT folder of benchmarks/tts_eval.py")
    p.add_argument("id", help="utterance id")
    p.add_argument("-o", "--output", required=True)
    args = p.parse_args()
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    from speechlm.audio.io import load_audio

    run = Path(args.run)
    res = json.loads((run / "results.json").read_text())
    systems = [s for s in ("prompts", *res["rows"]) if (run / s / f"{args.id}.wav").is_file()]
    fig, axes = plt.subplots(len(systems), 1, figsize=(10, 1.9 * len(systems)))
    for ax, s in zip(np.atleast_1d(axes), systems):
        wav = load_audio(run / s / f"{args.id}.wav", sr=16000)[0][0]
        hyp = res["utterances"][args.id].get(s, {}).get("hyp", "") if s != "prompts" else "(the voice prompt)"
        panel(ax, wav, f"{s}: {hyp}")
    np.atleast_1d(axes)[-1].set_xlabel("s")
    fig.suptitle(res["utterances"][args.id]["text"], fontsize=10)
    fig.tight_layout()
    fig.savefig(args.output, dpi=80)
    print(args.output)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
