"""Token layouts: delay/undelay and VoiceCraft mask-and-move, checked against naive loops and round trips."""

from __future__ import annotations

import pytest
import torch

from speechlm.lm.delay import delay, undelay
from speechlm.lm.voicecraft import AudioVocab, infill_context, mask_and_move, unmask


def naive_delay(codes: torch.Tensor, pad: int) -> torch.Tensor:
    k, t = codes.shape
    out = torch.full((k, t + k - 1), pad, dtype=codes.dtype)
    for kk in range(k):
        for tt in range(t):
            out[kk, tt + kk] = codes[kk, tt]
    return out


@pytest.mark.parametrize("k,t", [(1, 5), (4, 7), (8, 1), (3, 0)])
def test_delay_matches_naive_and_roundtrips(k: int, t: int) -> None:
    codes = torch.randint(0, 100, (k, t))
    d = delay(codes, pad=-1)
    assert torch.equal(d, naive_delay(codes, -1))
    assert torch.equal(undelay(d), codes)


def test_delay_batched() -> None:
    codes = torch.randint(0, 100, (2, 3, 6))
    d = delay(codes, pad=7)
    assert d.shape == (2, 3, 8)
    assert torch.equal(d[1], naive_delay(codes[1], 7))
    assert torch.equal(undelay(d), codes)


def naive_mask_and_move(codes: torch.Tensor, spans, vocab: AudioVocab) -> list[list[int]]:
    k, t = codes.shape
    frames, moved = [], []
    inside = {}
    for i, (s, e) in enumerate(spans):
        for x in range(s, e):
            inside[x] = i
    starts = {s: i for i, (s, _) in enumerate(spans)}
    for x in range(t):
        if x in starts:
            frames.append([vocab.mask(starts[x])] * k)
        if x not in inside:
            frames.append(codes[:, x].tolist())
    if t in starts:
        frames.append([vocab.mask(starts[t])] * k)
    for i, (s, e) in enumerate(spans):
        moved.append([vocab.mask(i)] * k)
        moved += [codes[:, x].tolist() for x in range(s, e)]
        moved.append([vocab.eog] * k)
    return frames + moved


@pytest.mark.parametrize("spans", [[(2, 5)], [(0, 3)], [(4, 10)], [(1, 2), (5, 8)], [(0, 1), (3, 4), (9, 10)]])
def test_mask_and_move_matches_naive_and_roundtrips(spans) -> None:
    vocab = AudioVocab(card=50, n_masks=4)
    codes = torch.randint(0, 50, (3, 10))
    out = mask_and_move(codes, spans, vocab)
    assert out.T.tolist() == naive_mask_and_move(codes, spans, vocab)
    back, got_spans = unmask(out, vocab)
    assert torch.equal(back, codes)
    assert got_spans == spans


def test_unmask_accepts_spans_of_new_length() -> None:
    vocab = AudioVocab(card=50, n_masks=2)
    codes = torch.randint(0, 50, (2, 8))
    prefix, forced = infill_context(codes, [(2, 4), (6, 7)], vocab)
    new1, new2 = torch.full((2, 3), 11), torch.full((2, 1), 12)
    eog = torch.full((2, 1), vocab.eog)
    seq = torch.cat([prefix, new1, eog, forced[0], new2, eog], dim=1)
    back, spans = unmask(seq, vocab)
    assert spans == [(2, 5), (7, 8)]
    expected = torch.cat([codes[:, :2], new1, codes[:, 4:6], new2, codes[:, 7:]], dim=1)
    assert torch.equal(back, expected)


def test_tts_context_equals_training_layout_prefix() -> None:
    vocab = AudioVocab(card=50, n_masks=2)
    codes = torch.randint(0, 50, (2, 9))
    train = mask_and_move(codes, [(4, 9)], vocab)
    prefix, forced = infill_context(codes[:, :4], [(4, 4)], vocab)
    assert forced == []
    assert torch.equal(train[:, : prefix.shape[1]], prefix)


@pytest.mark.parametrize("spans", [[], [(3, 2)], [(0, 4), (3, 6)], [(0, 11)], [(0, 1), (2, 3), (4, 5)]])
def test_bad_spans_raise(spans) -> None:
    with pytest.raises(ValueError):
        mask_and_move(torch.zeros(2, 10, dtype=torch.long), spans, AudioVocab(card=5, n_masks=2))
