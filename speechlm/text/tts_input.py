"""What a duration-based TTS model reads: phones with stress, word boundaries, clause punctuation.

``tts_tokens("Hello there, my friend.", "en")`` ->
``["<bos>", "h", "ə", "l", "ˈ", "oʊ", "|", "ð", "ˈ", "ɛɹ", ",", "m", "aɪ", "|", "f", "ɹ", "ˈ", "ɛ", "n", "d", ".",
"<eos>"]``

The text is normalised (:func:`speechlm.text.normalize.normalize_text`), cut into clauses at ``, ; : . ! ?``
and each clause phonemized with stress marks (:func:`speechlm.text.g2p.phonemize_words`). Words are separated by
``|``; a clause ends with its punctuation token instead (one of :data:`PUNCTUATION`; ``;`` and ``:`` read as ``,``
and a clause without punctuation gets none, except that the last clause always ends with one, ``.`` by
default), so the model knows where a pause and a falling or rising contour belong. Every token carries a
duration in the training data (``<bos>``/``<eos>`` the leading and trailing silence).

Ids: the phoneme :class:`~speechlm.text.symbols.SymbolTable` first, then the punctuation tokens
(:func:`token_ids`).
"""

from __future__ import annotations

import re

from speechlm.text.symbols import BOS, EOS, WORD, SymbolTable

PUNCTUATION = (",", ".", "?", "!")
_PUNCT_MAP = {",": ",", ";": ",", ":": ",", ".": ".", "?": "?", "!": "!"}
_CLAUSE_RE = re.compile(r"([^,;:.!?]*)([,;:.!?]*)")


def tts_tokens(text: str, lang: str = "en", espeak_voice: str | None = None) -> list[str]:
    """Text -> TTS input tokens (module docstring); ``[BOS, EOS]`` only when nothing is readable.

    ``espeak_voice`` overrides the voice of ``lang`` (a Piper voice names its own)."""
    from speechlm.text.g2p import phonemize_words, resolve_lang
    from speechlm.text.normalize import normalize_text

    lang = resolve_lang(lang)
    voice = espeak_voice or lang  # a language code (phonemize_words picks its espeak-ng voice)
    text = normalize_text(text, lang)
    out: list[str] = [BOS]
    for words, punct in _CLAUSE_RE.findall(text):
        phones = [ph for _w, ph in phonemize_words(words, voice, stress=True) if ph] if words.strip() else []
        if not phones:
            continue
        for i, ph in enumerate(phones):
            if i:
                out.append(WORD)
            out.extend(ph)
        mark = next((_PUNCT_MAP[c] for c in punct if c in _PUNCT_MAP), None)
        if mark is not None:
            out.append(mark)
        else:
            out.append(WORD)  # a clause boundary without punctuation reads as a word boundary
    if len(out) > 1:
        if out[-1] == WORD:
            out.pop()
        if out[-1] not in PUNCTUATION:
            out.append(".")
    out.append(EOS)
    return out


def vocab_size(symbols: SymbolTable) -> int:
    """Input ids of a TTS model over ``symbols``: the table, then :data:`PUNCTUATION`."""
    return len(symbols) + len(PUNCTUATION)


def token_ids(tokens: list[str], symbols: SymbolTable) -> list[int]:
    """Tokens -> ids (unknown phones -> ``<unk>``)."""
    base = len(symbols)
    return [base + PUNCTUATION.index(t) if t in PUNCTUATION else symbols.id(t) for t in tokens]


def readable(tokens: list[str]) -> bool:
    """Whether there is anything to speak (a phone besides the specials and punctuation)."""
    return any(t not in (BOS, EOS, WORD) and t not in PUNCTUATION for t in tokens)
