"""Neural audio codec (acoustic tokenizer): causal conv encoder -> residual VQ -> decoder, streaming.

``Codec`` (speechlm.tokenizers.codec.api) is the user-facing class; import it lazily (torch is heavy).
"""

from __future__ import annotations


def __getattr__(name: str):
    if name == "Codec":
        from speechlm.tokenizers.codec.api import Codec

        return Codec
    raise AttributeError(name)
