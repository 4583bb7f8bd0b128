"""The unit hybrid: a codec whose level 1 is the ``semantic:asr`` unit and whose other levels quantise the rest."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import torch
from _semantic_corpus import CONFIGS, TINY_CODEC, make_corpus, save_tiny_codec

from speechlm.errors import SpeechLMError
from speechlm.tokenizers.codec.api import Codec
from speechlm.tokenizers.codec.builder import CodecConfig, build_codec
from speechlm.tokenizers.codec.train import load_codec
from speechlm.tokenizers.hybrid.train import export_hybrid, train
from speechlm.tokenizers.hybrid.units import unit_codec_from
from speechlm.tokenizers.semantic import supervised
from speechlm.tokenizers.semantic.api import SemanticTokenizer

pytestmark = [pytest.mark.needs_tool("espeak-ng"),
              pytest.mark.usefixtures("one_thread")]


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("units")
    manifest = make_corpus(root)
    sem = root / "sem"  # as many units as the tiny codec has codes
    supervised.cluster_asr([str(manifest)], sem, layer=2, clusters=TINY_CODEC["codebook_size"], name="su",
                           show_progress=False)
    return manifest, sem, save_tiny_codec(root / "codec")


def _wav(manifest, name="v0_1.wav"):
    wav, _ = sf.read(manifest.parent / name, dtype="float32")
    return wav


def test_level_one_is_the_unit_and_the_rest_starts_from_the_base(setup):
    manifest, sem, codec = setup
    tok = SemanticTokenizer.load(sem)
    base, cfg, _ = load_codec(str(codec))
    wav = _wav(manifest)
    model, ucfg = unit_codec_from(base, cfg, tok, [wav])
    assert ucfg.n_q == cfg.n_q and model.n_q == cfg.n_q and model.quantizer.n_q == cfg.n_q - 1
    # base levels 2..n_q are the residual quantizer's 1..n_q-1
    assert torch.equal(model.quantizer.layers[0].codebook.weight, base.quantizer.layers[1].codebook.weight)
    model.eval()
    codes, frames = model.encode(torch.from_numpy(wav)[None, None])
    units = tok.encode(wav, 16000).codes[0]
    assert codes.shape == (1, cfg.n_q, len(units)) and np.array_equal(codes[0, 0].numpy(), units)
    # each seen unit's embedding starts at the mean base latent of its frames
    z = base.encoder(base._pad(torch.from_numpy(wav)[None, None]))[0].T
    u = int(np.bincount(units).argmax())
    assert torch.allclose(model.unit_level.embed.weight[u], z[torch.from_numpy(units == u)].mean(0), atol=1e-4)


def test_unit_count_must_match_the_codebooks(setup, tmp_path):
    manifest, _, codec = setup
    small = tmp_path / "sem6"
    supervised.cluster_asr([str(manifest)], small, layer=2, clusters=6, show_progress=False)
    base, cfg, _ = load_codec(str(codec))
    with pytest.raises(SpeechLMError, match="--clusters 64"):
        unit_codec_from(base, cfg, SemanticTokenizer.load(small))


def test_recipe_trains_exports_and_the_codec_behaves(setup, tmp_path):
    manifest, sem, codec = setup
    res = train(CONFIGS / "hybrid" / "tiny.yaml", [str(manifest)], tmp_path / "run",
                [f"hybrid.base={codec}", f"hybrid.teacher={sem}", "hybrid.level1=units", "hybrid.init_clips=4"],
                show_progress=False)
    assert np.isfinite(res["loss"]) and "distill/cos" not in res
    c = Codec.load(export_hybrid(tmp_path / "run", tmp_path / "exp", "units_tiny"))
    wav, short = _wav(manifest), _wav(manifest, "v1_2.wav")
    t = c.encode(wav, 16000)
    assert t.codes.shape[0] == 4 and np.array_equal(t.codes[0], SemanticTokenizer.load(sem).encode(wav, 16000).codes[0])
    assert len(c.decode(t)[0]) == len(wav)
    one = c.encode(wav, 16000, bitrate=c.bitrates[0])
    assert np.array_equal(one.codes, t.codes[:1]) and len(c.decode(one)[0]) == len(wav)
    batch = c.encode_batch([wav, short], 16000)  # padded batch = one by one
    for b, single in ((batch[0], t), (batch[1], c.encode(short, 16000))):
        assert b.codes.shape == single.codes.shape and np.array_equal(b.codes[0], single.codes[0])  # the units
        # levels 2+: the batched and the streamed encoder differ in float rounding only, which can flip a
        # near-tie of this untrained model's residual codes in the silent tail
        assert (b.codes == single.codes).mean() > 0.98
    p = tmp_path / "in.wav"
    sf.write(p, wav, 16000)
    assert np.array_equal(c.encode_file(p).codes, t.codes)
    with pytest.raises(SpeechLMError, match="whole inputs"):
        next(c.model.encode_stream([torch.zeros(1, 1, 320)]))
    # the unit network and its centroids are part of the token space: another unit set is another tokenizer
    sd = {k: v.clone() for k, v in c.model.state_dict().items()}
    sd["unit_level.centroids"] = sd["unit_level.centroids"].flip(0)
    from speechlm.tokenizers.codec.api import token_space_sha256

    assert token_space_sha256(sd) != token_space_sha256(c.model.state_dict())


def test_an_encoder_teacher_is_refused_for_units(setup, tmp_path):
    from _semantic_corpus import train_tiny_semantic

    manifest, _, codec = setup
    enc = train_tiny_semantic(manifest, tmp_path / "enc")
    with pytest.raises(SpeechLMError, match="ASR-unit tokenizer"):
        train(CONFIGS / "hybrid" / "tiny.yaml", [str(manifest)], tmp_path / "run",
              [f"hybrid.base={codec}", f"hybrid.teacher={enc}", "hybrid.level1=units"], show_progress=False)
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_a_unit_level_config_must_fit():
    spec = {"asr": {"model": {}, "features": {}}, "layer": 1, "clusters": 64}
    with pytest.raises(SpeechLMError):
        build_codec(CodecConfig(**{**TINY_CODEC, "unit_level": spec}))


def test_shipped_hybrid_level_one_is_the_shipped_semantic_asr():
    """The README's claim: `codec_hybrid` level 1 and `semantic:asr` are one unit set (same tokenizer, same codes)."""
    import json

    from speechlm.tokenizers.registry import load_tokenizer
    from speechlm.tokenizers.semantic.api import ASSETS

    cfg = json.loads((ASSETS / "codec_hybrid" / "config.json").read_text())
    sem = load_tokenizer("semantic:asr")
    assert cfg["config"]["model"]["unit_level"]["tokenizer"] == sem.tokenizer_id
    hyb = load_tokenizer("hybrid")
    # the names `speechlm models` lists load the same tokenizers as the kind:model spellings
    assert load_tokenizer("semantic_asr").tokenizer_id == sem.tokenizer_id
    assert load_tokenizer("codec_hybrid").tokenizer_id == hyb.tokenizer_id
    with pytest.raises(SpeechLMError, match="unknown tokenizer"):
        load_tokenizer("codex_sf")
    wav = np.random.default_rng(0).normal(0, 0.1, 16000).astype(np.float32)
    a, b = hyb.encode(wav, 16000).codes[0], sem.encode(wav, 16000).codes[0]
    assert abs(len(a) - len(b)) <= 1 and (a[: len(b)] == b[: len(a)]).all()
