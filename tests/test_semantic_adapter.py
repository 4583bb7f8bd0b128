"""The unit adapter: phone supervision, speaker confusion on planted structure, and cluster-asr with it."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf
import torch
from _semantic_corpus import make_corpus

from speechlm.cli import main
from speechlm.errors import SpeechLMError
from speechlm.tokenizers.semantic import supervised
from speechlm.tokenizers.semantic.adapter import (
    AdapterConfig,
    AdapterTrainConfig,
    UnitAdapter,
    train_adapter,
)
from speechlm.tokenizers.semantic.api import SemanticTokenizer

pytestmark = pytest.mark.usefixtures("one_thread")


def test_adapter_shapes_config_and_bad_configs():
    a = UnitAdapter(AdapterConfig(dim=8, hidden=16, kernel=3))
    y = a(torch.randn(2, 11, 8))
    assert y.shape == (2, 11, 8)
    assert torch.allclose(y.mean(-1), torch.zeros(2, 11), atol=1e-5)  # layer-normalised frames
    assert AdapterConfig.from_dict(a.cfg.to_dict()) == a.cfg
    old = AdapterConfig.from_dict({"dim": 8, "hidden": 16, "kernel": 3})  # a config saved before dilations
    assert old.dilations == (1, 1) and old.context == 2
    deep = AdapterConfig.from_dict({"dim": 8, "hidden": 16, "kernel": 3, "dilations": [1, 2, 4]})
    assert deep.context == 7 and AdapterConfig.from_dict(deep.to_dict()) == deep
    assert UnitAdapter(deep)(torch.randn(1, 5, 8)).shape == (1, 5, 8)
    for bad in ({"dim": 8, "hidden": 16, "kernel": 4}, {"dim": 0}, {"dim": "x"}, {"nope": 1},
                {"dilations": []}, {"dilations": [1, 0]}, {"dilations": "12"}):
        with pytest.raises(SpeechLMError):
            AdapterConfig.from_dict(bad)


@pytest.mark.parametrize("dilations", [(1, 1), (1, 2, 4)])
def test_adapter_in_windows_equals_one_pass(dilations):
    torch.manual_seed(0)
    a = UnitAdapter(AdapterConfig(dim=8, hidden=16, kernel=5, dilations=dilations)).eval()
    x = torch.randn(53, 8)
    with torch.no_grad():
        one = a(x[None])[0]
        for window in (1, 7, 53, 100):
            assert torch.allclose(supervised.apply_in_windows(a, x, window), one, atol=1e-5)
        # windows without their context differ at the edges: what the check above guards against
        bare = torch.cat([a(x[i:i + 7][None])[0] for i in range(0, 53, 7)])
        assert not torch.allclose(bare, one, atol=1e-3)


def _planted(n_utts: int = 48, t: int = 30, dim: int = 8, seed: int = 0, split_phones: bool = False):
    """Frames = phone pattern (dims 0-3) + a strong per-speaker offset (dims 4-7): 4 phones, 6 speakers. With
    ``split_phones`` even speakers ("language" 0) say phones 0-1 only, odd ones phones 2-3."""
    rng = np.random.default_rng(seed)
    phone_vecs = rng.normal(size=(4, dim)) * np.r_[np.ones(4), np.zeros(dim - 4)]
    spk_vecs = rng.normal(size=(6, dim)) * 3 * np.r_[np.zeros(4), np.ones(dim - 4)]
    feats, phones, spks = [], [], []
    for i in range(n_utts):
        s = i % 6
        p = rng.integers(0, 2, t) + 2 * (s % 2) if split_phones else rng.integers(0, 4, t)
        feats.append((phone_vecs[p] + spk_vecs[s] + 0.1 * rng.normal(size=(t, dim))).astype(np.float32))
        phones.append(p)
        spks.append(s)
    return feats, phones, spks


def test_speaker_confusion_leaves_the_speaker_heads_at_chance():
    """The speaker heads train on the adapter's (detached) output all along: without the confusion loss they learn
    the planted voices; with it the adapter keeps the phones and the heads stay near chance (ln 6 = 1.79)."""
    feats, phones, spks = _planted()
    cfg = dict(epochs=40, batch=8, lr=3e-3, seed=0)
    small = AdapterConfig(dim=8, hidden=16, kernel=3)
    _, plain = train_adapter(feats, phones, spks, 4, 6, AdapterTrainConfig(adv=0.0, **cfg), small,
                             show_progress=False)
    _, adv = train_adapter(feats, phones, spks, 4, 6, AdapterTrainConfig(adv=1.0, **cfg), small, show_progress=False)
    assert plain["phone"] < 0.2 and adv["phone"] < 0.2  # content kept either way (chance: ln 4 = 1.39)
    assert plain["spk_utt"] < 1.65 and plain["confusion"] > 0.15
    assert adv["spk_utt"] > 1.7 and adv["confusion"] < 0.08


def test_speaker_groups_keep_the_phones_that_name_a_language():
    """When the phones alone tell two groups of speakers apart, confusing all speakers means hiding the phones;
    confusing them within their group does not."""
    feats, phones, spks = _planted(split_phones=True)
    cfg = AdapterTrainConfig(adv=1.0, epochs=40, batch=8, lr=3e-3, seed=0)
    small = AdapterConfig(dim=8, hidden=16, kernel=3)
    _, flat = train_adapter(feats, phones, spks, 4, 6, cfg, small, show_progress=False)
    _, grouped = train_adapter(feats, phones, spks, 4, 6, cfg, small, groups=[0, 1, 0, 1, 0, 1], show_progress=False)
    assert flat["phone"] > 0.3 and grouped["phone"] < 0.1


def test_train_adapter_refuses_bad_inputs():
    feats, phones, spks = _planted(6)
    with pytest.raises(SpeechLMError, match="match"):
        train_adapter(feats, [p[:-1] for p in phones], spks, 4, 6, show_progress=False)
    with pytest.raises(SpeechLMError, match="2 training speakers"):
        train_adapter(feats, phones, [0] * 6, 4, 1, AdapterTrainConfig(adv=0.5), show_progress=False)
    with pytest.raises(SpeechLMError, match="groups"):
        train_adapter(feats, phones, spks, 4, 6, groups=[0, 1], show_progress=False)
    with pytest.raises(SpeechLMError, match="dim"):
        train_adapter(feats, phones, spks, 4, 6, adapter_cfg=AdapterConfig(dim=16), show_progress=False)


@pytest.mark.needs_tool("espeak-ng")
def test_cluster_asr_with_adapter_round_trips(tmp_path, capsys):
    (tmp_path / "c").mkdir()
    corpus = make_corpus(tmp_path / "c")
    dest = tmp_path / "tok"
    supervised.cluster_asr([str(corpus)], dest, layer=2, clusters=6, adapter_epochs=2, adapter_dilations=(1, 2),
                           show_progress=False)
    saved = json.loads((dest / "config.json").read_text())
    want = {"dim": 128, "hidden": 256, "kernel": 5, "dilations": [1, 2]}
    assert saved["config"]["semantic"]["asr"]["adapter"] == want
    info = saved["data_summary"]["adapter"]
    assert info["aligned_utterances"] == 8 and info["speakers"] == 2 and info["epochs"] == 2
    tok = SemanticTokenizer.load(dest)
    assert tok.asr.adapter is not None
    wav, sr = sf.read(corpus.parent / "v1_5.wav", dtype="float32")
    f = tok.features(wav, sr)
    assert np.allclose(f.mean(1), 0, atol=1e-3)  # the adapter's layer norm is the last step
    t = tok.encode(wav, sr)
    assert t.codes.max() < 6 and (tok.encode(wav, sr).codes == t.codes).all()
    assert main(["semantic", "info", "--model", str(dest)]) == 0
    assert "phone-supervised adapter" in capsys.readouterr().out
    # a unit codec built on it carries the adapter in its spec
    from speechlm.tokenizers.codec.unit_level import UnitLevel
    from speechlm.tokenizers.hybrid.units import unit_spec

    spec, state, centroids = unit_spec(tok)
    assert spec["adapter"] == saved["config"]["semantic"]["asr"]["adapter"]
    lvl = UnitLevel(spec, 16)
    lvl.asr.load_state_dict(state)
    lvl.centroids.copy_(torch.from_numpy(centroids))
    assert (lvl.units_1d(tok._prepare(wav, sr)) == t.codes[0]).all()


def test_cli_refuses_negative_adapter_settings(tmp_path, capsys):
    man = tmp_path / "m.jsonl"
    man.write_text("")
    for bad in (["--adapter-epochs", "-1"], ["--adapter-dilations", "1,x"], ["--adapter-dilations", "1,0"]):
        assert main(["semantic", "cluster-asr", "--data", str(man), "-o", str(tmp_path / "x"), *bad]) == 2
        err = capsys.readouterr().err
        assert "adapter" in err and len(err.strip().splitlines()) == 1 and not (tmp_path / "x").exists()
