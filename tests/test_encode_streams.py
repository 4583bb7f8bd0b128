"""Encoding only the first streams a model uses (LM shards, prompts, edits): the rate whose streams they are."""

from __future__ import annotations

import numpy as np
import pytest

from speechlm.tokenizers.base import encode_streams, stream_cardinalities
from speechlm.tokenizers.tokens import TokensFileError


def _voice(sr: int = 16000, seconds: float = 1.2) -> np.ndarray:
    t = np.arange(int(sr * seconds)) / sr
    f0 = 120 + 20 * np.sin(2 * np.pi * 1.5 * t)
    x = sum(np.sin(2 * np.pi * h * np.cumsum(f0) / sr) / h for h in range(1, 12))
    return (0.2 * x * (0.6 + 0.4 * np.sin(2 * np.pi * 3 * t))).astype(np.float32)


def test_source_filter_streams_are_the_lower_rates_encoding() -> None:
    from speechlm.tokenizers.codec.api import Codec

    codec = Codec.load("codec_sf")
    wav = _voice()
    assert stream_cardinalities(codec) == list(codec.cardinalities) and stream_cardinalities(codec)[0] == 128
    for k in (4, 6):
        tok = encode_streams(codec, wav, 16000, k)
        want = codec.encode(wav, 16000, codec.bitrates[k - 4])
        assert tok.num_codebooks == k and np.array_equal(tok.codes, want.codes) and tok.bitrate == want.bitrate
    with pytest.raises(TokensFileError):
        codec.decode(encode_streams(codec, wav, 16000, 3))  # below the lowest rate: cut, and not decodable


def test_rvq_streams_are_the_full_encoding_cut() -> None:
    from speechlm.tokenizers.codec.api import Codec

    codec = Codec.load("codec_default")
    wav = _voice()
    full = codec.encode(wav, 16000)
    tok = encode_streams(codec, wav, 16000, 2)
    assert np.array_equal(tok.codes, full.codes[:2])
    assert stream_cardinalities(codec) == [codec.cardinality] * codec.num_codebooks
