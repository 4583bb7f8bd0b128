"""Peak limiting of generated speech, so that nothing a generator writes clips.

:func:`limit_peak` scales a whole utterance down when its peak passes :data:`PEAK_LIMIT` (the level of every
sample relative to the others is kept); :class:`StreamLimiter` does the same for audio yielded block by block,
before its end is known. Audio under the limit passes unchanged.
"""

from __future__ import annotations

import numpy as np

PEAK_LIMIT = 0.95  # the largest sample value a generator writes
LIMITER_RAMP_S = 0.01  # a stream's lower gain is reached over this much of the block that needs it


def limit_peak(wav: np.ndarray) -> np.ndarray:
    """``wav [T]`` as float32, scaled down as a whole if its peak passes :data:`PEAK_LIMIT`."""
    wav = np.asarray(wav, np.float32)
    peak = float(np.max(np.abs(wav))) if wav.size else 0.0
    return (wav * (PEAK_LIMIT / peak)).astype(np.float32) if peak > PEAK_LIMIT else wav


class StreamLimiter:
    """:data:`PEAK_LIMIT` for audio that is yielded before its end is known: the gain starts at 1 and only ever
    falls, to just what the loudest block so far needs, ramped over :data:`LIMITER_RAMP_S` at the start of that
    block (whatever the ramp lets past the limit there is clipped at it). Audio that never passes the limit is
    unchanged; a loud voice is turned down from its first loud block on instead of from its start."""

    def __init__(self, sample_rate: int) -> None:
        self.gain = 1.0
        self.ramp = max(1, int(LIMITER_RAMP_S * sample_rate))

    def __call__(self, block: np.ndarray) -> np.ndarray:
        """``block [n]`` float32, limited (a new array when anything changes)."""
        peak = float(np.max(np.abs(block))) if block.size else 0.0
        target = min(self.gain, PEAK_LIMIT / peak) if peak > 0 else self.gain
        if target == 1.0:
            return block
        gain = np.full(block.size, target, np.float32)
        m = min(self.ramp, block.size)
        gain[:m] = np.linspace(self.gain, target, m, dtype=np.float32)
        self.gain = target
        return np.clip(block * gain, -PEAK_LIMIT, PEAK_LIMIT).astype(np.float32)
