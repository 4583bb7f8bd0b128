"""Word and character error rates with the project's text normalisation (jiwer does the alignment).

Both texts are normalised with :func:`speechlm.text.normalize.normalize_for_wer` (language-aware: case,
punctuation, numbers) before scoring; :data:`NORMALIZER` names it in reports.

Per utterance we keep the edit counts (substitutions, deletions, insertions, reference length), because the
corpus WER is ``sum(errors) / sum(reference words)``, not the mean of per-utterance rates.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass

from speechlm.errors import MissingDependencyError
from speechlm.text.normalize import normalize_for_wer

NORMALIZER = "speechlm.text.normalize.normalize_for_wer"


def normalize_text(text: str, lang: str = "en") -> str:
    """Normalise ``text`` for scoring (see module docstring)."""
    return " ".join(normalize_for_wer(text, lang).split())


@dataclass(frozen=True)
class EditCounts:
    """Alignment counts of a hypothesis against a reference (words or characters)."""

    substitutions: int
    deletions: int
    insertions: int
    ref_len: int

    @property
    def errors(self) -> int:
        return self.substitutions + self.deletions + self.insertions

    @property
    def rate(self) -> float:
        """errors / ref_len; an empty reference gives 0.0 for an empty hypothesis, else inf."""
        if self.ref_len == 0:
            return 0.0 if self.errors == 0 else float("inf")
        return self.errors / self.ref_len


def _jiwer():
    try:
        import jiwer
    except ImportError as exc:  # pragma: no cover
        raise MissingDependencyError("WER needs jiwer: pip install 'speechlm[eval]'") from exc
    return jiwer


def _word_counts(ref_words: list[str], hyp_words: list[str]) -> EditCounts:
    if not ref_words:  # jiwer refuses empty references; everything in the hypothesis is an insertion
        return EditCounts(0, 0, len(hyp_words), 0)
    out = _jiwer().process_words(" ".join(ref_words), " ".join(hyp_words))
    return EditCounts(
        out.substitutions, out.deletions, out.insertions, out.substitutions + out.deletions + out.hits
    )


def sequence_errors(reference: Sequence[Hashable], hypothesis: Sequence[Hashable]) -> EditCounts:
    """Edit counts between two token sequences (phone ids, characters, units), aligned by jiwer: each distinct
    token becomes one word, so ``.errors`` is their Levenshtein distance."""
    names: dict[Hashable, str] = {}

    def words(seq: Sequence[Hashable]) -> list[str]:
        return [names.setdefault(t, f"t{len(names)}") for t in seq]

    return _word_counts(words(reference), words(hypothesis))


def word_errors(reference: str, hypothesis: str, lang: str = "en", normalize: bool = True) -> EditCounts:
    """Word-level edit counts of ``hypothesis`` against ``reference`` (both normalised unless told not to)."""
    if normalize:
        reference, hypothesis = normalize_text(reference, lang), normalize_text(hypothesis, lang)
    return _word_counts(reference.split(), hypothesis.split())


def char_errors(reference: str, hypothesis: str, lang: str = "en", normalize: bool = True) -> EditCounts:
    """Character-level edit counts; spaces are dropped so CER measures spelling, not word splitting."""
    if normalize:
        reference, hypothesis = normalize_text(reference, lang), normalize_text(hypothesis, lang)
    ref = reference.replace(" ", "")
    hyp = hypothesis.replace(" ", "")
    if not ref:
        return EditCounts(0, 0, len(hyp), 0)
    if not hyp:  # jiwer also refuses an empty hypothesis for characters on some versions
        return EditCounts(0, len(ref), 0, len(ref))
    out = _jiwer().process_characters(ref, hyp)
    return EditCounts(
        out.substitutions, out.deletions, out.insertions, out.substitutions + out.deletions + out.hits
    )


def wer(reference: str, hypothesis: str, lang: str = "en") -> float:
    """Word error rate of one pair (normalised)."""
    return word_errors(reference, hypothesis, lang).rate


def cer(reference: str, hypothesis: str, lang: str = "en") -> float:
    """Character error rate of one pair (normalised, spaces ignored)."""
    return char_errors(reference, hypothesis, lang).rate


def corpus_wer(references: list[str], hypotheses: list[str], lang: str = "en") -> float:
    """Corpus WER: total word errors over total reference words."""
    if len(references) != len(hypotheses):
        raise ValueError(f"{len(references)} references but {len(hypotheses)} hypotheses")
    counts = [word_errors(r, h, lang) for r, h in zip(references, hypotheses)]
    total = sum(c.ref_len for c in counts)
    return sum(c.errors for c in counts) / total if total else float("nan")
