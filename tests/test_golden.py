"""Golden fixtures of the shipped models: the tokens of one fixed input and statistics of their decoded audio
(codecs, semantic tokenizers), the bridge's codec tokens for its units, the recogniser's transcript of it, and
the length and sound of the codec LM's speech for a fixed text and seed.

A dependency upgrade (torch, numpy, pyworld, soxr) or a code change that alters what a shipped model does fails
here, with the share of tokens that moved. Regenerate deliberately, after checking why they moved:

    .venv/bin/python tests/test_golden.py --write
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

FIXTURE = Path(__file__).parent / "golden" / "models.json"
SR = 16000
CODECS = ("sf", "pitch", "codec_default", "hybrid")
SEMANTIC = ("asr", "default", "mfcc")


def fixed_input() -> np.ndarray:
    """2 s of a speech-like signal, made here (no files, no tools): a gliding 110-220 Hz harmonic source with
    -12 dB/octave harmonics, shaped by three moving formants, syllable-rate amplitude, a noisy fricative burst."""
    rng = np.random.default_rng(1234)
    t = np.arange(2 * SR) / SR
    f0 = 110 * 2 ** (t / 2) * (1 + 0.02 * np.sin(2 * np.pi * 5 * t))
    phase = 2 * np.pi * np.cumsum(f0) / SR
    src = sum(np.sin(k * phase) / k**2 for k in range(1, 40))
    spec = np.fft.rfft(src)
    freqs = np.fft.rfftfreq(len(src), 1 / SR)
    env = sum(np.exp(-0.5 * ((freqs - fc) / bw) ** 2) for fc, bw in ((500, 120), (1500, 200), (2500, 300)))
    voiced = np.fft.irfft(spec * (0.05 + env), len(src))
    am = 0.5 + 0.5 * np.sin(2 * np.pi * 4 * t) ** 2
    noise = rng.standard_normal(len(t)) * ((t > 1.2) & (t < 1.4))
    x = voiced * am + 0.1 * noise
    return (0.3 * x / np.abs(x).max()).astype(np.float32)


def _stats(y: np.ndarray) -> dict[str, float]:
    spec = np.abs(np.fft.rfft(y)) ** 2
    freqs = np.fft.rfftfreq(len(y), 1 / SR)
    return {"rms": float(np.sqrt(np.mean(y**2))), "centroid_hz": float((spec * freqs).sum() / spec.sum())}


def measure() -> dict[str, dict]:
    import torch

    from speechlm.tokenizers.codec.api import Codec
    from speechlm.tokenizers.semantic.api import SemanticTokenizer

    torch.set_num_threads(1)
    x = fixed_input()
    out = {}
    for name in CODECS:
        c = Codec.load(name)
        tok = c.encode(x, SR)
        out[f"codec:{name}"] = {"id": c.tokenizer_id, "codes": tok.codes.tolist(), **_stats(c.decode(tok)[0])}
    for name in SEMANTIC:
        s = SemanticTokenizer.load(name)
        out[f"semantic:{name}"] = {"id": s.tokenizer_id, "codes": s.encode(x, SR).codes.tolist()}
    from speechlm import TTS, Transcriber
    from speechlm.tokenizers.semantic.bridge import Bridge

    bridge = Bridge.load()  # units of the fixed input, its first 3 s as the voice prompt -> codec tokens
    codes = bridge.to_codec_tokens(bridge.semantic.encode(x, SR), x, SR, seed=0).codes
    out["bridge:default"] = {"id": f"bridge_default:{bridge.semantic.tokenizer_id}->{bridge.codec.tokenizer_id}",
                             "codes": codes.tolist()}

    asr = Transcriber.load()
    out["asr:default"] = {"id": asr.model_id, "text": asr.transcribe(x, SR)}
    tts = TTS.load("lm_default")
    res = tts.generate("Golden fixtures catch drift.", seed=0)
    out["lm:default"] = {"id": tts.lm.model_id, "samples": len(res.wav), **_stats(np.asarray(res.wav))}
    tts = TTS.load()  # the duration-based default (deterministic)
    res = tts.generate("Golden fixtures catch drift.")
    out["tts:default"] = {"id": tts.am.model_id, "samples": len(res.wav), **_stats(np.asarray(res.wav))}
    return out


@pytest.fixture(scope="module")
def measured(one_thread) -> dict[str, dict]:
    return measure()


def _golden() -> dict[str, dict]:
    return json.loads(FIXTURE.read_text())


@pytest.mark.parametrize("key", [f"codec:{n}" for n in CODECS] + [f"semantic:{n}" for n in SEMANTIC]
                         + ["bridge:default", "asr:default", "lm:default", "tts:default"])
def test_golden(measured, key):
    want, got = _golden()[key], measured[key]
    if want["id"] != got["id"]:
        pytest.fail(f"{key} is now {got['id']}, the fixture has {want['id']}: a new model shipped; rerun "
                    "tests/test_golden.py --write")
    if "text" in want:  # the recogniser's greedy transcript of the fixed input
        assert got["text"] == want["text"]
        return
    if "samples" in want:  # the LM's seeded generation: its length and its sound, as recorded
        assert got["samples"] == want["samples"]
        assert got["rms"] == pytest.approx(want["rms"], rel=0.05)
        assert got["centroid_hz"] == pytest.approx(want["centroid_hz"], rel=0.05)
        return
    a, b = np.array(want["codes"]), np.array(got["codes"])
    assert a.shape == b.shape
    agree = float((a == b).mean())
    assert agree >= 0.98, f"{key}: only {agree:.1%} of the tokens of the fixed input are as recorded"
    if "rms" in want:  # decoded audio: level and spectral balance as recorded
        assert got["rms"] == pytest.approx(want["rms"], rel=0.05)
        assert got["centroid_hz"] == pytest.approx(want["centroid_hz"], rel=0.05)


if __name__ == "__main__":
    if sys.argv[1:] != ["--write"]:
        sys.exit("usage: tests/test_golden.py --write")
    FIXTURE.parent.mkdir(exist_ok=True)
    FIXTURE.write_text(json.dumps(measure(), separators=(",", ":")) + "\n")
    print(f"wrote {FIXTURE}")
