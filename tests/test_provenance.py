"""Signed provenance (speechlm.safety.provenance): generated files verify; one changed sample or header byte does
not; the key is private and made once."""

from __future__ import annotations

import json
import os
import stat

import numpy as np
import pytest
import soundfile as sf
from conftest import require_module

from speechlm.cli import main

require_module("cryptography", hint="pip install cryptography")


@pytest.fixture()
def keydir(tmp_path, monkeypatch):
    d = tmp_path / "cfg"
    monkeypatch.setenv("SPEECHLM_CONFIG_DIR", str(d))
    return d


def _signed_wav(path, keydir):
    from speechlm.safety.provenance import sign_file

    t = np.arange(16000) / 16000
    sf.write(path, (0.2 * np.sin(2 * np.pi * 220 * t)).astype(np.float32), 16000, subtype="PCM_16")
    return sign_file(path, {"model": "m@1", "tokenizer": "t@2", "text_sha256": "ab"})


def test_signed_wav_verifies_and_stays_playable(tmp_path, keydir, capsys):
    from speechlm.safety.provenance import verify_file

    path = tmp_path / "a.wav"
    m = _signed_wav(path, keydir)
    assert verify_file(path).manifest == m
    wav, sr = sf.read(path)  # the extra chunk does not disturb readers
    assert sr == 16000 and len(wav) == 16000
    assert stat.S_IMODE(os.stat(keydir / "provenance_ed25519.pem").st_mode) == 0o600
    assert main(["provenance", "verify", str(path), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["model"] == "m@1"


@pytest.mark.parametrize("where", ["sample", "header", "manifest", "riff_size"])
def test_any_changed_byte_breaks_it(tmp_path, keydir, capsys, where):
    path = tmp_path / "a.wav"
    _signed_wav(path, keydir)
    data = bytearray(path.read_bytes())
    if where == "sample":
        data[44 + 2 * 5000] ^= 1  # one bit of one sample
    elif where == "header":
        data[24] ^= 1  # the sample rate field of the fmt chunk
    elif where == "manifest":
        i = data.index(b'"model": "m@1"')
        data[i + 11] = ord("X")
    else:
        data[4] ^= 1
    path.write_bytes(bytes(data))
    assert main(["provenance", "verify", str(path)]) == 1
    assert "NOT verified" in capsys.readouterr().err


def test_unsigned_and_other_formats(tmp_path, keydir, capsys):
    from speechlm.safety.provenance import ProvenanceError, sign_file, verify_file

    plain = tmp_path / "p.wav"
    sf.write(plain, np.zeros(1600, np.float32), 16000)
    with pytest.raises(ProvenanceError, match="no provenance manifest"):
        verify_file(plain)
    flac = tmp_path / "x.flac"
    sf.write(flac, np.zeros(1600, np.float32), 16000)
    sign_file(flac, {"model": "m"})
    assert verify_file(flac).manifest["audio"]["frames"] == 1600
    flac.write_bytes(flac.read_bytes()[:-1] + b"\0")
    with pytest.raises(ProvenanceError, match="changed after signing"):
        verify_file(flac)


def test_a_trusted_key_is_required_when_given(tmp_path, keydir, monkeypatch):
    from speechlm.safety.provenance import ProvenanceError, public_key_pem, verify_file

    path = tmp_path / "a.wav"
    _signed_wav(path, keydir)
    mine = public_key_pem()
    assert verify_file(path, trusted=mine)
    monkeypatch.setenv("SPEECHLM_CONFIG_DIR", str(tmp_path / "other"))
    with pytest.raises(ProvenanceError, match="not by the trusted key"):
        verify_file(path, trusted=public_key_pem())


def test_tts_output_is_signed_unless_told(tmp_path, keydir, capsys):
    out = tmp_path / "hello.wav"
    assert main(["tts", "Hello there.", "-o", str(out)]) == 0
    assert main(["provenance", "verify", str(out)]) == 0
    assert "tts_duration@" in capsys.readouterr().out
    raw = tmp_path / "raw.wav"
    assert main(["tts", "Hello there.", "-o", str(raw), "--no-sign"]) == 0
    assert main(["provenance", "verify", str(raw)]) == 1
