"""Audio: load/save (atomic), resample, validate; log-mel, MFCC, F0, energy; augmentations.

The I/O and validation names are re-exported here (numpy + soundfile only). :mod:`speechlm.audio.features`
(torch) and :mod:`speechlm.audio.augment` (scipy) are imported from their modules, so ``import
speechlm.audio`` stays light.
"""

from speechlm.audio.io import (
    SAVE_FORMATS,
    AudioInfo,
    audio_info,
    ffmpeg_available,
    iter_audio_blocks,
    load_audio,
    resample,
    save_audio,
)
from speechlm.audio.validate import (
    MAX_CHANNELS,
    MAX_SAMPLE_RATE,
    MAX_SECONDS,
    MIN_SAMPLE_RATE,
    validate_waveform,
)

__all__ = [
    "MAX_CHANNELS", "MAX_SAMPLE_RATE", "MAX_SECONDS", "MIN_SAMPLE_RATE", "SAVE_FORMATS", "AudioInfo",
    "audio_info", "ffmpeg_available", "iter_audio_blocks", "load_audio", "resample", "save_audio",
    "validate_waveform",
]
