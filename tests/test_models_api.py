"""The public face: ``from speechlm import TTS, Codec, SemanticTokenizer, Transcriber`` (lazy), each class's
``.load()`` of its default, and ``speechlm models [--json]`` (one default per kind, ids equal to what the loaded
models report, a new asset folder listed as it appears)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest

from speechlm.cli import main
from speechlm.models import ASSETS, shipped_models

pytestmark = pytest.mark.usefixtures("one_thread")


def _listing(capsys) -> list[dict]:
    assert main(["models", "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_import_speechlm_does_not_import_torch() -> None:
    code = ("import sys, speechlm; assert 'torch' not in sys.modules, 'torch imported'; "
            "print(' '.join(sorted(set(speechlm.__all__) & set(dir(speechlm)))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["Codec", "SemanticTokenizer", "TTS", "Transcriber", "__version__"]


def test_public_names_are_the_library_classes() -> None:
    import speechlm
    from speechlm import TTS, Codec, SemanticTokenizer, Transcriber
    from speechlm.asr.transcriber import CTCTranscriber
    from speechlm.tasks import tts
    from speechlm.tokenizers.codec import api as codec_api
    from speechlm.tokenizers.semantic import api as semantic_api

    assert (TTS, Codec, SemanticTokenizer, Transcriber) == (tts.TTS, codec_api.Codec, semantic_api.SemanticTokenizer,
                                                           CTCTranscriber)
    with pytest.raises(AttributeError):
        speechlm.NotAThing  # noqa: B018


def test_models_json_contract(capsys) -> None:
    models = _listing(capsys)
    folders = sorted(d.name for d in ASSETS.iterdir() if (d / "config.json").is_file())
    assert sorted(m["name"] for m in models) == folders  # every shipped folder, nothing else
    for m in models:
        assert {"name", "kind", "id", "size_mb", "default"} <= set(m)
        assert isinstance(m["default"], bool) and m["size_mb"] > 0
        name, digest = m["id"].split("@")
        assert name and len(digest) == 16 and int(digest, 16) >= 0
        assert m["description"], f"{m['name']} has no one-line description in speechlm/assets/cards.json"
    for kind in {m["kind"] for m in models}:
        assert sum(m["default"] for m in models if m["kind"] == kind) == 1, f"not exactly one default {kind}"
    assert {"codec", "semantic", "lm", "asr"} <= {m["kind"] for m in models}


def test_the_table_names_every_model(capsys) -> None:
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    assert all(m.name in out and m.id in out for m in shipped_models())


def test_ids_are_what_the_loaded_models_report(capsys) -> None:
    from speechlm import Codec, SemanticTokenizer, Transcriber
    from speechlm.lm.api import CodecLanguageModel

    models = _listing(capsys)
    loaders = {"codec": lambda n: Codec.load(n).tokenizer_id,
               "semantic": lambda n: SemanticTokenizer.load(n).tokenizer_id,
               "lm": lambda n: CodecLanguageModel.load(n).model_id,
               "asr": lambda n: Transcriber.load(n).model_id}
    checked = {m["kind"] for m in models if m["kind"] in loaders}
    for m in models:
        if m["kind"] in loaders:
            assert loaders[m["kind"]](m["name"]) == m["id"], m["name"]  # loads by its listed name, same id
    assert {"codec", "lm"} <= checked


def test_each_class_loads_its_default(capsys) -> None:
    from speechlm import Codec, SemanticTokenizer, Transcriber

    default = {m["kind"]: m["id"] for m in _listing(capsys) if m["default"]}
    assert Codec.load().tokenizer_id == default["codec"]
    assert SemanticTokenizer.load().tokenizer_id == default["semantic"]
    assert Transcriber.load().model_id == default["asr"]


@pytest.mark.needs_tool("espeak-ng")
def test_tts_loads_and_speaks_in_a_prompt_voice(tmp_path) -> None:
    from speechlm import TTS
    from speechlm.audio.io import save_audio
    from speechlm.tokenizers.tokens import load_tokens

    tts = TTS.load("lm_default")  # the codec LM (its default voice ships with it)
    # a prompt file: the shipped default voice's tokens decoded, with their transcript
    prompt_dir = tts.lm.path
    wav, sr = tts.codec.decode(load_tokens(prompt_dir / "prompt.npz"))
    save_audio(tmp_path / "ref.wav", wav, sr)
    text = json.loads((prompt_dir / "prompt.json").read_text())["text"]
    result = tts.generate("Hello.", prompt=tmp_path / "ref.wav", prompt_text=text, seed=0)
    audio, rate = result  # audio and its sample rate
    assert rate == result.sample_rate == tts.codec.sample_rate
    assert audio.ndim == 1 and audio.dtype == np.float32 and 0.2 < len(audio) / rate < 6.0


def test_a_new_asset_folder_is_listed(tmp_path) -> None:
    src = ASSETS / "codec_pitch"
    for d in ("codec_new", "vocoder_x"):
        (tmp_path / d).mkdir()
        for f in ("config.json", "model.safetensors"):
            shutil.copy(src / f, tmp_path / d / f)
    meta = json.loads((src / "config.json").read_text())
    meta["card"] = {"description": "from its own card"}
    (tmp_path / "vocoder_x" / "config.json").write_text(json.dumps(meta))
    (tmp_path / "cards.json").write_text(json.dumps({"codec_new": {"description": "new", "quality": "q"}}))
    (tmp_path / "not_a_model").mkdir()
    listed = {m.name: m for m in shipped_models(tmp_path)}
    assert set(listed) == {"codec_new", "vocoder_x"}
    new, other = listed["codec_new"], listed["vocoder_x"]
    assert (new.kind, new.description, new.quality, new.default) == ("codec", "new", "q", False)
    assert new.id == next(m.id for m in shipped_models() if m.name == "codec_pitch")  # same token space
    assert (other.kind, other.description, other.default) == ("vocoder", "from its own card", False)
