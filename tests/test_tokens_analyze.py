"""Tokenizer analysis: the metrics on constructed cases, and ``speechlm tokens analyze`` end to end."""

from __future__ import annotations

import json

import numpy as np
import pytest
from _semantic_corpus import make_corpus, save_tiny_codec, train_tiny_semantic

from speechlm.eval.tokens.metrics import (
    heldout_purity,
    joint_units,
    ngram_perplexity,
    purity_pnmi,
    speaker_probe,
    unit_histograms,
    usage_stats,
)

pytestmark = pytest.mark.usefixtures("one_thread")


def test_purity_and_pnmi_bounds():
    rng = np.random.default_rng(0)
    phones = rng.choice(list("abcdef"), 5000)
    ident = np.unique(phones, return_inverse=True)[1]
    assert purity_pnmi(ident, phones) == pytest.approx((1.0, 1.0))
    # units that split each phone in two are still pure
    assert purity_pnmi(ident * 2 + rng.integers(0, 2, 5000), phones) == pytest.approx((1.0, 1.0))
    pur, pnmi = purity_pnmi(rng.integers(0, 6, 5000), phones)
    assert pnmi < 0.01 and pur < 0.25
    # one constant unit: no information
    assert purity_pnmi(np.zeros(5000, int), phones)[1] == pytest.approx(0.0, abs=1e-12)


def test_heldout_purity_is_not_fooled_by_unique_units():
    rng = np.random.default_rng(1)
    phones = rng.choice(list("abcd"), 4000)
    unique = np.arange(4000)  # every frame its own unit: plug-in purity is 1, held-out is ~majority
    assert purity_pnmi(unique, phones)[0] == pytest.approx(1.0)
    assert heldout_purity(unique[:2000], phones[:2000], unique[2000:], phones[2000:]) < 0.35
    ident = np.unique(phones, return_inverse=True)[1]
    assert heldout_purity(ident[:2000], phones[:2000], ident[2000:], phones[2000:]) == pytest.approx(1.0)


def test_usage_joint_units_and_histograms():
    assert usage_stats(np.array([0, 1, 2, 3]), 8) == pytest.approx((0.5, 2.0))
    codes = np.array([[0, 0, 1, 1], [0, 1, 0, 1]])
    assert len(np.unique(joint_units(codes))) == 4 and len(np.unique(joint_units(codes[:1]))) == 2
    h = unit_histograms([codes], 2)
    assert h.shape == (1, 4) and np.allclose(h**2, 0.5)


def test_speaker_probe_separable_and_random():
    rng = np.random.default_rng(0)
    spk = np.repeat([f"s{i}" for i in range(6)], 6)
    means = rng.normal(0, 3, (6, 10))
    x = (means[np.repeat(np.arange(6), 6)] + rng.normal(0, 0.3, (36, 10))).astype(np.float32)
    r = speaker_probe(x, spk)
    assert r.accuracy == 1.0 and r.chance == pytest.approx(1 / 6) and r.n_speakers == 6
    noise = rng.normal(size=(36, 10)).astype(np.float32)
    assert speaker_probe(noise, spk).accuracy < 0.5


def test_ngram_perplexity_orders_predictability():
    rng = np.random.default_rng(0)
    cyc = [np.arange(200) % 5 for _ in range(3)]
    rand = [rng.integers(0, 5, 200) for _ in range(3)]
    assert ngram_perplexity(cyc, cyc, 5) < 1.5
    assert ngram_perplexity(rand, [rng.integers(0, 5, 200)], 5) == pytest.approx(5, rel=0.15)


@pytest.mark.needs_tool("espeak-ng")
def test_analyze_cli_end_to_end(tmp_path, capsys):
    from speechlm.cli import main

    manifest = make_corpus(tmp_path)
    run = train_tiny_semantic(manifest, tmp_path / "sem")
    codec = save_tiny_codec(tmp_path / "codec")
    out = tmp_path / "ta"
    rc = main(["tokens", "analyze", "--tokenizers", f"semantic:{run},{run / 'mfcc_kmeans'},codec:{codec}",
               "--data", str(manifest), "--split", "all", "--lm-train-utts", "4", "--resynth-utts", "2",
               "-o", str(out)])
    assert rc == 0
    res = json.loads(out.with_suffix(".json").read_text())
    assert [r["codebooks"] for r in res["rows"]] == [1, 1, 1, 2, 3, 4]
    assert res["aligned"] > 0 and res["speakers"] == 2
    for r in res["rows"]:
        assert 0 <= r["pnmi"] <= 1 and 0 <= r["purity"] <= 1 and r["lm_ppl"] >= 1
        assert r["kbps"] > 0 and 0 <= r["speaker_acc"] <= 1
    codec_rows = [r for r in res["rows"] if r["tokenizer"].startswith("codec")]
    assert all("pesq" in r and "stoi" in r and r["mel_dist"] >= 0 for r in codec_rows)
    assert [r["kbps"] for r in codec_rows] == sorted(r["kbps"] for r in codec_rows)
    cp = res["content_probe"]
    assert 0 <= cp["speaker_acc"] <= 1 and cp["speaker_chance"] == 0.5
    md = out.with_suffix(".md").read_text()
    assert "Content floor" in md
    assert md.count("\n| ") == len(res["rows"]) + 1
    assert out.with_suffix(".png").stat().st_size > 1000
    rc = main(["tokens", "analyze", "--tokenizers", "nonsense:x", "--data", str(manifest), "-o", str(tmp_path / "b")])
    assert rc == 2
