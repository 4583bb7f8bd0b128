"""Text front end: normalisation, grapheme-to-phoneme (espeak-ng 1.52), symbol tables.

* :func:`normalize_text` / :func:`normalize_for_wer` — :mod:`speechlm.text.normalize`
* :func:`phonemize` / :func:`phonemize_words` — :mod:`speechlm.text.g2p` (``"h ə l oʊ | w ɜː l d"``)
* :class:`SymbolTable`, :func:`default_symbols`, :func:`char_symbols` — :mod:`speechlm.text.symbols`

Importing this package is cheap: espeak-ng, num2words and pykakasi load on first use.
"""

from speechlm.text.g2p import phonemize, phonemize_words, split_phonemes, supported_languages
from speechlm.text.normalize import normalize_for_wer, normalize_text
from speechlm.text.symbols import SymbolTable, char_symbols, default_symbols

__all__ = [
    "SymbolTable",
    "char_symbols",
    "default_symbols",
    "normalize_for_wer",
    "normalize_text",
    "phonemize",
    "phonemize_words",
    "split_phonemes",
    "supported_languages",
]
