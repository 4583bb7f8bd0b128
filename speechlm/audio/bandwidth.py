"""A recording's effective bandwidth.

Telephone speech (8 kHz, band edge about 3.8 kHz after resampling to 16 kHz) carries nothing above its edge;
whatever is estimated there (a voice's mean spectrum, an equaliser between two voices) describes the channel, not
the speaker. :func:`band_edge_hz` finds the edge from the audio: the highest frequency at which the loud frames
still reach within :data:`EDGE_DROP_DB` of the speech band's peak level (fricatives put energy up to 7-8 kHz in
wideband speech, so a wideband recording reads 6.5-8 kHz and a telephone one 3.6-3.9 kHz).
"""

from __future__ import annotations

import numpy as np

EDGE_DROP_DB = 45.0  # a band counts as present while its loud frames reach within this of the 0.3-3.4 kHz peak
FULL_BAND = 0.9  # an edge above this fraction of Nyquist is the full band


def band_edge_hz(wav: np.ndarray, sr: int) -> float:
    """The effective band edge of ``wav [T]`` at ``sr`` in Hz (``sr / 2`` for full-band audio or too little).

    Per-bin 95th percentile of the log power of the frames within 40 dB of the loudest (32-ms frames), smoothed
    over about 250 Hz; the edge is the highest bin within :data:`EDGE_DROP_DB` of the 0.3-3.4 kHz maximum."""
    from scipy.signal import stft

    x = np.asarray(wav, np.float64).reshape(-1)
    nper = max(64, int(round(0.032 * sr)))
    if x.size < 4 * nper or not np.any(x):
        return sr / 2
    f, _, z = stft(x, sr, nperseg=nper, noverlap=nper * 11 // 16)
    p = np.abs(z) ** 2
    e = 10 * np.log10(p.sum(0) + 1e-20)
    loud = e > e.max() - 40.0
    hi = np.percentile(10 * np.log10(p[:, loud] + 1e-20), 95, axis=1)
    k = max(1, int(round(250.0 / (f[1] - f[0]))))
    hi = np.convolve(hi, np.ones(k) / k, mode="same")
    speech = (f >= 300) & (f <= 3400)
    if not speech.any():
        return sr / 2
    present = np.where(hi > hi[speech].max() - EDGE_DROP_DB)[0]
    edge = float(f[present.max()]) if present.size else sr / 2
    return sr / 2 if edge >= FULL_BAND * sr / 2 else edge
