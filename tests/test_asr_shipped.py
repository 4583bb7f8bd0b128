"""The shipped checkpoint (speechlm/assets/asr_default): loads, recognises and aligns espeak-ng speech."""

from __future__ import annotations

import subprocess

import pytest
import soundfile as sf

from speechlm.asr.transcriber import DEFAULT_MODEL_DIR, CTCTranscriber

pytestmark = [
    pytest.mark.skipif(not (DEFAULT_MODEL_DIR / "model.safetensors").exists(), reason="no shipped ASR model"),
    pytest.mark.needs_tool("espeak-ng"),
]

TEXT = "the weather is nice today and the children play outside"


@pytest.fixture(scope="module")
def speech(tmp_path_factory):
    path = tmp_path_factory.mktemp("shipped") / "s.wav"
    subprocess.run(["espeak-ng", "-v", "en-us+m7", "-s", "150", "-w", str(path), TEXT], check=True)
    wav, sr = sf.read(str(path), dtype="float32")
    return wav, sr


def test_shipped_model_transcribes_and_aligns(speech):
    from speechlm.text.wer import cer

    wav, sr = speech
    tr = CTCTranscriber.load(None)
    hyp = tr.transcribe(wav, sr=sr)
    # the shipped model is weak (English CER ~0.55-0.65 on held-out voices); an untrained one is ~1.0
    assert cer(TEXT, hyp) < 0.75, hyp
    al = tr.align(wav, TEXT, "en", sr=sr)
    assert [w.word for w in al.words] == TEXT.split()
    starts = [w.start_s for w in al.words]
    assert starts == sorted(starts) and al.words[-1].end_s <= len(wav) / sr + 0.03
    # the right transcript fits the audio better than a wrong one of similar length
    wrong = tr.align(wav, "a dog ran quickly across the green field near our old house", "en", sr=sr)
    assert al.score > wrong.score
