"""The source-filter codec's spectral post-filter (speechlm/tokenizers/source_filter/postfilter.py): the identity
when untrained, streaming equal to offline for any split into blocks, bounded gains, and its place in the codec's
decoder (the same audio streamed or offline, its delay counted in the latency, off on request)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from speechlm.tokenizers.source_filter.postfilter import (
    PostFilterConfig,
    PostFilterStream,
    SpectralPostFilter,
    frame_log_magnitudes,
    postfilter,
)

pytestmark = pytest.mark.usefixtures("one_thread")


def _random_filter(seed: int = 0) -> SpectralPostFilter:
    """A post-filter with random (non-zero) output weights: its gains move every bin."""
    torch.manual_seed(seed)
    model = SpectralPostFilter(PostFilterConfig(hidden=16)).eval()
    with torch.no_grad():
        model.out.weight.normal_(0.0, 0.3)
    return model


def _speechlike(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(n) / 16000
    x = sum(np.sin(2 * np.pi * 140 * k * t) / k for k in range(1, 20)) * (1 + np.sin(2 * np.pi * 3 * t))
    return (0.05 * x + 0.01 * rng.standard_normal(n)).astype(np.float32)


def test_untrained_postfilter_is_the_identity():
    """Zero gains (the initial output layer): the Hann analysis/synthesis gives the input back."""
    x = _speechlike(16000 + 77)
    y = postfilter(SpectralPostFilter(PostFilterConfig(hidden=16)).eval(), x, 0)
    assert len(y) == len(x)
    np.testing.assert_allclose(y, x, atol=1e-5)


@pytest.mark.parametrize("block", [1, 37, 128, 641, 5000])
def test_stream_equals_offline(block):
    model = _random_filter()
    x = _speechlike(12345)
    ref = postfilter(model, x, 3)
    assert np.abs(ref - x).max() > 1e-3  # the filter does something
    stream = PostFilterStream(model, 3)
    out = [stream.push(x[i : i + block]) for i in range(0, len(x), block)] + [stream.flush()]
    y = np.concatenate(out)
    assert len(y) == len(x)
    np.testing.assert_allclose(y, ref, atol=1e-5)


def test_delay_is_bounded():
    """A pushed sample comes out at most ``delay_samples`` later."""
    model = _random_filter()
    stream = PostFilterStream(model, 0)
    x = _speechlike(8000)
    got = sum(len(stream.push(x[i : i + 160])) for i in range(0, len(x), 160))
    assert len(x) - stream.delay_samples <= got <= len(x)
    assert stream.delay_samples == 512 + 128  # a frame and the look-ahead frame: 40 ms


@pytest.mark.parametrize("n", [0, 1, 100, 511, 513])
def test_short_signals(n):
    assert len(postfilter(_random_filter(), _speechlike(max(n, 1))[:n], 1)) == n


def test_gains_are_bounded_and_conditioned():
    model = _random_filter()
    with torch.no_grad():
        model.out.weight.mul_(100.0)
    logm = torch.from_numpy(frame_log_magnitudes(_speechlike(4000), model.config))[None]
    g = model(logm, torch.tensor([0]))
    assert g.abs().max() <= model.max_log + 1e-6
    assert not torch.allclose(g, model(logm, torch.tensor([5])))  # the bitrate is an input
    with pytest.raises(ValueError, match="condition"):
        PostFilterStream(model, model.config.n_conditions)


def test_frames_match_the_stream():
    """Training pairs are framed as the stream frames: frame count and the first frame's content."""
    cfg = PostFilterConfig()
    x = _speechlike(3000)
    logm = frame_log_magnitudes(x, cfg)
    assert logm.shape == ((cfg.n_fft - cfg.hop + len(x) - 1) // cfg.hop + 1, cfg.bins)
    first = np.zeros(cfg.n_fft, np.float32)
    first[cfg.n_fft - cfg.hop :] = x[: cfg.hop]
    win = np.hanning(cfg.n_fft + 1)[:-1]
    np.testing.assert_allclose(logm[0], np.log(np.abs(np.fft.rfft(first * win)) + 1e-5), atol=1e-3)
