"""Spectrograms of one sentence spoken by the default TTS without a description and with several, one above
another, each titled with what Whisper base hears and what the pipeline's tagger measures.

    .venv/bin/python benchmarks/tts_style_spectrograms.py -o docs/tts_style_spectrogram.png
"""

from __future__ import annotations

import argparse

DESCRIPTIONS = (None, "A woman speaks quickly in a high, lively voice.", "A man speaks slowly in a deep, flat voice.",
                "Someone whispers.", "Someone speaks with a lot of echo.", "Someone speaks in a noisy environment.")
TEXT = "Your call is important to us. Please stay on the line."


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-o", "--output", required=True)
    p.add_argument("--text", default=TEXT)
    args = p.parse_args()
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import torch
    from tts_spectrograms import panel  # benchmarks/ is this script's folder

    from speechlm.eval.whisper import WhisperJudge
    from speechlm.pipeline.tags import tag
    from speechlm.tasks.tts import TTS

    torch.set_num_threads(1)
    tts, judge = TTS.load(), WhisperJudge.load("base", threads=1)
    fig, axes = plt.subplots(len(DESCRIPTIONS), 1, figsize=(10, 1.8 * len(DESCRIPTIONS)))
    for ax, d in zip(axes, DESCRIPTIONS):
        wav = tts.generate(args.text, description=d).wav
        t = tag(wav, tts.sample_rate, args.text)
        heard = judge.transcribe(wav, tts.sample_rate, "en")
        f0 = f"{t['pitch_mean_hz']:.0f} Hz" if t.get("pitch_mean_hz") else "no pitch"
        panel(ax, wav, f"{d or '(no description)'}  [tagger: {t.get('gender')}, {f0}, {t['speaking_rate']:.1f} "
              f"phones/s, SNR {t['snr_db']:.0f} dB]  Whisper: {heard}", fontsize=8)
    axes[-1].set_xlabel("s")
    fig.tight_layout()
    fig.savefig(args.output, dpi=80)
    print(args.output)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
