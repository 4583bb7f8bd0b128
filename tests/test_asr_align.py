"""CTC decoding and Viterbi forced alignment on synthetic emission matrices with a known path."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from speechlm.asr.align import (
    Alignment,
    AlignmentError,
    build_alignment,
    fill_spans,
    spans_from_path,
    viterbi_align,
)
from speechlm.asr.decode import ctc_collapse, greedy_decode


def emissions_for(path: list[int], vocab: int, peak: float = 0.9, seed: int = 0) -> np.ndarray:
    """Log-probabilities whose per-frame argmax is ``path`` (label ids, 0 = blank), with random clutter."""
    rng = np.random.default_rng(seed)
    p = rng.uniform(0.0, 1.0, size=(len(path), vocab))
    p /= p.sum(1, keepdims=True)
    p *= 1 - peak
    p[np.arange(len(path)), path] += peak
    return np.log(p)


def test_collapse_merges_repeats_and_drops_blanks():
    assert ctc_collapse([0, 3, 3, 0, 3, 5, 5, 0]) == [3, 3, 5]
    assert ctc_collapse([0, 0, 0]) == []
    assert ctc_collapse([2, 2, 2]) == [2]


def test_greedy_decode_respects_lengths():
    lp = torch.tensor(emissions_for([1, 1, 0, 2, 3, 3], vocab=5)).float()
    batch = torch.stack([lp, lp])
    out = greedy_decode(batch, torch.tensor([6, 4]))
    assert out == [[1, 2, 3], [1, 2]]


def test_viterbi_recovers_known_path_exactly():
    # labels: a=1 b=2 c=3; frame path spells "a b b c" with a blank between the two b's
    frame_ids = [0, 0, 1, 1, 0, 2, 0, 2, 2, 0, 0, 3, 0]
    targets = [1, 2, 2, 3]
    lp = emissions_for(frame_ids, vocab=6)
    path, score = viterbi_align(lp, targets)
    want = [-1, -1, 0, 0, -1, 1, -1, 2, 2, -1, -1, 3, -1]
    assert path.tolist() == want
    assert score == pytest.approx(float(lp[np.arange(len(frame_ids)), frame_ids].sum()))
    assert spans_from_path(path, 4) == [(2, 4), (5, 6), (7, 9), (11, 12)]


def test_viterbi_is_forced_even_against_the_argmax():
    # The argmax says "c" everywhere; alignment must still spell a, b in order, monotonic, every token used.
    lp = emissions_for([3] * 10, vocab=4)
    path, _ = viterbi_align(lp, [1, 2])
    emitted = [int(x) for x in path if x >= 0]
    assert emitted == sorted(emitted) and set(emitted) == {0, 1}


def test_repeats_need_a_blank_frame():
    lp = emissions_for([1, 0, 1], vocab=3)
    path, _ = viterbi_align(lp, [1, 1])
    assert path.tolist() == [0, -1, 1]
    with pytest.raises(AlignmentError):
        viterbi_align(lp[:2], [1, 1])  # 2 frames cannot hold "a <blank> a"
    path, _ = viterbi_align(lp[:2], [1, 2])  # distinct labels fit in 2 frames
    assert path.tolist() == [0, 1]


def test_empty_target_is_all_blank():
    path, _ = viterbi_align(emissions_for([0, 1, 0], vocab=3), [])
    assert path.tolist() == [-1, -1, -1]


def test_fill_spans_contiguous_within_word_and_pads_edges():
    raw = [(2, 3), (5, 6), (6, 7), (20, 21), (24, 25)]
    word = [0, 0, 0, 1, 1]
    filled = fill_spans(raw, word, n_frames=30, edge_pad=3)
    assert filled == [(0, 5), (5, 6), (6, 10), (17, 24), (24, 28)]
    for (a, b), (c, _) in zip(filled, filled[1:]):
        assert a < b <= c


def test_alignment_words_and_frame_labels():
    # two words: "ab" | "c", 50 frames/s
    frame_ids = [0, 0, 0, 1, 1, 0, 2, 0, 0, 0, 0, 0, 0, 0, 3, 3, 0, 0, 0, 0]
    lp = emissions_for(frame_ids, vocab=4)
    path, score = viterbi_align(lp, [1, 2, 3])
    al = build_alignment(
        path, score, ["a", "b", "c"], [0, 0, 1], ["ab", "c"], frame_rate=50.0, edge_pad_s=0.04
    )
    assert isinstance(al, Alignment)
    assert [w.word for w in al.words] == ["ab", "c"]
    # raw: a (3,5) b (6,7) c (14,16); pads of 2 frames
    assert al.phones[0].start_s == pytest.approx(1 / 50) and al.phones[0].end_s == pytest.approx(6 / 50)
    assert al.words[0].end_s == pytest.approx(9 / 50)
    assert al.words[1].start_s == pytest.approx(12 / 50) and al.words[1].end_s == pytest.approx(18 / 50)
    labels = al.frame_labels()
    assert len(labels) == 20
    assert labels[:1] == ["sil"] and labels[1:6] == ["a"] * 5 and labels[6:9] == ["b"] * 3
    assert labels[9:12] == ["sil"] * 3 and labels[12:18] == ["c"] * 6 and labels[18:] == ["sil"] * 2
    # resampled to 25 Hz: half as many frames, same phones in order
    coarse = al.frame_labels(frame_rate=25.0)
    assert len(coarse) == 10 and coarse[1] == "a" and coarse[7] == "c"
    assert al.score < 0 and "words" in al.to_json()


def test_build_alignment_rejects_word_without_tokens():
    path = np.array([0, 1])
    with pytest.raises(ValueError):
        build_alignment(path, 0.0, ["a", "b"], [0, 0], ["x", "y"], frame_rate=50.0)
