"""WER/CER on fixed strings and the bootstrap intervals."""

from __future__ import annotations

import numpy as np
import pytest

from speechlm.eval.bootstrap import bootstrap_mean, bootstrap_ratio
from speechlm.text.wer import (
    EditCounts,
    cer,
    char_errors,
    corpus_wer,
    normalize_text,
    sequence_errors,
    wer,
    word_errors,
)


def test_wer_fixed_strings():
    assert wer("the cat sat", "the cat sat down") == pytest.approx(1 / 3)
    assert wer("the cat sat", "the cat sat") == 0.0
    assert wer("The cat, sat.", "the cat sat") == 0.0  # case and punctuation are normalised away
    assert word_errors("a b c d", "a x c") == EditCounts(
        substitutions=1, deletions=1, insertions=0, ref_len=4
    )
    assert wer("a b", "") == 1.0
    assert word_errors("", "a b") == EditCounts(0, 0, 2, 0)
    assert cer("abc", "abd") == pytest.approx(1 / 3)
    assert char_errors("ab cd", "abcd").errors == 0  # CER ignores spaces


def test_sequence_errors_are_the_levenshtein_distance():
    """Token sequences (the ASR's phone and character ids) go through jiwer too; checked against a plain
    dynamic-programming Levenshtein distance on random sequences, including empty ones and tokens like "a b"."""

    def levenshtein(a, b):
        prev = list(range(len(b) + 1))
        for i, x in enumerate(a, 1):
            cur = [i] + [0] * len(b)
            for j, y in enumerate(b, 1):
                cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (x != y))
            prev = cur
        return prev[-1]

    rng = np.random.default_rng(0)
    for _ in range(200):
        a, b = (rng.integers(0, 5, rng.integers(0, 9)).tolist() for _ in range(2))
        got = sequence_errors(a, b)
        assert got.errors == levenshtein(a, b) and got.ref_len == len(a), (a, b)
    assert sequence_errors(["a b", "c"], ["a", "b", "c"]).errors == 2  # a token is never split into words
    assert sequence_errors([3, 1, 2], [1, 2]) == EditCounts(0, 1, 0, 3)


def test_wer_matches_jiwer_directly():
    import jiwer

    ref, hyp = "one two three four five", "one too three five six"
    assert wer(ref, hyp) == pytest.approx(jiwer.wer(ref, hyp))


def test_corpus_wer_pools_counts():
    # 1 error in 1 word + 0 errors in 9 words = 1/10, not the mean of rates (0.5)
    refs = ["hello", "a b c d e f g h i"]
    hyps = ["goodbye", "a b c d e f g h i"]
    assert corpus_wer(refs, hyps) == pytest.approx(0.1)


def test_normalizer_is_applied():
    assert normalize_text("Hello,   World!", "en") == "hello world"


def test_bootstrap_mean_contains_mean_and_shrinks():
    rng = np.random.default_rng(0)
    small, big = rng.normal(3.0, 1.0, 20), rng.normal(3.0, 1.0, 2000)
    a, b = bootstrap_mean(small), bootstrap_mean(big)
    for ci in (a, b):
        assert ci.low <= ci.value <= ci.high
    assert (b.high - b.low) < (a.high - a.low) / 3
    assert bootstrap_mean(small) == a  # seeded: reproducible
    c = bootstrap_mean([1.0, float("nan"), 3.0])
    assert c.n == 2 and c.value == 2.0
    assert np.isnan(bootstrap_mean([]).value)
    one = bootstrap_mean([5.0])
    assert one.low == one.high == 5.0


def test_bootstrap_ratio_is_corpus_level():
    errors = np.array([1, 0, 3, 2, 0, 1])
    words = np.array([5, 4, 10, 8, 3, 6])
    ci = bootstrap_ratio(errors, words)
    assert ci.value == pytest.approx(errors.sum() / words.sum())
    assert ci.low <= ci.value <= ci.high
    with pytest.raises(ValueError):
        bootstrap_ratio([1, 2], [3])
