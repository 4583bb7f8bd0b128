"""Tokenizers by name: a shipped model's name (``codec_sf``, ``semantic_asr``: the spelling of ``speechlm models``),
``codec[:MODEL]``, ``hybrid`` (= ``codec:hybrid``), ``semantic[:MODEL]``, or a folder.

``MODEL`` is an asset name (``speechlm/assets/codec_MODEL``, ``speechlm/assets/semantic_MODEL``) or a folder. A
bare folder is recognised by its checkpoint config (a semantic tokenizer has a ``semantic`` section).
"""

from __future__ import annotations

import json
from pathlib import Path

from speechlm.errors import SpeechLMError
from speechlm.tokenizers.base import AudioTokenizer

KINDS = ("codec", "hybrid", "semantic")


def load_tokenizer(spec: str) -> AudioTokenizer:
    """Load a tokenizer from a spec (see the module docstring)."""
    kind, _, model = spec.partition(":")
    prefix = spec.split("_", 1)[0]
    if kind not in KINDS and prefix in ("codec", "semantic") and not Path(spec).is_dir():
        kind, model = prefix, spec  # a model name as `speechlm models` lists it
    if kind not in KINDS and Path(spec).is_dir():
        cfg = Path(spec) / "config.json"
        if not cfg.is_file() and (Path(spec) / "tokenizer" / "config.json").is_file():
            cfg = Path(spec) / "tokenizer" / "config.json"
        try:
            is_semantic = "semantic" in (json.loads(cfg.read_text()).get("config") or {})
        except (OSError, ValueError):
            is_semantic = False
        kind, model = ("semantic" if is_semantic else "codec"), spec
    if kind == "hybrid":
        kind, model = "codec", model or "hybrid"
    if kind == "codec":
        from speechlm.tokenizers.codec.api import Codec

        return Codec.load(model or None)
    if kind == "semantic":
        from speechlm.tokenizers.semantic.api import SemanticTokenizer

        return SemanticTokenizer.load(model or None)
    raise SpeechLMError(f"unknown tokenizer {spec!r}: use a model name (codec_sf, semantic_asr, ...), "
                        "codec[:MODEL], hybrid, semantic[:MODEL] or a folder")
