"""The audio watermark (speechlm.safety.watermark): payload round trip, no false alarm on unmarked audio, survival
of cheap attacks, localisation of a partly marked file, streaming, the CLI contract, and marking by default."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf

from speechlm.cli import main
from speechlm.safety import watermark as W

SR = 16000


@pytest.fixture(scope="module")
def voice():
    """Two sentences of the shipped TTS model (16 kHz, ~4 s and ~7 s): real synthetic speech to mark."""
    from speechlm.tasks.tts import TTS

    tts = TTS.load()
    a = tts.generate("The quick brown fox jumps over the lazy dog near the bank of the river.")
    b = tts.generate("Please leave your message after the tone, and someone will call you back as soon as "
                     "possible. Thank you for calling.")
    assert a.sample_rate == SR
    return a.wav.astype(np.float32), b.wav.astype(np.float32)


def speechlike(seconds: float, seed: int, sr: int = SR) -> np.ndarray:
    """Unmarked speech-like audio: random syllables (random lengths, pitch and formant) and pauses."""
    rng = np.random.default_rng(seed)
    out = []
    while sum(map(len, out)) < seconds * sr:
        n = int(rng.uniform(0.08, 0.3) * sr)
        t = np.arange(n) / sr
        f0 = rng.uniform(90, 220) * (1 + 0.1 * rng.standard_normal() * t)
        fmt = rng.uniform(300, 2500)
        syl = np.zeros(n)
        for k in range(1, 25):
            syl += np.exp(-((k * f0 - fmt) / 500) ** 2) * np.sin(2 * np.pi * k * f0 * t) / k**0.5
        out.append(syl * np.hanning(n) + 0.01 * rng.standard_normal(n))
        if rng.uniform() < 0.3:
            out.append(0.002 * rng.standard_normal(int(rng.uniform(0.05, 0.3) * sr)))
    x = np.concatenate(out)[: int(seconds * sr)]
    return (0.5 * x / np.abs(x).max()).astype(np.float32)


def bits_right(a: int, b: int) -> int:
    return 16 - bin(a ^ b).count("1")


def test_payload_layout_and_user_id(monkeypatch):
    monkeypatch.setenv(W.ID_ENV, "291")
    p = W.make_payload("tts_duration")
    assert W.split_payload(p) == (W.FAMILIES["tts_duration"], 291)
    monkeypatch.setenv(W.ID_ENV, "5000")
    with pytest.raises(W.WatermarkError):
        W.make_payload("edit")
    with pytest.raises(W.WatermarkError):
        W.check_payload(1 << 16)


def test_round_trip_recovers_the_payload(voice):
    x = voice[0]
    y = W.embed(x, SR, 0xBEEF)
    assert y.shape == x.shape and np.isfinite(y).all()
    d = W.detect(y, SR)
    assert d.detected and d.payload == 0xBEEF and d.p_value < W.P_THRESHOLD
    assert len(d.bit_confidence) == 16 and min(d.bit_confidence) > 0.5
    # The mark is small: a few dB at most per time-frequency cell, far below the signal.
    err = y - x
    assert 10 * np.log10(np.sum(x**2) / np.sum(err**2)) > 8.0


@pytest.mark.parametrize("make", [
    lambda: speechlike(3.0, 11), lambda: speechlike(1.2, 12), lambda: speechlike(8.0, 13),
    lambda: 0.1 * np.random.default_rng(3).standard_normal(2 * SR).astype(np.float32),
    lambda: np.zeros(SR, np.float32),
    lambda: (0.3 * np.sin(2 * np.pi * 440 * np.arange(2 * SR) / SR)).astype(np.float32),
], ids=["speechlike", "short", "long", "noise", "silence", "sine"])
def test_unmarked_audio_is_not_detected(make):
    d = W.detect(make(), SR)
    assert not d.detected and d.payload is None and d.p_value > W.P_THRESHOLD


@pytest.mark.parametrize("attack", ["gain", "noise", "crop", "resample22k"])
def test_survives_cheap_attacks(voice, attack):
    import soxr

    x = voice[1] if attack == "crop" else voice[0]
    y = W.embed(x, SR, 0x1234)
    rng = np.random.default_rng(0)
    sr = SR
    if attack == "gain":
        y = y * 0.5
    elif attack == "noise":  # 20 dB SNR
        y = y + rng.standard_normal(len(y)).astype(np.float32) * np.sqrt(np.mean(y**2) / 100)
    elif attack == "crop":
        # half of a 6-s sentence: 3 s. Under 2 s the mark is found in some crops only (docs/safety.md; with this
        # voice 9 of 16 crops of 1.5 s, 16 of 16 of 3 s)
        y = y[len(y) // 2 - 3 * SR // 2 : len(y) // 2 + 3 * SR // 2]
    else:
        y, sr = soxr.resample(y, SR, 22050), 22050
    d = W.detect(y, sr)
    assert d.detected
    assert bits_right(d.payload, 0x1234) >= 15


def test_partly_marked_file_is_localised(voice):
    x = voice[1][: 6 * SR]
    y = W.embed(x, SR, 0x0F0F, regions=[(2.5, 4.5)])
    assert np.array_equal(y[: 2 * SR], x[: 2 * SR])  # outside the region: untouched
    d = W.detect(y, SR)
    assert d.detected and d.payload == 0x0F0F
    assert d.regions
    lo, hi = min(a for a, _ in d.regions), max(b for _, b in d.regions)
    # Windows that detect reach past the mark; trimmed to the blocks that carry it, the edges are this close.
    assert abs(lo - 2.5) <= 0.3 and abs(hi - 4.5) <= 0.3, d.regions


def test_trim_finds_the_marked_span():
    rng = np.random.default_rng(0)
    counted = np.full(100, 16.0)
    counted[60:70] = 0.0  # a pause inside the mark: no evidence either way
    evidence = rng.normal(0.0, 4.0, 100)
    evidence[30:75] += 16.0 * 1.5  # marked blocks: 1.5 per counted chip
    evidence[60:70] = 0.0
    a, b = W._trim(evidence, counted, 10, 95, 1.5)
    assert abs(a - 30) <= 2 and abs(b - 75) <= 2


def test_a_crop_of_quiet_background_carries_the_mark(voice):
    """A pause holding only background 60 dB under the speech: marked too, so a 1-s crop of it is found."""
    x = voice[1][: 3 * SR]
    rng = np.random.default_rng(3)
    room = rng.standard_normal(3 * SR).astype(np.float32) * np.float32(np.sqrt(np.mean(x**2)) * 10 ** (-60 / 20))
    y = W.embed(np.concatenate([x, room]), SR, 0x3C3C)
    pause = y[3 * SR + SR // 2 : 3 * SR + 3 * SR // 2]
    assert np.sqrt(np.mean((pause - room[SR // 2 : 3 * SR // 2]) ** 2)) < 10 ** (-55 / 20) * np.sqrt(np.mean(x**2))
    d = W.detect(pause, SR)
    assert d.detected and d.payload == 0x3C3C


def test_stream_marker_matches_the_whole(voice):
    x = voice[0]
    m = W.StreamMarker(SR, 0xA5A5, segment_s=0.5)
    parts = [m.push(x[i : i + 1234]) for i in range(0, len(x), 1234)] + [m.flush()]
    y = np.concatenate(parts)
    assert len(y) == len(x)
    assert parts[0].size == 0  # held back until a segment is ready
    d = W.detect(y, SR)
    assert d.detected and d.payload == 0xA5A5
    whole = W.embed(x, SR, 0xA5A5)
    # Same global pattern grid: the streamed mark is close to marking the whole at once.
    assert np.corrcoef(y - x, whole - x)[0, 1] > 0.8


def test_cli_embed_and_detect_json(voice, tmp_path, capsys):
    src, out = tmp_path / "in.wav", tmp_path / "marked.wav"
    sf.write(src, voice[1], SR, subtype="PCM_16")
    assert main(["watermark", "embed", str(src), "-o", str(out), "--payload", "4660"]) == 0
    capsys.readouterr()
    assert main(["watermark", "detect", str(out), "--json"]) == 0
    j = json.loads(capsys.readouterr().out)
    assert j["detected"] is True and j["payload"] == 4660 and isinstance(j["score"], float)
    assert 0.0 <= j["p_value"] <= 1.0 and j["regions"]
    assert main(["watermark", "detect", str(src), "--json"]) == 0
    j = json.loads(capsys.readouterr().out)
    assert j["detected"] is False and j["payload"] is None
    assert main(["watermark", "embed", str(src), "-o", str(out), "--payload", "70000"]) == 2
    assert main(["watermark", "detect", str(tmp_path / "missing.wav")]) == 2


def test_tts_output_is_marked_unless_told(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("SPEECHLM_CONFIG_DIR", str(tmp_path / "cfg"))
    monkeypatch.setenv(W.ID_ENV, "77")
    text = "The quick brown fox jumps over the lazy dog near the river bank."
    out, raw = tmp_path / "tts.wav", tmp_path / "raw.wav"
    assert main(["tts", text, "-o", str(out)]) == 0
    assert main(["tts", text, "-o", str(raw), "--no-watermark"]) == 0
    capsys.readouterr()
    d = W.detect_file(str(out))
    assert d.detected and d.payload == W.make_payload("tts_duration", 77)
    assert not W.detect_file(str(raw)).detected
    assert main(["provenance", "verify", str(out), "--json"]) == 0
    m = json.loads(capsys.readouterr().out)
    assert m["watermarked"] is True and m["watermark_payload"] == d.payload
    assert main(["provenance", "verify", str(raw), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["watermarked"] is False


def test_server_marks_speech_and_signs_edits(voice, tmp_path, monkeypatch):
    pytest.importorskip("fastapi")
    pytest.importorskip("python_multipart")
    import io

    from fastapi.testclient import TestClient

    from speechlm.safety.provenance import verify_file
    from speechlm.serve.app import create_app
    from speechlm.serve.config import ServeConfig
    from speechlm.tasks.tts import TTS

    monkeypatch.setenv("SPEECHLM_CONFIG_DIR", str(tmp_path / "cfg"))
    tts = TTS.load()
    text = "Please leave your message after the tone, and someone will call you back soon."
    with TestClient(create_app(ServeConfig(voices_dir=tmp_path / "v", threads=1), tts)) as c:
        r = c.post("/v1/audio/speech", json={"input": text, "response_format": "wav"})
        assert r.status_code == 200 and r.headers["x-speechlm-watermark"] == str(W.make_payload("serve"))
        pcm = np.frombuffer(r.content[44:], "<i2").astype(np.float32) / 32768
        d = W.detect(pcm, tts.sample_rate)
        assert d.detected and d.payload == W.make_payload("serve")
        # An edit: the response WAV is marked where it was regenerated, then signed.
        buf = io.BytesIO()
        sf.write(buf, voice[1], SR, format="WAV")
        r = c.post("/v1/audio/edit", files={"file": ("in.wav", buf.getvalue(), "audio/wav")},
                   data={"transcript": "Please leave your message after the tone, and someone will call you back "
                         "as soon as possible. Thank you for calling.",
                         "target": "Please leave your message after the beep, and someone will call you back "
                         "as soon as possible. Thank you for calling."})
        assert r.status_code == 200, r.text
        out = tmp_path / "edited.wav"
        out.write_bytes(r.content)
        m = verify_file(out).manifest
        assert m["watermarked"] is True and m["watermark_payload"] == W.make_payload("edit")
        d = W.detect_file(str(out))
        assert d.detected and d.payload == W.make_payload("edit")
    with TestClient(create_app(ServeConfig(voices_dir=tmp_path / "v", threads=1, watermark=False), tts)) as c:
        r = c.post("/v1/audio/speech", json={"input": text, "response_format": "wav"})
        assert r.headers["x-speechlm-watermark"] == "none"
        pcm = np.frombuffer(r.content[44:], "<i2").astype(np.float32) / 32768
        assert not W.detect(pcm, tts.sample_rate).detected
