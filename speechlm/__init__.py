"""speechlm: speech as discrete tokens, generated the way a text LM generates words.

The public face: ``from speechlm import TTS, Codec, SemanticTokenizer, Transcriber``, each built with
``.load(NAME|DIR)`` (``speechlm models`` lists the names). They are imported on first use (PEP 562), so
``import speechlm`` stays cheap (no torch) and the CLI starts fast.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# public name -> (module, attribute), imported on first access
_LAZY: dict[str, tuple[str, str]] = {
    "TTS": ("speechlm.tasks.tts", "TTS"),
    "Codec": ("speechlm.tokenizers.codec.api", "Codec"),
    "SemanticTokenizer": ("speechlm.tokenizers.semantic.api", "SemanticTokenizer"),
    "Transcriber": ("speechlm.asr.transcriber", "CTCTranscriber"),
}

__all__ = ["TTS", "Codec", "SemanticTokenizer", "Transcriber", "__version__"]

if TYPE_CHECKING:
    from speechlm.asr.transcriber import CTCTranscriber as Transcriber
    from speechlm.tasks.tts import TTS
    from speechlm.tokenizers.codec.api import Codec
    from speechlm.tokenizers.semantic.api import SemanticTokenizer


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        module, attr = _LAZY[name]
        value = getattr(importlib.import_module(module), attr)
        globals()[name] = value  # later lookups skip this function
        return value
    raise AttributeError(f"module 'speechlm' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})
