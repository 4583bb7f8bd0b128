"""The hybrid codec recipe: the level-1 distillation trains, a run resumes into an exportable, loadable codec."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from _semantic_corpus import CONFIGS, TINY_CODEC, make_corpus, save_tiny_codec, train_tiny_semantic

from speechlm.tokenizers.codec.api import Codec
from speechlm.tokenizers.codec.builder import CodecConfig, build_codec
from speechlm.tokenizers.hybrid.train import Level1Capture, export_hybrid, teacher_features, train
from speechlm.tokenizers.semantic.api import SemanticTokenizer

pytestmark = [pytest.mark.needs_tool("espeak-ng"),
              pytest.mark.usefixtures("one_thread")]


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("hybrid")
    manifest = make_corpus(root)
    return manifest, train_tiny_semantic(manifest, root / "sem"), save_tiny_codec(root / "codec")


def test_distillation_pulls_level_one_toward_the_teacher(setup):
    manifest, sem, _ = setup
    teacher = SemanticTokenizer.load(sem)
    torch.manual_seed(0)
    model = build_codec(CodecConfig(**TINY_CODEC))
    cap = Level1Capture(model.quantizer.layers[0])
    proj = torch.nn.Linear(TINY_CODEC["dim"], teacher.encoder.cfg.dim)
    import soundfile as sf

    wav, _ = sf.read(manifest.parent / "v0_0.wav", dtype="float32")
    x = torch.from_numpy(np.resize(wav, 16000))[None, None]
    opt = torch.optim.Adam(list(model.parameters()) + list(proj.parameters()), 3e-3)
    cos = []
    for _ in range(25):
        model(x, n_q=4)
        target = teacher_features(teacher, x, cap.out.shape[-1], 16000)
        c = F.cosine_similarity(proj(cap.out.transpose(1, 2)), target, dim=-1).mean()
        opt.zero_grad()
        (1 - c).backward()
        opt.step()
        cos.append(float(c.detach()))
    assert cos[-1] > cos[0] + 0.1


def test_recipe_runs_and_exports_a_codec(setup, tmp_path):
    manifest, sem, codec = setup
    res = train(CONFIGS / "hybrid" / "tiny.yaml", [str(manifest)], tmp_path / "run",
                [f"hybrid.base={codec}", f"hybrid.teacher={sem}"], show_progress=False)
    assert np.isfinite(res["loss"]) and -1 <= res["distill/cos"] <= 1
    dest = export_hybrid(tmp_path / "run", tmp_path / "codec_hybrid", "codec_hybrid_tiny")
    c = Codec.load(dest)
    assert c.tokenizer_id.startswith("codec_hybrid_tiny@") and c.num_codebooks == 4
    t = c.encode(np.random.default_rng(0).normal(0, 0.1, 8000).astype(np.float32), 16000)
    assert t.codes.shape == (4, 25) and len(c.decode(t)[0]) == 8000


def test_an_asr_teacher_gives_its_block_features_frame_for_frame(setup):
    from speechlm.tokenizers.hybrid.train import teacher_dim

    manifest, _, _ = setup
    teacher = SemanticTokenizer.load("asr")  # the shipped supervised tokenizer: ASR front end + blocks
    import soundfile as sf

    wav, _ = sf.read(manifest.parent / "v0_0.wav", dtype="float32")
    x = torch.from_numpy(np.stack([np.resize(wav, 12800), np.resize(wav[::-1], 12800)]))[:, None]
    t = teacher_features(teacher, x, 40, 16000)
    assert teacher_dim(teacher) == t.shape[-1] == 128 and t.shape == (2, 40, 128)
    np.testing.assert_allclose(t[1].numpy(), teacher.features(x[1, 0].numpy(), 16000)[:40], atol=1e-5)
    assert not torch.allclose(t[0], t[1])
