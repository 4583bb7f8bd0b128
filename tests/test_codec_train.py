"""The training recipe end to end on the tiny preset (slow: trains; run with -m slow)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf

from speechlm.data.manifest import Utterance, write_manifest


@pytest.fixture
def manifest(tmp_path):
    rng = np.random.default_rng(0)
    utts = []
    for i in range(6):
        t = np.arange(16000) / 16000
        x = 0.3 * np.sin(2 * np.pi * (120 + 30 * i) * t) + 0.01 * rng.standard_normal(16000)
        sf.write(tmp_path / f"u{i}.wav", x.astype(np.float32), 16000)
        utts.append(
            Utterance(
                id=f"u{i}",
                audio=f"u{i}.wav",
                text="x",
                lang="en",
                speaker=f"s{i % 2}",
                duration=1.0,
                split="valid" if i == 5 else "train",
            )
        )
    write_manifest(tmp_path / "m.jsonl", utts)
    return tmp_path / "m.jsonl"


@pytest.mark.slow
def test_tiny_train_resume_and_load(manifest, tmp_path):
    from speechlm.tokenizers.codec.api import Codec
    from speechlm.tokenizers.codec.train import export_model, train

    out = tmp_path / "run"
    m1 = train("configs/codec/tiny.yaml", [str(manifest)], out, ["train.max_steps=2"], show_progress=False)
    assert m1["checkpoint"].endswith("step_00000002")
    # Rerun with more steps: resumes from step 2 (adversarial phase starts at step 2 in the tiny preset).
    m2 = train("configs/codec/tiny.yaml", [str(manifest)], out, ["train.max_steps=4"], show_progress=False)
    assert m2["checkpoint"].endswith("step_00000004") and "adv/disc" in m2
    steps = [json.loads(line)["step"] for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert steps.count(1) == 1 and 4 in steps  # step 1 was not trained twice
    export_model(out, tmp_path / "exported", "tiny_test")
    codec = Codec.load(tmp_path / "exported")
    assert codec.tokenizer_id.startswith("tiny_test@")
    wav, sr = codec.decode(codec.encode(np.zeros(4000, np.float32), 16000))
    assert sr == 16000 and wav.shape == (4000,)


def test_decoder_finetune_keeps_the_token_space(manifest, tmp_path):
    """freeze_tokens: only the decoder changes, so the exported codec has the same tokenizer_id and the same
    codes as the one it started from, while its decoder (and the audio it makes) moved."""
    from speechlm.tokenizers.codec.api import Codec
    from speechlm.tokenizers.codec.train import export_model, train

    base = tmp_path / "base"
    train("configs/codec/tiny.yaml", [str(manifest)], base, ["train.max_steps=2"], show_progress=False)
    ft = tmp_path / "ft"
    over = [f"codec.init={base}", "codec.freeze_tokens=true", "codec.adv_start=0", "train.max_steps=2",
            "codec.lr=0.01"]
    m = train("configs/codec/tiny.yaml", [str(manifest)], ft, over, show_progress=False)
    assert "adv/disc" in m
    export_model(base, tmp_path / "a", "tiny_test")
    export_model(ft, tmp_path / "b", "tiny_test")
    a, b = Codec.load(tmp_path / "a"), Codec.load(tmp_path / "b")
    assert a.tokenizer_id == b.tokenizer_id
    x = 0.3 * np.sin(2 * np.pi * 200 * np.arange(8000) / 16000).astype(np.float32)
    ta, tb = a.encode(x, 16000), b.encode(x, 16000)
    np.testing.assert_array_equal(ta.codes, tb.codes)
    wa, _ = a.decode(ta)
    wb, _ = b.decode(ta)  # a tokens file of the old codec decodes with the new one
    assert np.abs(wa - wb).max() > 1e-4
    # From an exported (weight norm folded, fp16) codec too: plain convolutions train and export the same way.
    over[0] = f"codec.init={tmp_path / 'a'}"
    train("configs/codec/tiny.yaml", [str(manifest)], tmp_path / "ft2", over, show_progress=False)
    export_model(tmp_path / "ft2", tmp_path / "c", "tiny_test")
    assert Codec.load(tmp_path / "c").tokenizer_id == a.tokenizer_id


def test_freeze_tokens_needs_init(manifest, tmp_path):
    from speechlm.errors import SpeechLMError
    from speechlm.tokenizers.codec.train import train

    with pytest.raises(SpeechLMError, match="needs codec.init"):
        train("configs/codec/tiny.yaml", [str(manifest)], tmp_path / "r", ["codec.freeze_tokens=true"],
              show_progress=False)


def test_harmonic_codec_trains_with_pitch_losses_and_warm_starts(manifest, tmp_path):
    """A harmonic decoder gets YIN-supervised F0/voicing losses; warm-starting it from a plain codec loads every
    plain weight and starts only the new branch fresh."""
    from speechlm.tokenizers.codec.train import load_codec, train

    base = tmp_path / "base"
    train("configs/codec/tiny.yaml", [str(manifest)], base, ["train.max_steps=1"], show_progress=False)
    over = [f"codec.init={base}", "model.harmonics=4", "train.max_steps=2", "codec.adv_start=100"]
    m = train("configs/codec/tiny.yaml", [str(manifest)], tmp_path / "h", over, show_progress=False)
    assert np.isfinite(m["pitch/f0"]) and np.isfinite(m["pitch/voicing"])
    plain, _, _ = load_codec(str(base))
    harm, cfg, _ = load_codec(str(tmp_path / "h"))
    assert cfg.harmonics == 4
    a, b = plain.state_dict(), harm.state_dict()
    assert set(a) < set(b) and all(k.startswith("decoder.controls.") for k in set(b) - set(a))
