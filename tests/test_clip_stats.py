"""Whole-clip statistics of the synthetic-speech detector (speechlm.safety.clip_stats) and their head in an
ensemble: the vector's size and gain invariance, the pitch-steadiness statistics, and `speechlm detector combine
--clip-weight` (the file score mixes the head's logit in; the threshold is set on the mixed scores)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from test_detector import _toy_corpus

from speechlm.cli import main
from speechlm.safety.clip_stats import ClipHead, clip_logit, clip_statistics, dim
from speechlm.safety.detector import Detector, DetectorConfig, FeatureConfig, NetConfig, build_net

pytestmark = pytest.mark.usefixtures("one_thread")


def _pulses(f0: np.ndarray, sr: int = 16000) -> np.ndarray:
    """A pulse train whose period follows ``f0 [T]`` (Hz per sample), lightly low-passed."""
    phase = np.cumsum(f0 / sr)
    x = (np.diff(np.floor(phase), prepend=0.0) > 0).astype(np.float32)
    return np.convolve(x, np.hanning(9), mode="same").astype(np.float32)


@pytest.mark.parametrize("phase_bands", [0, 32])
def test_statistics_have_the_stated_size_and_ignore_gain(phase_bands):
    feats = FeatureConfig(phase_bands=phase_bands)
    x = np.random.default_rng(0).standard_normal(40000).astype(np.float32) * 0.05
    a, b = clip_statistics(x, feats), clip_statistics(8 * x, feats)
    assert a.shape == (dim(feats),) and torch.isfinite(a).all()
    assert torch.allclose(a, b, atol=1e-3)


def test_pitch_statistics_tell_a_steady_voice_from_a_wandering_one():
    """The share of frames whose cepstral pitch peak holds its place: high for a steady 120-Hz pulse train, lower
    when the period jumps at random every 10 ms; both louder-than-noise peaks."""
    n = 32000
    feats = FeatureConfig()
    steady = _pulses(np.full(n, 120.0))
    jumps = np.repeat(np.random.default_rng(1).uniform(90, 250, n // 160 + 1), 160)[:n]
    wander = _pulses(jumps)
    held = slice(2 * 160 + 2 * 128, 2 * 160 + 2 * 128 + 8)  # after the LFB and fine-spectrum spreads
    s, w = clip_statistics(steady, feats)[held], clip_statistics(wander, feats)[held]
    assert s[2] > 0.9 and w[2] < s[2] - 0.3  # place holds
    assert s[3] < w[3]  # mean jump


def test_clip_logit_averages_windows_of_a_long_file():
    feats = FeatureConfig()
    head = ClipHead(dim(feats))
    torch.manual_seed(0)
    torch.nn.init.normal_(head.linear.weight, std=0.05)
    x = np.random.default_rng(2).standard_normal(16000 * 9).astype(np.float32) * 0.1
    with torch.no_grad():
        w1 = float(head(clip_statistics(x[: 6 * 16000], feats)[None]))
        w2 = float(head(clip_statistics(x[3 * 16000 :], feats)[None]))
    assert clip_logit(head, x, feats) == pytest.approx((w1 + w2) / 2, abs=1e-5)


def test_combine_with_clip_weight_mixes_the_head_in(tmp_path, capsys):
    from speechlm.train.checkpoint import save_checkpoint

    _toy_corpus(tmp_path / "c", np.random.default_rng(0))
    cfg = DetectorConfig(net=NetConfig(channels=16))
    for k in range(2):
        torch.manual_seed(k)
        save_checkpoint(tmp_path / f"m{k}", model=build_net(cfg).eval(), config={"detector": cfg.to_dict()}, step=5)
    members = [str(tmp_path / "m0"), str(tmp_path / "m1")]
    assert main(["detector", "combine", *members, "--corpus", str(tmp_path / "c"), "-o", str(tmp_path / "ens"),
                 "--clip-weight", "0.5", "--false-alarm", "0.25"]) == 0
    det = Detector.load(tmp_path / "ens")
    assert det.config.net.clip_weight == 0.5 and isinstance(det.net.clip_head, ClipHead)
    # the toy classes (noise bursts vs tones) are easy for the head: it separates fresh ones
    rng = np.random.default_rng(5)
    t = np.arange(32000) / 16000
    tone = (0.3 * np.sin(2 * np.pi * 170 * t)).astype(np.float32)
    noise = (0.1 * rng.standard_normal(32000) * (np.abs(np.sin(2 * np.pi * 2 * t)) > 0.3)).astype(np.float32)
    assert clip_logit(det.net.clip_head, tone, cfg.features) > clip_logit(det.net.clip_head, noise, cfg.features)
    # the file score is the stated mix of the members' mean logit and the head's
    x = det.prepare(tone, 16000)
    _, logits = det.segment_logits(x)
    mixed = 0.5 * float(logits.mean()) + 0.5 * clip_logit(det.net.clip_head, x, cfg.features)
    assert det.score_wav(tone, 16000).synthetic_score == pytest.approx(1 / (1 + np.exp(-mixed)), abs=1e-5)
    # a longer file: each segment's score mixes its network logit with the head's on that segment alone
    long = np.concatenate([tone, noise, tone])
    x = det.prepare(long, 16000)
    bounds, logits = det.segment_logits(x)
    r = det.score_wav(long, 16000)
    assert len(bounds) == len(r.segments) > 1
    for (a, b), v, seg in zip(bounds, logits, r.segments):
        want = 0.5 * float(v) + 0.5 * clip_logit(det.net.clip_head, x[a:b], cfg.features)
        assert seg.synthetic_score == pytest.approx(1 / (1 + np.exp(-want)), abs=1e-5)
    meta = json.loads((tmp_path / "ens" / "config.json").read_text())
    assert meta["config"]["detector"]["net"]["clip_weight"] == 0.5
    capsys.readouterr()
    for bad in (["--clip-weight", "1.5"], ["--clip-weight", "0.5", "--clip-views", "0"],
                ["--clip-weight", "0.5", "--clip-exclude", "no_such_source"]):
        assert main(["detector", "combine", *members, "--corpus", str(tmp_path / "c"), "-o", str(tmp_path / "bad"),
                     *bad]) != 0
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and not (tmp_path / "bad").exists()
