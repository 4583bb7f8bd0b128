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


def test_dnsmos_window_starts():
    """A 20-s clip: the reference scores the 9.01-s windows starting every second (0..10 s); a 3-s hop the fewest
    whole-second starts at most 3 s apart reaching the same first and last; a clip under 10 s one window."""
    pytest.importorskip("speechmos")
    from speechlm.eval.mos import _window_starts

    assert _window_starts(20 * 16000, 1.0) == list(range(11))
    assert _window_starts(20 * 16000, 3.0) == [0, 2, 5, 8, 10]
    assert _window_starts(9 * 16000 + 8000, 3.0) == [0] == _window_starts(4 * 16000)


def test_dnsmos_shared_features_equal_the_window_loop(voices):
    """The network run once per clip (frame-rate features shared by its windows, edges redone; a short clip of
    whole frames from one period of its tiles) gives the per-window loop's numbers, and costs less."""
    pytest.importorskip("onnx")
    from speechlm.eval import mos

    scorer = mos._dnsmos()
    speech = np.concatenate([voices["slt_a"], voices["slt_b"]] * 4)
    noisy = speech + np.random.default_rng(0).normal(0, 0.02, speech.size).astype(np.float32)

    def loop(x, hop):
        audio = mos._tiled(x)
        raws = [scorer.onnx_sess.run(None, {"input_1": audio[s * 16000: s * 16000 + mos._window_samples()][None]})
                [0][0] for s in mos._window_starts(x.size, hop)]
        return np.mean([mos._polyfit(scorer, r) for r in raws], axis=0)

    for x, hop in ((speech[: 52800], 1.0), (noisy[16000: 16000 + 27200], 1.0), (noisy[: 14 * 16000 + 370], 1.0),
                   (speech[: 25 * 16000], 3.0)):
        assert mos._shared(False).pays(x.size, len(mos._window_starts(x.size, hop)))
        got = mos.dnsmos(x, 16000, hop_s=hop, p808=False)
        assert np.isnan(got.p808)
        np.testing.assert_allclose([got.ovrl, got.sig, got.bak], loop(x, hop), atol=1e-4)
    assert not mos._shared(False).pays(52801, 1)  # tiles off the frame grid: the loop
    assert not mos._shared(False).pays(9 * 16000 + 8000, 1)  # one window: the loop (sharing would cost more)
    assert abs(mos.dnsmos(noisy[: 3 * 16000], 16000).ovrl - mos.dnsmos(speech[: 3 * 16000], 16000).ovrl) > 0.15


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


def test_dnsmos_bf16_front_is_close_to_float32(voices):
    """Where torch computes bfloat16 natively, the frame-rate convolutions in bfloat16 stay within a few
    hundredths of float32 (short tiled, off-grid and long clips); elsewhere ``bf16=True`` is float32 itself."""
    pytest.importorskip("onnx")
    from speechlm.eval import mos
    from speechlm.eval.dnsmos_shared import native_bf16

    speech = np.concatenate([voices["slt_a"], voices["slt_b"]] * 4)
    for x in (speech[: 52800], speech[: 52801], speech[: 16 * 16000]):
        a, b = mos.dnsmos(x, 16000, p808=False), mos.dnsmos(x, 16000, p808=False, bf16=True)
        if native_bf16():
            assert abs(a.ovrl - b.ovrl) < 0.03 and abs(a.sig - b.sig) < 0.03 and abs(a.bak - b.bak) < 0.03
        else:
            assert (a.ovrl, a.sig, a.bak) == (b.ovrl, b.sig, b.bak)
