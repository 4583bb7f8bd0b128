"""Pretrained judges: resemblyzer speaker similarity (safe loading), DNSMOS, pocketsphinx."""

from __future__ import annotations

import subprocess

import numpy as np
import pytest
from conftest import require_module, require_tool

require_module("resemblyzer")
require_module("speechmos")

SENT_A = "The quick brown fox jumps over the lazy dog near the river bank."
SENT_B = "Please call Stella and ask her to bring these things with her from the store."


def _flite(tmp_path, voice: str, text: str, name: str) -> np.ndarray:
    from speechlm.audio.io import load_audio

    require_tool("flite")
    out = tmp_path / f"{name}.wav"
    subprocess.run(["flite", "-voice", voice, "-t", text, "-o", str(out)], check=True, capture_output=True)
    return load_audio(out, sr=16000)[0][0]


@pytest.fixture(scope="module")
def voices(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("voices")
    return {
        "slt_a": _flite(tmp, "slt", SENT_A, "slt_a"),
        "slt_b": _flite(tmp, "slt", SENT_B, "slt_b"),
        "kal_a": _flite(tmp, "kal16", SENT_A, "kal_a"),
    }


def test_resemblyzer_loads_weights_only(monkeypatch):
    import torch

    from speechlm.eval import speaker

    calls = []
    real_load = torch.load

    def spy(*args, **kwargs):
        calls.append(kwargs.get("weights_only"))
        return real_load(*args, **kwargs)

    monkeypatch.setattr(torch, "load", spy)
    speaker.ResemblyzerEmbedder()
    assert calls == [True]


def test_speaker_similarity(voices):
    from speechlm.eval.speaker import load_embedder, speaker_similarity

    emb = load_embedder(None)
    assert load_embedder(None) is emb  # cached per process
    e = emb.embed(voices["slt_a"])
    assert e.shape == (256,) and np.linalg.norm(e) == pytest.approx(1.0, abs=1e-5)
    assert speaker_similarity(voices["slt_a"], voices["slt_a"], 16000) == pytest.approx(1.0, abs=1e-5)
    same = speaker_similarity(voices["slt_a"], voices["slt_b"], 16000)
    diff = speaker_similarity(voices["slt_a"], voices["kal_a"], 16000)
    assert diff < same


def test_resemblyzer_embedding_equals_reference(voices):
    """Same numbers as resemblyzer's own preprocess_wav + embed_utterance (network shared, no pickle load)."""
    import torch
    from resemblyzer import preprocess_wav
    from resemblyzer.voice_encoder import VoiceEncoder

    from speechlm.eval.speaker import load_embedder

    ours = load_embedder(None)
    ref = VoiceEncoder.__new__(VoiceEncoder)
    torch.nn.Module.__init__(ref)
    ref.lstm, ref.linear, ref.relu, ref.device = ours.model.lstm, ours.model.linear, torch.nn.ReLU(), "cpu"
    expected = ref.embed_utterance(preprocess_wav(voices["kal_a"]))
    np.testing.assert_allclose(ours.embed(voices["kal_a"]), expected, atol=1e-5)


def test_unknown_speaker_model(tmp_path):
    from speechlm.errors import CheckpointError
    from speechlm.eval.speaker import load_embedder

    bad = tmp_path / "x.bin"
    bad.write_bytes(b"nope")
    with pytest.raises(CheckpointError):
        load_embedder(str(bad))
    with pytest.raises(CheckpointError):
        load_embedder(str(tmp_path / "missing.onnx"))


def test_dnsmos_range_and_exact_mode(voices):
    from speechmos import dnsmos as sm

    from speechlm.eval.mos import dnsmos

    x = voices["slt_a"]
    s = dnsmos(x, 16000)
    for v in (s.ovrl, s.sig, s.bak, s.p808):
        assert 1.0 <= v <= 5.0
    # exact=True is speechmos's own loop; a 9-10 s clip keeps it to one window (short clips are tiled to 7+).
    long = np.concatenate([x, voices["slt_b"], x])[: int(9.5 * 16000)]
    exact = dnsmos(long, 16000, exact=True)
    ref = sm.run(long, sr=16000)
    assert exact.ovrl == pytest.approx(ref["ovrl_mos"], abs=1e-6)
    assert exact.p808 == pytest.approx(ref["p808_mos"], abs=1e-6)
    loud = dnsmos(x * 4.0, 16000)  # would make speechmos raise; scaled down by its peak instead
    assert 1.0 <= loud.ovrl <= 5.0
    assert np.isnan(dnsmos(np.zeros(16000, np.float32), 16000).ovrl)


def test_dnsmos_windows_hop():
    """A 20-s clip: the reference scores the 9.01-s windows starting every second (0..10 s); a 3-s hop scores 5
    evenly spread windows reaching the same first and last; a clip under 10 s is one window either way."""
    from types import SimpleNamespace as NS

    pytest.importorskip("speechmos")
    from speechlm.eval.mos import _windows

    starts = []

    def run(_, feeds):
        seg = feeds["input_1"][0]
        starts.append(float(seg[0]))
        return [[[seg[0], seg[0], seg[0]]]]

    fake = NS(audio_melspec=lambda audio: np.zeros((4, 4)), p808_onnx_sess=NS(run=lambda _, f: [[[3.0]]]),
              onnx_sess=NS(run=run), get_polyfit_val=lambda a, b, c, _: (a, b, c))
    x = np.repeat(np.arange(20, dtype=np.float32), 16000)  # each sample says which second it is in
    ref = _windows(fake, x, 1.0)
    assert starts == [float(i) for i in range(11)] and ref.ovrl == pytest.approx(5.0)
    starts.clear()
    sparse = _windows(fake, x, 3.0)
    assert starts == [0.0, 2.0, 5.0, 7.0, 10.0] and sparse.ovrl == pytest.approx(4.8)
    starts.clear()
    _windows(fake, x[: 9 * 16000 + 8000], 3.0)
    assert starts == [0.0]


@pytest.mark.needs_module("pocketsphinx")
def test_pocketsphinx_judge(voices):
    from speechlm.errors import SpeechLMError
    from speechlm.eval.asr import get_transcriber, transcribe
    from speechlm.text.wer import wer

    hyp = transcribe(voices["slt_a"], 16000, "pocketsphinx", lang="en")
    assert wer(SENT_A, hyp) < 0.35
    with pytest.raises(SpeechLMError, match="English"):
        get_transcriber("pocketsphinx", lang="de")
    with pytest.raises(SpeechLMError, match="unknown ASR backend"):
        get_transcriber("nope")
    with pytest.raises(SpeechLMError, match="asr-model"):
        get_transcriber("whisper", None, "en")


def test_dnsmos_own_length(voices):
    """``tile=False``: a 2-9 s clip is scored on its own length by the length-free rewrite of the network; close
    to the tiled score (the same network, without the tiles' joins), and only where the clip is 2-9 s."""
    pytest.importorskip("onnx")
    from speechlm.eval.mos import _own_length_session, dnsmos

    assert _own_length_session() is not None
    x = voices["slt_a"][: 4 * 16000]
    tiled, own = dnsmos(x, 16000), dnsmos(x, 16000, tile=False)
    assert own.ovrl != tiled.ovrl and abs(own.ovrl - tiled.ovrl) < 0.4
    assert own.p808 == pytest.approx(tiled.p808)  # P.808 stays on the tiled window
    noisy = x + np.random.default_rng(0).normal(0, 0.05, x.size).astype(np.float32)
    assert dnsmos(noisy, 16000, tile=False).ovrl < own.ovrl - 0.3
    short = x[: 16000]  # under 2 s: tiled either way
    assert dnsmos(short, 16000, tile=False).ovrl == pytest.approx(dnsmos(short, 16000).ovrl)
