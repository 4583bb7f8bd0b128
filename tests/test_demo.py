"""``speechlm demo``: the main job writes WAVs, a manifest, a spectrogram grid and a summary."""

from __future__ import annotations

import pytest
import soundfile as sf

from speechlm.cli import main
from speechlm.data.manifest import read_manifest


@pytest.mark.needs_tool("espeak-ng")
def test_demo(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out)]) == 0
    utts = read_manifest(out / "manifest.jsonl")
    assert len(utts) == 6 and len({u.speaker for u in utts}) == 6 and len({u.lang for u in utts}) >= 3
    for u in utts:
        assert sf.info(str(out / u.audio)).samplerate == 16000
    assert (out / "spectrograms.png").read_bytes()[:4] == b"\x89PNG"
    text = capsys.readouterr().out
    assert "6 utterances" in text and "spectrograms:" in text
