"""The shipped codec LM (speechlm/assets/lm_default): loads with the shipped codec and speaks, reproducibly."""

from __future__ import annotations

import numpy as np
import pytest

from speechlm.lm.api import ASSETS

ASSET = ASSETS / "lm_default"

pytestmark = [
    pytest.mark.skipif(not (ASSET / "model.safetensors").exists(), reason="no shipped codec LM"),
    pytest.mark.needs_tool("espeak-ng"),
]


def test_shipped_lm_matches_shipped_codec_and_speaks() -> None:
    import torch

    from speechlm.tasks.tts import TTS

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        tts = TTS.load("lm_default")  # refuses (CheckpointError) if the shipped codec is not the one it was trained on
        assert tts.default_prompt is not None and tts.lm.config.layout == "voicecraft"
        a = tts.generate("Hello there.", seed=1)
        b = tts.generate("Hello there.", seed=1)
    finally:
        torch.set_num_threads(n)
    assert np.array_equal(a.wav, b.wav)
    assert 0.2 < a.duration < 6.0 and np.abs(a.wav).max() > 0.01


def test_shipped_lm_streams_sentence_by_sentence() -> None:
    from speechlm.tasks.tts import TTS

    tts = TTS.load("lm_default")
    blocks = list(tts.stream("Hello there. Good bye.", seed=1))
    assert len(blocks) == 3  # sentence, pause, sentence
    assert np.array_equal(blocks[0], tts.generate("Hello there.", seed=1).wav)
