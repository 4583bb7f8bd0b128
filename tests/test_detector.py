"""Synthetic-speech detector (speechlm.safety.detector, `speechlm detect`): features and segments, EER, the
checkpoint round trip, the shipped model on a fresh espeak-ng sentence and on held-out human recordings, the CLI
JSON contract and its one-line errors."""

from __future__ import annotations

import json
import subprocess

import numpy as np
import pytest
import soundfile as sf
import torch
from conftest import require_path, require_tool

from speechlm.cli import main
from speechlm.errors import SpeechLMError
from speechlm.safety.detector import (
    DEFAULT_MODEL_DIR,
    Detector,
    DetectorConfig,
    FeatureConfig,
    NetConfig,
    build_net,
    eer,
    features,
    lfb,
    phase_features,
    segment_bounds,
    trim_silence,
)

pytestmark = pytest.mark.usefixtures("one_thread")
POCKETSPHINX = "/usr/share/pocketsphinx/test/data"


def test_lfb_shape_and_gain_only_shifts_it():
    cfg = FeatureConfig()
    x = np.random.default_rng(0).standard_normal(16000).astype(np.float32) * 0.1
    f = lfb(x, cfg)
    assert f.shape == (cfg.n_bands, 16000 // cfg.hop_length + 1)
    # a gain is a constant offset in log energy, which the network's per-band mean removal cancels
    assert torch.allclose(lfb(x * 0.5, cfg) - f, torch.full_like(f, float(np.log(0.25))), atol=1e-3)


def test_phase_features_see_what_the_magnitude_cannot():
    """The phase channels: their shape, gain does not move them, and a change of phase alone (the same magnitude
    spectrum: a zero-phase pulse train vs the same harmonics at random phases) moves them while the LFB barely
    changes."""
    cfg = FeatureConfig(phase_bands=32)
    t = np.arange(16000) / 16000
    rng = np.random.default_rng(0)
    harmonics = [(k * 125.0, 1.0 / k) for k in range(1, 60)]
    floor = 1e-3 * rng.standard_normal(16000)  # a noise floor: between the harmonics phase is defined
    pulses = (sum(a * np.cos(2 * np.pi * f * t) for f, a in harmonics) * 0.05 + floor).astype(np.float32)
    scattered = sum(a * np.cos(2 * np.pi * f * t + rng.uniform(0, 2 * np.pi)) for f, a in harmonics)
    scattered = (scattered * 0.05 + floor).astype(np.float32)
    ph = phase_features(pulses, cfg)
    assert ph.shape == (96, 16000 // cfg.hop_length + 1) and cfg.channels == 256
    assert torch.allclose(phase_features(pulses * 0.3, cfg), ph, atol=1e-3)
    both = features(pulses, cfg)
    assert both.shape == (256, ph.shape[1]) and torch.equal(both[:160], lfb(pulses, cfg))
    mid = slice(5, -5)
    lfb_change = (lfb(scattered, cfg) - lfb(pulses, cfg))[:, mid].abs().mean()
    phase_change = (phase_features(scattered, cfg) - ph)[:32, mid].abs().mean()  # the group-delay cosines
    assert lfb_change < 0.2 and phase_change > 0.1
    assert features(pulses, FeatureConfig()).shape[0] == 160  # phase_bands 0: the LFB alone, as before


def test_net_keeps_the_phase_channels_level():
    """The per-band mean over time is removed from the LFB channels only: an offset there changes nothing, an
    offset in a phase channel changes the logit."""
    cfg = DetectorConfig(features=FeatureConfig(phase_bands=4), net=NetConfig(channels=16))
    net = build_net(cfg).eval()
    x = torch.randn(2, cfg.features.channels, 120)
    lfb_offset, phase_offset = x.clone(), x.clone()
    lfb_offset[:, :160] += 3.0
    phase_offset[:, 160:] += 3.0
    with torch.no_grad():
        assert torch.allclose(net(lfb_offset), net(x), atol=1e-4)
        assert not torch.allclose(net(phase_offset), net(x), atol=1e-3)


def test_segments_cover_the_file():
    assert segment_bounds(10, 32000) == [(0, 10)]
    b = segment_bounds(70000, 32000)
    assert b[0] == (0, 32000) and b[-1] == (38000, 70000) and all(e - s == 32000 for s, e in b)
    assert segment_bounds(64000, 32000) == [(0, 32000), (32000, 64000)]


def test_trim_silence_cuts_digital_padding():
    x = np.concatenate([np.zeros(8000), 0.5 * np.ones(1600), np.zeros(8000)]).astype(np.float32)
    y = trim_silence(x, 16000)
    assert len(y) == 1600 + 2 * 1600  # the loud part plus 0.1 s margins
    assert trim_silence(np.zeros(100, np.float32), 16000).size == 0


def test_eer():
    assert eer(np.array([0.1, 0.2]), np.array([0.8, 0.9]))[0] == 0.0
    e, t = eer(np.array([0.1, 0.6, 0.2, 0.3]), np.array([0.5, 0.9, 0.8, 0.7]))
    assert e == pytest.approx(0.25) and 0.5 <= t <= 0.6
    assert eer(np.array([0.9, 0.8]), np.array([0.1, 0.2]))[0] == 1.0  # inverted scores: everything wrong


def test_net_takes_any_length_and_ignores_gain():
    cfg = DetectorConfig(net=NetConfig(channels=16))
    net = build_net(cfg).eval()
    x = torch.randn(3, cfg.features.n_bands, 150)
    with torch.no_grad():
        assert net(x).shape == (3,) and net(x[:, :, :7]).shape == (3,)
        assert torch.allclose(net(x), net(x + 2.0), atol=1e-5)


def test_checkpoint_round_trip(tmp_path):
    from speechlm.train.checkpoint import save_checkpoint

    cfg = DetectorConfig(net=NetConfig(channels=16), threshold=0.3)
    net = build_net(cfg)
    for m in net.modules():  # non-trivial running statistics, so that loading them matters
        if isinstance(m, torch.nn.BatchNorm1d):
            m.running_mean.uniform_(-1, 1)
    save_checkpoint(tmp_path / "det", model=net, config={"detector": cfg.to_dict()}, step=1)
    det = Detector.load(tmp_path / "det")
    assert det.threshold == 0.3 and det.config == cfg
    wav = np.random.default_rng(1).standard_normal(40000).astype(np.float32) * 0.1
    bounds, logits = det.segment_logits(wav)
    with torch.no_grad():
        ref = net.eval()(lfb(wav, cfg.features)[None, :, : 32000 // 160])
    assert len(bounds) == 2 and torch.allclose(logits[0], ref[0], atol=1e-5)


def _espeak(tmp_path, text: str, voice: str) -> str:
    exe = require_tool("espeak-ng")
    path = tmp_path / f"{voice.replace('+', '_')}.wav"
    subprocess.run([exe, "-v", voice, "-w", str(path), text], check=True)
    return str(path)


def test_shipped_model_flags_fresh_espeak_speech(tmp_path):
    # a sentence and a variant (m6) the detector never trained on
    det = Detector.load()
    path = _espeak(tmp_path, "Grandmother's recipe calls for two cups of flour and a pinch of salt.", "en-us+m6")
    r = det.score_file(path)
    assert r.label == "synthetic", r
    assert r.synthetic_score > det.threshold


def test_shipped_model_ranks_held_out_recordings_below_fresh_espeak(tmp_path):
    # pocketsphinx-testdata: held-out read speech (never trained on). The shipped model flags many held-out
    # recordings at its threshold (docs/safety.md#detection), so this checks the ranking, not the labels: most
    # recordings must score below every fresh espeak-ng sentence of voices it never trained on.
    data = require_path(POCKETSPHINX, "Debian pocketsphinx-testdata")
    det = Detector.load()
    human = [det.score_file(p).synthetic_score for p in sorted(data.glob("*/*.wav"))]
    texts = ["Please leave your message after the tone and we will call you back.",
             "The museum opens at nine and closes an hour before sunset."]
    synth = [det.score_file(_espeak(tmp_path, t, v)).synthetic_score for t in texts for v in ("en-us+m7", "en-gb+f5")]
    assert len(human) >= 5 and float(np.median(human)) < min(synth), (human, synth)


def test_cli_json_contract_and_segments(tmp_path, capsys):
    path = _espeak(tmp_path, "The quick brown fox jumps over the lazy dog, then it runs far away into the hills.",
                   "en-us+f4")
    assert main(["detect", path, "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert isinstance(out["synthetic_score"], float) and 0.0 <= out["synthetic_score"] <= 1.0
    assert out["label"] in ("synthetic", "human")
    assert out["label"] == ("synthetic" if out["synthetic_score"] >= out["threshold"] else "human")
    segs = out["segments"]
    assert len(segs) >= 2 and segs[0]["start"] == 0.0 and segs[-1]["end"] == pytest.approx(out["duration"], abs=1e-3)
    assert main(["detect", path]) == 0
    text = capsys.readouterr().out
    assert out["label"] in text.splitlines()[0] and len(text.splitlines()) == 1 + len(segs)


@pytest.mark.parametrize("kind", ["missing", "not_audio", "silent", "threshold", "model"])
def test_cli_bad_input_is_one_line(tmp_path, capsys, kind):
    args = ["detect", str(tmp_path / "x.wav")]
    if kind == "not_audio":
        (tmp_path / "x.wav").write_text("hello, not audio")
    elif kind in ("silent", "threshold", "model"):
        sf.write(tmp_path / "x.wav", np.zeros(16000, np.float32), 16000)
        args += {"threshold": ["--threshold", "1.5"], "model": ["--model", str(tmp_path / "nothing")]}.get(kind, [])
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("speechlm: error:") and "\n" not in err and "Traceback" not in err


def test_models_lists_the_detector(capsys):
    assert (DEFAULT_MODEL_DIR / "config.json").is_file()
    assert main(["models", "--json"]) == 0
    models = {m["name"]: m for m in json.loads(capsys.readouterr().out)}
    d = models["detector_default"]
    # eight members (four with the phase channels), 2.4 M float32 parameters: under 10 MB
    assert d["kind"] == "detector" and d["default"] is True and d["size_mb"] < 10


def test_channel_augment_keeps_length_and_changes_the_signal():
    from speechlm.safety.detector_data import channel_augment

    rng = np.random.default_rng(0)
    x = (0.1 * np.sin(2 * np.pi * 300 * np.arange(16000) / 16000)).astype(np.float32)
    outs = [channel_augment(x, rng) for _ in range(8)]
    assert all(y.shape == x.shape and np.isfinite(y).all() and np.abs(y).max() <= 1.0 for y, _ in outs)
    assert any(tags for _, tags in outs) and not all(np.allclose(y, x) for y, _ in outs)


def test_recording_augment_keeps_length_and_each_effect_changes_the_signal():
    from speechlm.safety.detector_data import recording_augment

    rng = np.random.default_rng(1)
    t = np.arange(16000) / 16000
    x = (0.1 * np.sin(2 * np.pi * 300 * t) * (0.2 + (t % 0.25 < 0.12))).astype(np.float32)  # bursts: a dynamics
    outs = [recording_augment(x, rng) for _ in range(24)]
    assert all(y.shape == x.shape and y.dtype == np.float32 and np.isfinite(y).all() for y, _ in outs)
    assert all(np.allclose(y, x) for y, tags in outs if not tags)
    for effect in ("eq", "compress", "room"):
        changed = [y for y, tags in outs if tags == [effect]]
        assert changed and not np.allclose(changed[0], x), effect


@pytest.mark.slow
def test_training_separates_a_toy_corpus(tmp_path):
    """Twenty steps on tones (synthetic) vs noise bursts (human) must beat chance on its valid split."""
    from speechlm.safety.detector_data import Clip, save_clips
    from speechlm.safety.detector_train import TrainConfig, train

    rng = np.random.default_rng(0)
    t = np.arange(32000) / 16000
    clips = []
    for i in range(40):
        tone = 0.3 * np.sin(2 * np.pi * rng.uniform(100, 300) * t) * (1 + 0.5 * np.sin(2 * np.pi * 3 * t))
        clips.append(Clip(tone.astype(np.float32), 1, "tone", "t", "valid" if i % 4 == 0 else "train", f"t{i}"))
        noise = 0.1 * rng.standard_normal(32000) * (np.abs(np.sin(2 * np.pi * 2 * t)) > 0.3)
        clips.append(Clip(noise.astype(np.float32), 0, "human/noise", "n", "valid" if i % 4 == 0 else "train",
                          f"n{i}"))
    (tmp_path / "c").mkdir()
    save_clips(tmp_path / "c" / "toy.npz", clips)
    out = train(tmp_path / "c", tmp_path / "m", TrainConfig(
        max_steps=20, batch_size=16, workers=1, aug_views=1,
        detector=DetectorConfig(net=NetConfig(channels=16))), log=lambda s: None)
    meta = json.loads((out / "config.json").read_text())
    assert meta["extra"]["valid_eer"] < 0.25


def _toy_corpus(folder, rng) -> None:
    """Tones (synthetic) and noise bursts (human), a quarter of them in the valid split."""
    from speechlm.safety.detector_data import Clip, save_clips

    t = np.arange(32000) / 16000
    clips = []
    for i in range(12):
        split = "valid" if i % 4 == 0 else "train"
        tone = 0.3 * np.sin(2 * np.pi * rng.uniform(100, 300) * t)
        clips.append(Clip(tone.astype(np.float32), 1, "tone", "t", split, f"t{i}"))
        noise = 0.1 * rng.standard_normal(32000) * (np.abs(np.sin(2 * np.pi * 2 * t)) > 0.3)
        clips.append(Clip(noise.astype(np.float32), 0, "human/noise", "n", split, f"n{i}"))
    folder.mkdir()
    save_clips(folder / "toy.npz", clips)


def test_combine_averages_members_and_sets_the_threshold_on_valid_humans(tmp_path, capsys):
    """`speechlm detector combine`: the ensemble's logits are its members' mean; its threshold is the stated
    quantile of the human valid clips' scores; members that differ, or one member, are refused in one line."""
    from speechlm.safety.detector import DetectorEnsemble
    from speechlm.safety.detector_data import load_corpus
    from speechlm.safety.detector_train import TrainConfig, clip_scores, featurize
    from speechlm.train.checkpoint import save_checkpoint

    rng = np.random.default_rng(0)
    _toy_corpus(tmp_path / "c", rng)
    cfg = DetectorConfig(net=NetConfig(channels=16))
    nets = []
    for k in range(2):
        torch.manual_seed(k)
        nets.append(build_net(cfg).eval())
        save_checkpoint(tmp_path / f"m{k}", model=nets[-1], config={"detector": cfg.to_dict()}, step=5)
    assert main(["detector", "combine", str(tmp_path / "m0"), str(tmp_path / "m1"), "--corpus", str(tmp_path / "c"),
                 "-o", str(tmp_path / "ens"), "--false-alarm", "0.25"]) == 0
    det = Detector.load(tmp_path / "ens")
    assert isinstance(det.net, DetectorEnsemble) and det.config.net.members == 2
    x = torch.randn(2, cfg.features.n_bands, 120)
    with torch.no_grad():
        assert torch.allclose(det.net(x), (nets[0](x) + nets[1](x)) / 2, atol=1e-5)
    humans = [c for c in load_corpus(tmp_path / "c", ("valid",)) if c.label == 0]
    items = featurize(humans, TrainConfig(detector=cfg, workers=1), log=lambda s: None)["valid"]
    scores = clip_scores(det.net, [v for it in items for v in it.views])
    assert det.threshold == pytest.approx(float(np.quantile(scores, 0.75)), abs=1e-5)
    meta = json.loads((tmp_path / "ens" / "config.json").read_text())
    assert meta["extra"]["member_steps"] == [5, 5] and "25%" in meta["extra"]["threshold_rule"]
    capsys.readouterr()
    wide = DetectorConfig(net=NetConfig(channels=32))
    save_checkpoint(tmp_path / "m2", model=build_net(wide), config={"detector": wide.to_dict()}, step=5)
    for argv in ([str(tmp_path / "m0"), str(tmp_path / "m2")], [str(tmp_path / "m0")]):
        assert main(["detector", "combine", *argv, "--corpus", str(tmp_path / "c"), "-o", str(tmp_path / "bad")]) != 0
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and not (tmp_path / "bad").exists()


def test_combine_mixes_members_with_and_without_phase_features(tmp_path, capsys):
    """A phase member and an LFB-only member combine into one ensemble: the LFB member reads the leading LFB
    channels of the phase features, whichever order they were given; other phase band counts are refused."""
    from speechlm.safety.detector import DetectorEnsemble
    from speechlm.train.checkpoint import save_checkpoint

    _toy_corpus(tmp_path / "c", np.random.default_rng(0))
    plain = DetectorConfig(net=NetConfig(channels=16))
    phased = DetectorConfig(features=FeatureConfig(phase_bands=8), net=NetConfig(channels=16))
    nets = {}
    for name, cfg in (("plain", plain), ("phased", phased), ("other", DetectorConfig(
            features=FeatureConfig(phase_bands=16), net=NetConfig(channels=16)))):
        torch.manual_seed(len(nets))
        nets[name] = build_net(cfg).eval()
        save_checkpoint(tmp_path / name, model=nets[name], config={"detector": cfg.to_dict()}, step=5)
    assert main(["detector", "combine", str(tmp_path / "phased"), str(tmp_path / "plain"), "--corpus",
                 str(tmp_path / "c"), "-o", str(tmp_path / "ens")]) == 0
    det = Detector.load(tmp_path / "ens")
    assert isinstance(det.net, DetectorEnsemble) and det.config.features.phase_bands == 8
    assert det.config.net.lfb_only_members == 1
    x = torch.randn(2, phased.features.channels, 90)
    with torch.no_grad():
        want = (nets["plain"](x[:, :160]) + nets["phased"](x)) / 2
        assert torch.allclose(det.net(x), want, atol=1e-5)
    wav = np.random.default_rng(1).standard_normal(24000).astype(np.float32) * 0.1
    assert 0.0 <= det.score_wav(wav, 16000).synthetic_score <= 1.0
    capsys.readouterr()
    assert main(["detector", "combine", str(tmp_path / "phased"), str(tmp_path / "other"), "--corpus",
                 str(tmp_path / "c"), "-o", str(tmp_path / "bad")]) != 0
    assert "phase" in capsys.readouterr().err and not (tmp_path / "bad").exists()


def test_vc_clips_convert_each_recording_to_another_sources_voice():
    from speechlm.safety.detector_data import Clip, vc_clips

    def clip(source: str, i: int, seconds: float) -> Clip:
        t = np.arange(int(16000 * seconds)) / 16000
        return Clip((0.3 * np.sin(2 * np.pi * (100 + i) * t)).astype(np.float32), 0, source, source, "train",
                    f"{source}_{i}")

    voices = [clip("a", 1, 4.0), clip("b", 2, 4.0), clip("b", 3, 1.0)]  # b_3 is too short to be a target
    seen = []

    def convert(wav: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, int]:
        seen.append(len(target))
        return wav * 0.5, 16000

    out = list(vc_clips(convert, [clip("a", 4, 2.0), clip("b", 5, 2.0)], voices, "train"))
    assert [c.id for c in out] == ["vc_a_4", "vc_b_5"] and all(c.label == 1 and c.split == "train" for c in out)
    assert seen == [4 * 16000, 4 * 16000]  # each to a 3-10 s recording of the other source


def _vowel(seconds: float = 0.6, f0: float = 140.0) -> np.ndarray:
    """A buzzy vowel-like tone: harmonics of ``f0`` under two formant-like peaks, with a noise floor."""
    t = np.arange(int(16000 * seconds)) / 16000
    x = sum(np.exp(-((k * f0 - 700) / 300) ** 2 - 0.0) * np.sin(2 * np.pi * k * f0 * t)
            + 0.5 * np.exp(-((k * f0 - 1200) / 300) ** 2) * np.sin(2 * np.pi * k * f0 * t) for k in range(1, 40))
    x = x + 0.01 * np.random.default_rng(0).standard_normal(len(t))
    return (0.3 * x / np.abs(x).max()).astype(np.float32)


@pytest.mark.parametrize("vocoder", ["world", "griffin_lim", "lpc"])
def test_copy_synthesis_keeps_length_and_level_and_changes_the_waveform(vocoder):
    from speechlm.safety.copy_synthesis import copy_synthesis

    x = _vowel()
    y = copy_synthesis(x, vocoder, np.random.default_rng(0))
    assert y.shape == x.shape and y.dtype == np.float32 and np.isfinite(y).all() and np.abs(y).max() <= 0.99
    level = np.sqrt((y[2000:-2000] ** 2).mean()) / np.sqrt((x[2000:-2000] ** 2).mean())
    assert 0.2 < level < 3.0, level  # the sound is still there
    assert np.corrcoef(x, y)[0, 1] < 0.99  # ... but made again, not copied
    with pytest.raises(ValueError, match="unknown vocoder"):
        copy_synthesis(x, "wavenet")


def test_vocoded_clips_are_synthetic_copies_of_the_recordings():
    from speechlm.safety.detector_data import Clip, vocoded_clips

    rec = [Clip(_vowel(1.0, 120.0 + 20 * i), 0, "human/x", "x", "train", f"x_{i}") for i in range(2)]
    out = list(vocoded_clips("lpc", rec, "train", seed=0))
    assert [c.id for c in out] == ["vocoded_lpc_x_0", "vocoded_lpc_x_1"]
    assert all(c.label == 1 and c.source == "vocoded_lpc" and c.split == "train" for c in out)


def test_featurize_in_worker_processes_gives_the_same_features(tmp_path):
    """Features made in two worker processes equal those made in one (the workers hand back numpy arrays: torch
    tensors would each hold a shared-memory file descriptor, and a few thousand clips ran out of them)."""
    from speechlm.safety.detector_data import load_clips
    from speechlm.safety.detector_train import TrainConfig, featurize

    _toy_corpus(tmp_path / "c", np.random.default_rng(1))
    clips = load_clips(tmp_path / "c" / "toy.npz")[:6]
    one = featurize(clips, TrainConfig(workers=1, aug_views=1), log=lambda s: None)
    two = featurize(clips, TrainConfig(workers=2, aug_views=1), log=lambda s: None)
    for split in ("train", "valid"):
        for a, b in zip(one[split], two[split], strict=True):
            assert all(isinstance(v, torch.Tensor) and torch.equal(v, w) for v, w in zip(a.views, b.views, strict=True))


def test_load_corpus_excludes_files_or_sources_and_refuses_unknown_names(tmp_path, capsys):
    """`--exclude` takes a corpus file name (`toy`, `toy.npz`) or a clip source (`tone`); a name matching neither
    is a one-line error before training (it once matched nothing silently: `vocoded_lpc_train` is a file, not a
    source)."""
    from speechlm.safety.detector_data import load_corpus

    _toy_corpus(tmp_path / "c", np.random.default_rng(0))
    assert len(load_corpus(tmp_path / "c")) == 24
    assert load_corpus(tmp_path / "c", exclude=["toy.npz"]) == [] == load_corpus(tmp_path / "c", exclude=["toy"])
    kept = load_corpus(tmp_path / "c", ("train",), exclude=["tone"])
    assert len(kept) == 9 and {c.source for c in kept} == {"human/noise"}
    with pytest.raises(SpeechLMError, match="tone_train"):
        load_corpus(tmp_path / "c", exclude=["tone_train", "tone"])
    for bad in (["--exclude", "nope"], ["--phase-bands", "7"]):
        assert main(["detector", "train", str(tmp_path / "c"), "-o", str(tmp_path / "m"), *bad]) != 0
        assert len(capsys.readouterr().err.strip().splitlines()) == 1 and not (tmp_path / "m").exists()
    assert main(["detector", "build", "-o", str(tmp_path / "b"), "--vocoded", "0"]) != 0
    assert len(capsys.readouterr().err.strip().splitlines()) == 1 and not (tmp_path / "b").exists()


def test_coded_clips_among_the_held_out_humans_load_as_a_never_seen_codec(tmp_path):
    """codec2-examples' f2400 / m2400 are coded copies of forig / morig: load_corpus counts them as synthetic
    (a never-seen source), the originals stay human."""
    from speechlm.safety.detector_data import UNSEEN, Clip, load_corpus, save_clips

    wav = np.random.default_rng(0).standard_normal(8000).astype(np.float32) * 0.1
    (tmp_path / "c").mkdir()
    save_clips(tmp_path / "c" / "human_test.npz", [
        Clip(wav, 0, "human/codec2_examples", cid, "test", cid) for cid in ("codec2_forig", "codec2_f2400")])
    got = {c.id: (c.label, c.source) for c in load_corpus(tmp_path / "c")}
    assert got["codec2_forig"] == (0, "human/codec2_examples")
    assert got["codec2_f2400"][0] == 1 and got["codec2_f2400"][1] in UNSEEN


def test_codec2_clips_resynthesise_through_the_debian_codec():
    """Each recording comes back through Codec 2 (8 kHz): about as long, not the same samples, a mode named."""
    require_tool("c2enc")
    require_tool("c2dec")
    from speechlm.safety.detector_data import CODEC2_MODES, Clip, codec2_clips

    t = np.arange(24000) / 16000
    voiced = (0.3 * np.sign(np.sin(2 * np.pi * 120 * t)) * np.hanning(24000)).astype(np.float32)
    voiced = np.convolve(voiced, np.hanning(15) / 7, mode="same").astype(np.float32)
    src = [Clip(voiced, 0, "human/x", "x", "test", f"x{i}") for i in range(2)]
    out = list(codec2_clips(src, "test", 0))
    assert len(out) == 2 and all(c.label == 1 and c.source == "codec2" for c in out)
    assert all(c.voice.removeprefix("codec2_") in CODEC2_MODES for c in out)
    for c in out:
        assert abs(len(c.wav) - len(voiced)) < 0.3 * len(voiced)
        n = min(len(c.wav), len(voiced))
        assert not np.allclose(c.wav[:n], voiced[:n], atol=1e-3)


def test_a_file_scores_as_its_corpus_copy_does(tmp_path):
    """`speechlm detect` on an 8-kHz file and the bench on the corpus's 16-bit copy of it give the same score: the
    detector puts its input on the corpus's 16-bit steps (resampled in floating point, the band above 4 kHz was
    near silent, where every training clip had quantisation noise)."""
    from speechlm.safety.detector import to_16bit
    from speechlm.safety.detector_data import Clip, load_clips, prepare, save_clips

    rng = np.random.default_rng(3)
    t = np.arange(8000 * 3) / 8000
    voiced = np.sign(np.sin(2 * np.pi * 110 * t + 2 * np.sin(2 * np.pi * 3 * t))) * (np.sin(2 * np.pi * 2 * t) > 0)
    wav8k = (0.2 * np.convolve(voiced, np.hanning(9) / 4.5, mode="same") + 0.002 * rng.standard_normal(t.size))
    wav8k = wav8k.astype(np.float32)
    save_clips(tmp_path / "c.npz", [Clip(prepare(wav8k, 8000), 0, "human/x", "x", "test", "x0")])
    copy = load_clips(tmp_path / "c.npz")[0].wav
    q = to_16bit(copy)
    assert np.array_equal(q, to_16bit(q)) and np.abs(q - copy).max() < 1e-6  # on the steps already: unchanged
    det = Detector.load()
    a, b = det.score_wav(wav8k, 8000).synthetic_score, det.score_wav(copy, 16000).synthetic_score
    assert abs(a - b) < 0.02
