"""Output label sets of the CTC heads (blank at index 0) and the text -> label conversions.

Phonemes come from :func:`speechlm.text.g2p.phonemize`: phones separated by spaces, words by ``" | "``; the
phone head is language-universal IPA. Characters come from the WER normalisation (lower case, no punctuation),
so what the character head learns to write is exactly what WER is scored on; the space is a label (word
boundary).
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

BLANK_LABEL = "<blank>"
WORD_SEP = "|"

# Latin (with the diacritics of the European languages we train on) + Cyrillic + apostrophe and space. A fixed
# list, not one read off the training data, so a checkpoint's character head has the same meaning everywhere.
_LATIN = "abcdefghijklmnopqrstuvwxyz"
_LATIN_EXT = "àáâãäåæçèéêëìíîïñòóôõöøùúûüýÿœßčďěňřšťůžąćęłńśźżőűğışăâîșțđĺľŕāēīōū"
_CYRILLIC = "абвгдеёжзийклмнопрстуфхцчшщъыьэюяіїєґўј"
DEFAULT_CHARS: tuple[str, ...] = tuple(dict.fromkeys(" '" + _LATIN + _LATIN_EXT + _CYRILLIC))


@dataclass(frozen=True)
class LabelSet:
    """An ordered label inventory; index 0 is the CTC blank."""

    labels: tuple[str, ...]

    def __post_init__(self) -> None:
        if not self.labels or self.labels[0] != BLANK_LABEL:
            raise ValueError("a LabelSet starts with the blank label")
        if len(set(self.labels)) != len(self.labels):
            raise ValueError("labels must be unique")

    @classmethod
    def from_symbols(cls, symbols: Iterable[str]) -> LabelSet:
        return cls((BLANK_LABEL, *dict.fromkeys(s for s in symbols if s and s != BLANK_LABEL)))

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def index(self) -> dict[str, int]:
        return {s: i for i, s in enumerate(self.labels)}

    def encode(self, tokens: Sequence[str]) -> tuple[list[int], list[int]]:
        """Token strings -> (ids, positions in ``tokens`` that were kept); unknown tokens are dropped."""
        idx = self.index
        ids, kept = [], []
        for i, t in enumerate(tokens):
            j = idx.get(t)
            if j is not None and j != 0:
                ids.append(j)
                kept.append(i)
        return ids, kept

    def decode(self, ids: Iterable[int]) -> list[str]:
        return [self.labels[i] for i in ids if 0 < i < len(self.labels)]


def char_tokens(text: str, lang: str) -> list[str]:
    """Text -> the character labels the character head is trained on (WER-normalised, NFC, single spaces)."""
    from speechlm.text.normalize import normalize_for_wer

    norm = unicodedata.normalize("NFC", normalize_for_wer(text, lang).lower())
    return list(" ".join(norm.split()))


def split_phonemes(phonemes: str) -> list[list[str]]:
    """``"h ə | w ɜː l d"`` -> ``[["h", "ə"], ["w", "ɜː", "l", "d"]]`` (empty words dropped)."""
    words = [w.split() for w in phonemes.split(WORD_SEP)]
    return [w for w in words if w]


def phone_tokens(phonemes: str) -> list[str]:
    """A phonemized string -> its phones, word boundaries removed (the phone head has no boundary label)."""
    return [p for w in split_phonemes(phonemes) for p in w]
