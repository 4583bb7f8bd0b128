"""The README's Python quickstart runs as written: every ```python block, in order, in one namespace, in a folder
holding the files it names (in.wav and voice.wav, spoken here by the shipped TTS). A renamed function, a changed
signature or a model that no longer loads by the name the README uses fails here."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from conftest import require_module

README = Path(__file__).resolve().parents[1] / "README.md"

pytestmark = [pytest.mark.needs_tool("espeak-ng"), pytest.mark.usefixtures("one_thread")]


def python_blocks() -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", README.read_text(), flags=re.S | re.M)


def test_readme_python_blocks_run(tmp_path, monkeypatch):
    require_module("faster_whisper", hint="pip install 'speechlm[eval]'")  # the evaluation block's judge
    from speechlm import TTS
    from speechlm.audio.io import save_audio

    blocks = python_blocks()
    assert len(blocks) >= 5 and blocks[0].lstrip().startswith("from speechlm import TTS, Codec")
    tts = TTS.load()
    for name, text in (("in.wav", "the cat sat on the mat"),
                       ("voice.wav", "Please leave your message after the tone, and we will call you back.")):
        out = tts.generate(text)
        save_audio(tmp_path / name, out.wav, out.sample_rate)
    monkeypatch.chdir(tmp_path)
    ns: dict = {}
    for i, block in enumerate(blocks):
        try:
            exec(compile(block, f"README.md python block {i + 1}", "exec"), ns)
        except Exception as exc:  # name the block: the traceback alone points into exec'd text
            pytest.fail(f"README python block {i + 1} failed: {exc!r}\n{block}")
    wav = np.asarray(ns["out"].wav)
    assert (tmp_path / "hello.wav").is_file() and wav.size > 0 and np.isfinite(wav).all()
    assert ns["tokens"].codes.ndim == 2 and ns["units"].codes.shape[0] == 1
    assert ns["audio"].size > 0 and isinstance(ns["text"], str)


def test_readme_is_a_users_page():
    """Under 250 lines, and no command points at one machine's folders (results live in docs/, history in
    docs/experiments/)."""
    text = README.read_text()
    assert len(text.splitlines()) <= 250
    assert not re.findall(r"(?<![\w.])/(?:work|home|root|tmp|mnt)/\S*", text)
