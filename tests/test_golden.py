"""Golden fixtures of the shipped models: the tokens of one fixed input and statistics of their decoded audio
(codecs, semantic tokenizers), the bridge's codec tokens for its units, the recogniser's transcript of it, the
length and sound of both TTS models' speech for a fixed text (and seed), the detector's scores of the fixed input
and of that speech, and the gender classifier's probability and F0 features of the fixed input. Every shipped
model folder under speechlm/assets has an entry (a test checks that).

Beside the recorded values, behavioural checks that do not depend on a recording: what the shipped codecs and TTS
models produce sounds like speech (not silence, its energy in the speech band, not stationary noise, voiced where
the model is meant to keep voicing), and the shipped detector calls the shipped TTS's speech synthetic.

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
from conftest import require_module

FIXTURE = Path(__file__).parent / "golden" / "models.json"
SR = 16000
CODECS = ("sf", "pitch", "codec_default", "hybrid")
SEMANTIC = ("asr", "default", "mfcc")
TEXT = "Golden fixtures catch drift."
TEXT_IT = "Le prove fisse scoprono le derive."
# The fixture key of each shipped model folder (speechlm/assets/<folder>).
ASSET_KEYS = {"codec_sf": "codec:sf", "codec_pitch": "codec:pitch", "codec_default": "codec:codec_default",
              "codec_hybrid": "codec:hybrid", "semantic_asr": "semantic:asr", "semantic_default": "semantic:default",
              "semantic_mfcc": "semantic:mfcc", "bridge_default": "bridge:default", "asr_default": "asr:default",
              "lm_default": "lm:default", "tts_duration": "tts:default", "detector_default": "detector:default",
              "gender_default": "gender:default", "tts_multilingual": "tts:multilingual",
              "denoise_default": "denoise:default"}


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


def behaviour(y: np.ndarray, sr: int = SR) -> dict[str, float]:
    """What a listener would notice, per 32-ms frame (10-ms hop) of the frames within 40 dB of the loudest:
    ``rms``; ``voiced``, the share of them YIN finds voiced; ``band``, their energy share within 80-4000 Hz;
    ``flatness``, the median spectral flatness within that band (noise ~0.4-0.6, harmonic sound ~0); ``modulation_db``,
    the standard deviation of their level (speech rises and falls with syllables; stationary noise ~0.5 dB)."""
    from speechlm.audio.features import f0 as yin

    y = np.asarray(y, np.float64).reshape(-1)
    n, hop = 512, 160
    frames = np.lib.stride_tricks.sliding_window_view(np.pad(y, n // 2), n)[::hop] * np.hanning(n)
    p = np.abs(np.fft.rfft(frames, axis=1)) ** 2 + 1e-20
    db = 10 * np.log10(p.sum(1))
    act = db > db.max() - 40
    freqs = np.fft.rfftfreq(n, 1 / sr)
    speech = p[act][:, (freqs >= 80) & (freqs <= 4000)]
    flatness = np.exp(np.mean(np.log(speech), 1)) / np.mean(speech, 1)
    _, voiced = yin(y.astype(np.float32), sr, hop)
    m = min(len(voiced), len(act))
    return {"rms": float(np.sqrt(np.mean(y**2))), "voiced": float(voiced[:m][act[:m]].mean()),
            "band": float(speech.sum() / p[act].sum()), "flatness": float(np.median(flatness)),
            "modulation_db": float(np.std(db[act]))}


def speech_failures(b: dict[str, float], min_voiced: float | None) -> list[str]:
    """The behavioural checks ``b`` (from :func:`behaviour`) fails; ``min_voiced`` None skips voicing."""
    fails = []
    if b["rms"] < 0.005:
        fails.append(f"silent (rms {b['rms']:.4f})")
    if b["band"] < 0.8:
        fails.append(f"only {b['band']:.0%} of the energy in 80-4000 Hz")
    if b["flatness"] > 0.2 or b["modulation_db"] < 1.5:
        fails.append(f"noise-like (flatness {b['flatness']:.3f}, level modulation {b['modulation_db']:.1f} dB)")
    if min_voiced is not None and b["voiced"] < min_voiced:
        fails.append(f"{b['voiced']:.0%} of the frames voiced, under {min_voiced:.0%}")
    return fails


def measure() -> dict[str, dict]:
    import importlib.util

    import torch

    from speechlm.tokenizers.codec.api import Codec
    from speechlm.tokenizers.semantic.api import SemanticTokenizer

    torch.set_num_threads(1)
    x = fixed_input()
    out = {}
    for name in CODECS:
        c = Codec.load(name)
        tok = c.encode(x, SR)
        y = c.decode(tok)[0]
        out[f"codec:{name}"] = {"id": c.tokenizer_id, "codes": tok.codes.tolist(), **_stats(y),
                                "behaviour": behaviour(y)}
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
    res = tts.generate(TEXT, seed=0)
    out["lm:default"] = {"id": tts.lm.model_id, "samples": len(res.wav), **_stats(np.asarray(res.wav)),
                         "behaviour": behaviour(res.wav)}
    tts = TTS.load()  # the duration-based default (deterministic)
    res = tts.generate(TEXT)
    out["tts:default"] = {"id": tts.am.model_id, "samples": len(res.wav), **_stats(np.asarray(res.wav)),
                          "behaviour": behaviour(res.wav)}
    ml = TTS.load("tts_multilingual")  # the other languages' duration model, in its Italian voice
    res_ml = ml.generate(TEXT_IT, lang="it")
    out["tts:multilingual"] = {"id": ml.am.model_id, "samples": len(res_ml.wav), **_stats(np.asarray(res_ml.wav)),
                               "behaviour": behaviour(res_ml.wav)}

    from speechlm.safety.detector import Detector

    det = Detector.load()  # per-segment scores of the fixed input and of the default TTS's speech
    out["detector:default"] = {"id": det.model_id, "threshold": det.threshold,
                               "scores": {"fixed": [s.synthetic_score for s in det.score_wav(x, SR).segments],
                                          "tts": [s.synthetic_score for s in det.score_wav(res.wav, res.sample_rate)
                                                  .segments]}}
    from speechlm.pipeline.denoise import si_sdr
    from speechlm.pipeline.enhancer import enhance, load_enhancer

    noisy = (x + np.sqrt(np.mean(x**2)) * np.random.default_rng(7).standard_normal(x.size)).astype(np.float32)  # 0 dB
    y = enhance(noisy, SR)
    net = load_enhancer(None)
    out["denoise:default"] = {"id": net.model_id, "si_sdr_in": si_sdr(noisy, x),
                              "si_sdr_out": si_sdr(y, x), **_stats(y)}
    if importlib.util.find_spec("resemblyzer") is not None:  # the classifier's GE2E half (the eval extra)
        from speechlm.pipeline.gender import GenderClassifier, features

        g = GenderClassifier.load()
        feats = features(x, SR)
        out["gender:default"] = {"id": g.name, "p_female": float(g.proba_from_features(feats)),
                                 "f0_stats": feats[:4].tolist()}
    return out


@pytest.fixture(scope="module")
def measured(one_thread) -> dict[str, dict]:
    return measure()


def _golden() -> dict[str, dict]:
    return json.loads(FIXTURE.read_text())


def test_every_shipped_model_has_a_fixture():
    from speechlm.assets import __file__ as assets_init

    folders = {p.parent.name for p in Path(assets_init).parent.glob("*/model.safetensors")}
    assert folders - set(ASSET_KEYS) == set(), "give each new shipped model a golden entry (ASSET_KEYS, measure())"
    assert set(ASSET_KEYS.values()) <= set(_golden()), "rerun tests/test_golden.py --write"


@pytest.mark.parametrize("key", sorted(ASSET_KEYS.values()))
def test_golden(measured, key):
    if key == "gender:default":
        require_module("resemblyzer", hint="pip install 'speechlm[eval]'")
    want, got = _golden()[key], measured[key]
    if want["id"] != got["id"]:
        pytest.fail(f"{key} is now {got['id']}, the fixture has {want['id']}: a new model shipped; rerun "
                    "tests/test_golden.py --write")
    if "scores" in want:  # the detector's per-segment probabilities
        assert got["threshold"] == pytest.approx(want["threshold"])
        for which, w in want["scores"].items():
            assert got["scores"][which] == pytest.approx(w, abs=0.02), which
        return
    if "p_female" in want:  # the gender classifier's probability and the F0 half of its features
        assert got["f0_stats"] == pytest.approx(want["f0_stats"], rel=0.02, abs=0.01)
        assert got["p_female"] == pytest.approx(want["p_female"], abs=0.02)
        return
    if "si_sdr_out" in want:  # the enhancer on the fixed input in white noise: its gain and its sound, as recorded
        assert got["si_sdr_out"] == pytest.approx(want["si_sdr_out"], abs=0.3)
        assert got["si_sdr_out"] > got["si_sdr_in"] + 3.0
        assert got["rms"] == pytest.approx(want["rms"], rel=0.05)
        assert got["centroid_hz"] == pytest.approx(want["centroid_hz"], rel=0.05)
        return
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


# Voicing each model is meant to keep: codec_sf and codec_pitch keep the fixed input's voicing (88 % of its frames);
# codec_default and codec_hybrid whisper (their cards: voiced frames kept 0.03), so only the rest is asked of them;
# the TTS models' speech has unvoiced consonants and pauses, so a quarter is the floor.
MIN_VOICED = {"codec:sf": 0.6, "codec:pitch": 0.6, "codec:codec_default": None, "codec:hybrid": None,
              "lm:default": 0.25, "tts:default": 0.25, "tts:multilingual": 0.25}


@pytest.mark.parametrize("key", sorted(MIN_VOICED))
def test_shipped_output_sounds_like_speech(measured, key):
    fails = speech_failures(measured[key]["behaviour"], MIN_VOICED[key])
    assert not fails, f"{key}: {'; '.join(fails)}"


def test_detector_calls_the_shipped_tts_synthetic(measured):
    det = measured["detector:default"]
    assert np.mean(det["scores"]["tts"]) >= det["threshold"]


def test_speech_checks_can_fail():
    """The fixed input passes every check; silence, white noise, band-limited noise, mains hum and hiss do not."""
    from scipy.signal import butter, lfilter

    rng = np.random.default_rng(0)
    t = np.arange(2 * SR) / SR
    noise = 0.1 * rng.standard_normal(2 * SR)
    assert speech_failures(behaviour(fixed_input()), 0.6) == []
    cases = {"silent": np.zeros(2 * SR), "noise-like": noise,
             "80-4000": 0.1 * np.sin(2 * np.pi * 50 * t),
             "voiced": lfilter(*butter(4, [300, 3000], btype="band", fs=SR), noise)}
    for why, y in cases.items():
        assert any(why in f for f in speech_failures(behaviour(y), 0.6)), why
    hiss = lfilter(*butter(4, 5000, btype="high", fs=SR), noise)
    assert any("80-4000" in f for f in speech_failures(behaviour(hiss), None))


if __name__ == "__main__":
    if sys.argv[1:] != ["--write"]:
        sys.exit("usage: tests/test_golden.py --write")
    FIXTURE.parent.mkdir(exist_ok=True)
    FIXTURE.write_text(json.dumps(measure(), separators=(",", ":")) + "\n")
    print(f"wrote {FIXTURE}")
