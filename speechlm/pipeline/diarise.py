"""Stage 3: who speaks when: speaker embeddings on sliding windows + agglomerative clustering.

Embeddings: resemblyzer's GE2E encoder (weights inside the resemblyzer wheel, loaded by
:class:`speechlm.eval.speaker.ResemblyzerEmbedder` with ``weights_only=True``; the file's sha256 is pinned in
:data:`GE2E_SHA256` and checked). Resemblyzer's 40-band mel (10 ms hop) is computed once for the whole input and
cut into windows of :data:`WINDOW_S` every :data:`HOP_S`; a window is embedded when at least half of it is speech.
Clustering: average-linkage agglomerative clustering on cosine distance, cut at ``threshold`` (the number of
speakers is not known); clusters holding less than :data:`MIN_CLUSTER_S` of windows are merged into the nearest
large cluster. Each speech frame takes the label of the window centred nearest to it (in the same speech
region), and runs of one label become the turns. Overlapped speech gets one label.

Speech regions come from ``speech`` (e.g. the segmenter's VAD) or from :func:`speech_regions`: Silero VAD v6
(the ONNX model bundled in ``faster-whisper``) when installed, else :func:`energy_vad`.
:func:`der` scores a result against a reference (diarisation error rate, optimal one-to-one speaker mapping,
a collar around every reference boundary left unscored).
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from speechlm.errors import CheckpointError

GE2E_SHA256 = "39373b86598fa3da9fcddee6142382efe09777e8d37dc9c0561f41f0070f134e"  # resemblyzer 0.1.4 pretrained.pt
EMBED_SR = 16000
FRAME_S = 0.01  # resemblyzer's mel hop
WINDOW_S = 1.5
HOP_S = 0.5
THRESHOLD = 0.3  # cosine distance at which clusters stop merging (tuned on constructed conversations, seed 7)
MIN_CLUSTER_S = 2.0
Turn = tuple[float, float, str]


@functools.cache
def _encoder():
    """The GE2E model (torch module), loaded once per process after checking the pinned hash."""
    from speechlm.eval.speaker import ResemblyzerEmbedder, _resemblyzer_dir

    path = Path(_resemblyzer_dir()) / "pretrained.pt"
    h = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else "missing"
    if h != GE2E_SHA256:
        raise CheckpointError(f"resemblyzer weights {path}: sha256 {h[:16]}... is not the pinned {GE2E_SHA256[:16]}...")
    return ResemblyzerEmbedder().model


def energy_vad(audio: np.ndarray, sr: int, frame_s: float = FRAME_S, min_speech_s: float = 0.2,
               min_gap_s: float = 0.3) -> list[tuple[float, float]]:
    """Speech regions ``[(start_s, end_s)]`` from frame energy: a frame is speech when its level is above
    ``max(p10 + 10 dB, p99 - 40 dB)`` of the frame levels; gaps shorter than ``min_gap_s`` are bridged and
    regions shorter than ``min_speech_s`` dropped."""
    x = np.asarray(audio, np.float64).reshape(-1)
    hop = int(frame_s * sr)
    n = x.size // hop
    if n == 0:
        return []
    db = 10 * np.log10(np.mean(x[: n * hop].reshape(n, hop) ** 2, axis=1) + 1e-12)
    thr = max(np.percentile(db, 10) + 10.0, np.percentile(db, 99) - 40.0)
    return _runs(db > thr, frame_s, min_speech_s, min_gap_s)


def speech_regions(audio: np.ndarray, sr: int, threshold: float = 0.5, min_silence_s: float = 0.3
                   ) -> list[tuple[float, float]]:
    """Speech regions ``[(start_s, end_s)]`` by Silero VAD (faster-whisper's bundled ONNX), or by
    :func:`energy_vad` when faster-whisper is not installed."""
    from speechlm.audio.io import resample

    try:
        from faster_whisper.vad import VadOptions, get_speech_timestamps
    except ImportError:
        return energy_vad(audio, sr)
    x = resample(np.asarray(audio, np.float32).reshape(-1), sr, 16000)
    opts = VadOptions(threshold=threshold, min_silence_duration_ms=int(min_silence_s * 1000), speech_pad_ms=50,
                      min_speech_duration_ms=200)
    return [(round(t["start"] / 16000, 3), round(t["end"] / 16000, 3))
            for t in get_speech_timestamps(x, opts, sampling_rate=16000)]


def _runs(mask: np.ndarray, frame_s: float, min_len_s: float, min_gap_s: float) -> list[tuple[float, float]]:
    """True runs of a frame mask as ``[(start_s, end_s)]``, bridging short gaps, dropping short runs."""
    d = np.diff(np.concatenate([[0], mask.astype(np.int8), [0]]))
    starts, ends = np.flatnonzero(d == 1), np.flatnonzero(d == -1)
    out: list[list[float]] = []
    for s, e in zip(starts, ends):
        if out and (s * frame_s - out[-1][1]) < min_gap_s:
            out[-1][1] = e * frame_s
        else:
            out.append([s * frame_s, e * frame_s])
    return [(round(s, 3), round(e, 3)) for s, e in out if e - s >= min_len_s]


def embed_windows(audio: np.ndarray, sr: int, speech: Sequence[tuple[float, float]]
                  ) -> tuple[np.ndarray, np.ndarray]:
    """GE2E embeddings of sliding windows over the speech: ``(centres_s [N], embeddings [N, 256])``."""
    import torch
    from resemblyzer import audio as ra

    from speechlm.audio.io import resample

    x = resample(np.asarray(audio, np.float32).reshape(-1), sr, EMBED_SR)
    x = np.clip(ra.normalize_volume(x, ra.audio_norm_target_dBFS, increase_only=True), -1.0, 1.0)
    mel = ra.wav_to_mel_spectrogram(x)  # [F, 40], 10 ms hop
    n_frames = mel.shape[0]
    is_speech = np.zeros(n_frames, bool)
    for s, e in speech:
        is_speech[int(s / FRAME_S): int(np.ceil(e / FRAME_S))] = True
    win, hop = int(WINDOW_S / FRAME_S), int(HOP_S / FRAME_S)
    starts = [i for i in range(0, max(1, n_frames - win + 1), hop) if is_speech[i: i + win].mean() >= 0.5]
    # Short speech regions that no full window covers get one window centred on them.
    for s, e in speech:
        c = int((s + e) / 2 / FRAME_S)
        i = min(max(0, c - win // 2), max(0, n_frames - win))
        if not any(abs(j + win // 2 - c) <= hop for j in starts):
            starts.append(i)
    starts = sorted(set(starts))
    if not starts:
        return np.zeros(0), np.zeros((0, 256), np.float32)
    mels = np.stack([np.pad(mel[i: i + win], ((0, max(0, i + win - n_frames)), (0, 0))) for i in starts])
    model = _encoder()
    with torch.inference_mode():
        emb = np.concatenate([model(torch.from_numpy(mels[k: k + 64]).float()).numpy()
                              for k in range(0, len(mels), 64)])
    emb = emb / (np.linalg.norm(emb, axis=1, keepdims=True) + 1e-9)
    return (np.asarray(starts) + win / 2) * FRAME_S, emb.astype(np.float32)


def cluster(emb: np.ndarray, threshold: float = THRESHOLD, min_size: int = 1) -> np.ndarray:
    """Average-linkage clustering of unit ``emb [N, D]`` on cosine distance cut at ``threshold`` -> labels
    ``[N]`` (0..K-1, by first appearance); clusters smaller than ``min_size`` join the nearest larger one."""
    from scipy.cluster.hierarchy import fcluster, linkage

    n = emb.shape[0]
    if n == 0:
        return np.zeros(0, int)
    if n == 1:
        return np.zeros(1, int)
    lab = fcluster(linkage(emb, method="average", metric="cosine"), t=threshold, criterion="distance") - 1
    sizes = np.bincount(lab)
    big = [k for k in range(sizes.size) if sizes[k] >= min_size] or [int(np.argmax(sizes))]
    cent = np.stack([emb[lab == k].mean(0) for k in big])
    for i in np.flatnonzero(~np.isin(lab, big)):
        lab[i] = big[int(np.argmax(cent @ emb[i]))]
    _, first = np.unique(lab, return_index=True)
    order = {int(lab[j]): r for r, j in enumerate(sorted(first))}
    return np.array([order[int(v)] for v in lab])


def diarise(audio: np.ndarray, sr: int, speech: Sequence[tuple[float, float]] | None = None,
            threshold: float = THRESHOLD) -> list[Turn]:
    """Who speaks when in mono ``audio [T]``: ``[(start_s, end_s, "spkN")]`` sorted by start, speakers
    numbered by first appearance. ``speech``: speech regions in seconds (default :func:`energy_vad`)."""
    x = np.asarray(audio, np.float32).reshape(-1)
    regions = list(speech) if speech is not None else speech_regions(x, sr)
    regions = [(float(s), float(e)) for s, e in regions if e > s]
    if not regions:
        return []
    centres, emb = embed_windows(x, sr, regions)
    if centres.size == 0:
        return [(s, e, "spk0") for s, e in regions]
    labels = cluster(emb, threshold, min_size=max(1, int(MIN_CLUSTER_S / HOP_S)))
    turns: list[Turn] = []
    for s, e in regions:
        t = np.arange(s, e, FRAME_S) + FRAME_S / 2
        inside = (centres >= s - WINDOW_S / 2) & (centres <= e + WINDOW_S / 2)
        cand = np.flatnonzero(inside) if inside.any() else np.arange(centres.size)
        nearest = cand[np.argmin(np.abs(centres[cand][None, :] - t[:, None]), axis=1)]
        lab = labels[nearest]
        cuts = np.flatnonzero(np.diff(lab)) + 1
        for a, b in zip(np.concatenate([[0], cuts]), np.concatenate([cuts, [lab.size]])):
            turns.append((round(s + a * FRAME_S, 3), round(min(e, s + b * FRAME_S), 3), f"spk{lab[a]}"))
    return sorted(turns)


def der(reference: Sequence[Turn], hypothesis: Sequence[Turn], collar: float = 0.25, frame_s: float = 0.01,
        duration: float | None = None) -> dict[str, float]:
    """Diarisation error rate of ``hypothesis`` against ``reference`` (both ``[(start_s, end_s, speaker)]``).

    Frame-level (``frame_s``) scoring; frames within ``collar`` seconds of a reference boundary are not scored;
    speakers are mapped one-to-one to maximise the matched time (Hungarian). Overlapped reference speech counts
    each speaker. Returns ``{"der", "miss", "false_alarm", "confusion"}`` as fractions of scored reference
    speech, and ``"scored_s"``.
    """
    from scipy.optimize import linear_sum_assignment

    end = max([e for _, e, _ in list(reference) + list(hypothesis)] + [duration or 0.0])
    n = int(np.ceil(end / frame_s)) + 1
    rs = sorted({s for _, _, s in reference})
    hs = sorted({s for _, _, s in hypothesis})
    R = np.zeros((len(rs), n), bool)
    H = np.zeros((len(hs), n), bool)
    for s, e, k in reference:
        R[rs.index(k), int(round(s / frame_s)): int(round(e / frame_s))] = True
    for s, e, k in hypothesis:
        H[hs.index(k), int(round(s / frame_s)): int(round(e / frame_s))] = True
    scored = np.ones(n, bool)
    c = int(round(collar / frame_s))
    for s, e, _ in reference:
        for b in (int(round(s / frame_s)), int(round(e / frame_s))):
            scored[max(0, b - c): b + c] = False
    R, H = R[:, scored], H[:, scored]
    n_ref, n_hyp = R.sum(0), H.sum(0)
    correct = 0
    if len(rs) and len(hs):
        overlap = R.astype(np.int32) @ H.T.astype(np.int32)  # [n_ref_spk, n_hyp_spk] matched frames
        ri, hi = linear_sum_assignment(-overlap)
        correct = int(overlap[ri, hi].sum())
    total = int(n_ref.sum())
    miss = int(np.maximum(n_ref - n_hyp, 0).sum())
    fa = int(np.maximum(n_hyp - n_ref, 0).sum())
    conf = int(np.minimum(n_ref, n_hyp).sum()) - correct
    t = max(total, 1)
    return {"der": (miss + fa + conf) / t, "miss": miss / t, "false_alarm": fa / t, "confusion": conf / t,
            "scored_s": total * frame_s}
