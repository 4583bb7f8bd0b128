"""Token statistics: utilisation and entropy, phone purity and PNMI, a speaker probe, n-gram unit-LM perplexity.

All functions take plain integer arrays; none needs a model.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch


def joint_units(codes: np.ndarray) -> np.ndarray:
    """Codes ``[K, T]`` -> one id per frame for the tuple of its K codes (ids dense, order of first sort)."""
    codes = np.asarray(codes)
    if codes.shape[0] == 1:
        return codes[0].astype(np.int64)
    _, inv = np.unique(codes.T, axis=0, return_inverse=True)
    return inv.reshape(-1).astype(np.int64)


def usage_stats(units: np.ndarray, cardinality: int) -> tuple[float, float]:
    """(utilisation: fraction of the ``cardinality`` codes that occur, entropy in bits of the code histogram)."""
    counts = np.bincount(np.asarray(units, np.int64), minlength=cardinality).astype(np.float64)
    p = counts[counts > 0] / max(counts.sum(), 1)
    return float((counts > 0).mean()), float(-(p * np.log2(p)).sum())


def _labels_to_ids(labels: Sequence) -> np.ndarray:
    _, inv = np.unique(np.asarray(labels), return_inverse=True)
    return inv.reshape(-1)


def purity_pnmi(units: np.ndarray, phones: Sequence) -> tuple[float, float]:
    """Phone purity and PNMI of frame-level units against frame-level phone labels (HuBERT's definitions).

    Purity is ``E_unit[max_phone p(phone | unit)]``; PNMI is ``I(phone; unit) / H(phone)`` (plug-in estimates on
    the given frames, so they grow with the number of distinct units: compare tokenizers with similar counts).
    """
    u = _labels_to_ids(units)
    ph = _labels_to_ids(phones)
    joint = np.zeros((u.max() + 1, ph.max() + 1))
    np.add.at(joint, (u, ph), 1.0)
    p = joint / joint.sum()
    pu, pp = p.sum(1), p.sum(0)
    purity = float(p.max(1).sum())
    nz = p > 0
    mi = float((p[nz] * np.log(p[nz] / (pu[:, None] * pp[None, :])[nz])).sum())
    hp = float(-(pp[pp > 0] * np.log(pp[pp > 0])).sum())
    return purity, mi / hp if hp > 0 else 0.0


def heldout_purity(units_a: np.ndarray, phones_a: Sequence, units_b: np.ndarray, phones_b: Sequence) -> float:
    """Purity of a unit -> phone map learnt on part A and scored on part B (units unseen in A get A's most
    common phone): unlike plug-in purity it does not reach 1 just because every frame has its own unit."""
    a_units, a_ph = np.asarray(units_a), np.asarray(phones_a)
    best: dict = {}
    for unit in np.unique(a_units):
        vals, cnt = np.unique(a_ph[a_units == unit], return_counts=True)
        best[unit] = vals[cnt.argmax()]
    vals, cnt = np.unique(a_ph, return_counts=True)
    default = vals[cnt.argmax()]
    pred = np.array([best.get(x, default) for x in np.asarray(units_b)])
    return float((pred == np.asarray(phones_b)).mean()) if len(pred) else float("nan")


def unit_histograms(codes: Sequence[np.ndarray], cardinality: int) -> np.ndarray:
    """Per utterance, the normalised histogram of every codebook, concatenated: codes ``[K, T]`` each ->
    ``[N, K * cardinality]`` (square-rooted: Hellinger features, so a linear probe sees them well)."""
    rows = []
    for c in codes:
        h = [np.bincount(np.asarray(c[k], np.int64), minlength=cardinality) / max(c.shape[1], 1)
             for k in range(c.shape[0])]
        rows.append(np.sqrt(np.concatenate(h)))
    return np.stack(rows).astype(np.float32)


@dataclass(frozen=True)
class ProbeResult:
    """Cross-validated accuracy of a linear speaker classifier, and chance (1 / speakers)."""

    accuracy: float
    chance: float
    n_utts: int
    n_speakers: int


def _logreg_fit_predict(x_tr: np.ndarray, y_tr: np.ndarray, x_te: np.ndarray, n_cls: int, l2: float,
                        steps: int) -> np.ndarray:
    torch.manual_seed(0)
    xt = torch.from_numpy(x_tr)
    mu, sd = xt.mean(0), xt.std(0) + 1e-3
    xt = (xt - mu) / sd
    w = torch.zeros(xt.shape[1], n_cls, requires_grad=True)
    b = torch.zeros(n_cls, requires_grad=True)
    opt = torch.optim.LBFGS([w, b], lr=1.0, max_iter=steps, line_search_fn="strong_wolfe")
    y = torch.from_numpy(y_tr)

    def closure():
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(xt @ w + b, y) + l2 * (w * w).sum()
        loss.backward()
        return loss

    opt.step(closure)
    with torch.no_grad():
        return (((torch.from_numpy(x_te) - mu) / sd) @ w + b).argmax(1).numpy()


def speaker_probe(features: np.ndarray, speakers: Sequence[str], folds: int = 3, l2: float = 1e-3,
                  steps: int = 100) -> ProbeResult:
    """k-fold (stratified by speaker) accuracy of multinomial logistic regression on pooled-token features.

    features ``[N, D]``; speakers with fewer than ``folds`` utterances are left out.
    """
    spk = np.asarray(speakers)
    names, counts = np.unique(spk, return_counts=True)
    keep_names = set(names[counts >= folds])
    keep = np.array([s in keep_names for s in spk])
    x, y_names = features[keep], spk[keep]
    if len(keep_names) < 2:
        return ProbeResult(float("nan"), float("nan"), int(keep.sum()), len(keep_names))
    classes, y = np.unique(y_names, return_inverse=True)
    fold = np.zeros(len(y), np.int64)
    for c in range(len(classes)):  # stratified: each speaker's utterances spread over the folds
        idx = np.nonzero(y == c)[0]
        fold[idx] = np.arange(len(idx)) % folds
    correct = 0
    for f in range(folds):
        tr, te = fold != f, fold == f
        pred = _logreg_fit_predict(x[tr], y[tr], x[te], len(classes), l2, steps)
        correct += int((pred == y[te]).sum())
    return ProbeResult(correct / len(y), 1.0 / len(classes), int(len(y)), int(len(classes)))


def ngram_perplexity(train: Sequence[np.ndarray], test: Sequence[np.ndarray], cardinality: int,
                     discount: float = 0.75) -> float:
    """Per-token perplexity on ``test`` of a bigram LM with interpolated absolute discounting (Kneser-Ney
    style, add-one unigram floor) trained on ``train`` (1-D unit sequences)."""
    v = int(cardinality)
    big: dict[tuple[int, int], int] = {}
    uni = np.ones(v)  # add-one floor: every unit has some mass
    for s in train:
        s = np.asarray(s, np.int64)
        np.add.at(uni, s, 1.0)
        if len(s) > 1:
            pairs, cnt = np.unique(s[:-1] * v + s[1:], return_counts=True)
            for p, c in zip(pairs.tolist(), cnt.tolist()):
                key = (p // v, p % v)
                big[key] = big.get(key, 0) + c
    p_uni = uni / uni.sum()
    ctx_total = np.zeros(v)
    ctx_types = np.zeros(v)
    for (a, _), c in big.items():
        ctx_total[a] += c
        ctx_types[a] += 1
    nll, n = 0.0, 0
    for s in test:
        s = np.asarray(s, np.int64)
        for a, b in zip(s[:-1].tolist(), s[1:].tolist()):
            tot = ctx_total[a]
            if tot > 0:
                c = big.get((a, b), 0)
                p = max(c - discount, 0) / tot + discount * ctx_types[a] / tot * p_uni[b]
            else:
                p = p_uni[b]
            nll -= np.log(p)
            n += 1
    return float(np.exp(nll / max(n, 1)))
