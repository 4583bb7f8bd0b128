"""Reference-vs-degraded evaluation (codecs, enhancement, any ``ref -> deg`` processing).

:func:`evaluate_pairs` scores sample-aligned pairs: PESQ (wide-band at 16 kHz, narrow-band at 8 kHz), STOI,
SI-SDR, log-mel L1, F0 RMSE and voicing error (frame by frame), MCD (DTW), speaker similarity of deg to ref,
and DNSMOS of the degraded signal. Both signals are resampled to ``sr`` and trimmed to the shorter length (see
:mod:`speechlm.eval.metrics`). :func:`evaluate_codec` reads a manifest and a folder of decoded files named by
utterance id; :func:`evaluate_codec_fn` pushes waveforms through an ``encode-decode`` callable first (the
codec benchmark's entry point).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from speechlm.errors import SpeechLMError
from speechlm.eval.report import Report, UtteranceResult, summarize
from speechlm.eval.runner import run_jobs

PAIR_GROUPS = ("signal", "cepstral", "speaker", "mos")
AUDIO_EXTS = (".wav", ".flac", ".ogg", ".opus", ".mp3")

AudioLike = str | os.PathLike | np.ndarray


@dataclass(frozen=True)
class PairJob:
    id: str
    ref: AudioLike
    deg: AudioLike
    sr: int
    groups: tuple[str, ...]
    speaker_model: str | None


def _load(x: AudioLike, sr: int, src_sr: int | None = None) -> np.ndarray:
    from speechlm.audio.io import load_audio, resample

    if isinstance(x, np.ndarray):
        w = np.asarray(x, dtype=np.float32)
        if w.ndim == 2:
            w = w.mean(0)
        if src_sr is not None and src_sr != sr:
            w = resample(w, src_sr, sr)
        return w
    return load_audio(x, sr=sr)[0][0]


def _score_pair_safe(job: PairJob) -> UtteranceResult:
    """:func:`_score_pair`, with an unexpected failure on one utterance made an error row."""
    try:
        return _score_pair(job)
    except SpeechLMError:
        raise
    except Exception as exc:  # noqa: BLE001 - reported in the row and counted in meta["failed"]
        return UtteranceResult(job.id, error=f"{type(exc).__name__}: {exc}")


def _score_pair(job: PairJob) -> UtteranceResult:
    from speechlm.eval import metrics as M

    audio = {
        k: str(v) for k, v in (("reference", job.ref), ("degraded", job.deg)) if not isinstance(v, np.ndarray)
    }
    try:
        ref, deg = _load(job.ref, job.sr), _load(job.deg, job.sr)
    except SpeechLMError as exc:
        return UtteranceResult(job.id, audio=audio, error=str(exc))
    m: dict[str, float] = {}
    if "signal" in job.groups:
        if job.sr in (8000, 16000):
            m["pesq"] = M.pesq_score(ref, deg, job.sr)
        m["stoi"] = M.stoi_score(ref, deg, job.sr)
        m["si_sdr"] = M.si_sdr(ref, deg)
        m["mel_dist"] = M.mel_distance(ref, deg, job.sr)
    if "cepstral" in job.groups:
        m["mcd"] = M.mcd(ref, deg, job.sr)
        f = M.f0_metrics(ref, deg, job.sr, use_dtw=False)
        m.update(f0_rmse_cents=f.rmse_cents, f0_rmse_hz=f.rmse_hz, vde=f.voicing_error)
    if "speaker" in job.groups:
        from speechlm.eval.speaker import load_embedder, speaker_similarity

        m["spk_sim"] = speaker_similarity(ref, deg, job.sr, load_embedder(job.speaker_model))
    if "mos" in job.groups:
        from speechlm.eval.mos import dnsmos

        s = dnsmos(deg, job.sr)
        m.update(dnsmos_ovrl=s.ovrl, dnsmos_sig=s.sig, dnsmos_bak=s.bak, dnsmos_p808=s.p808)
    return UtteranceResult(job.id, metrics=m, audio=audio)


def _check_groups(groups: Sequence[str], allowed: Sequence[str]) -> tuple[str, ...]:
    bad = [g for g in groups if g not in allowed]
    if bad:
        raise SpeechLMError(f"unknown metric group(s) {', '.join(bad)}; choose from {', '.join(allowed)}")
    return tuple(groups)


def evaluate_pairs(
    refs: Sequence[AudioLike],
    degs: Sequence[AudioLike],
    sr: int = 16000,
    ids: Sequence[str] | None = None,
    groups: Sequence[str] = PAIR_GROUPS,
    speaker_model: str | None = None,
    workers: int = 1,
    title: str = "Pair evaluation",
    kind: str = "pairs",
    input_sr: int | None = None,
    n_resamples: int = 1000,
    seed: int = 0,
) -> Report:
    """Score each ``(ref, deg)`` pair and summarise.

    Args:
        refs, degs: equal-length sequences of file paths or mono float arrays ``[T]`` (arrays are at
        ``input_sr``,     default ``sr``).
        sr: evaluation rate; PESQ is wide-band at 16000 and narrow-band at 8000 (other rates skip PESQ).
        ids: utterance names (default ``0, 1, ...`` or the file stems).
        groups: any of ``signal`` (PESQ, STOI, SI-SDR, mel L1), ``cepstral`` (MCD, F0, voicing), ``speaker``,
            ``mos`` (DNSMOS of deg).
        speaker_model: None for resemblyzer, or a path (see :func:`speechlm.eval.speaker.load_embedder`).
        workers: processes (1 = inline).

    Returns:
        A :class:`Report` (players embedded only for pairs given as files).
    """
    if len(refs) != len(degs):
        raise SpeechLMError(f"{len(refs)} references but {len(degs)} degraded signals")
    if not refs:
        raise SpeechLMError("nothing to evaluate: no pairs")
    groups = _check_groups(groups, PAIR_GROUPS)
    if ids is None:
        ids = [Path(r).stem if not isinstance(r, np.ndarray) else str(i) for i, r in enumerate(refs)]
    if len(set(ids)) != len(ids):
        raise SpeechLMError("utterance ids must be unique")
    src = input_sr or sr
    conv = [
        (
            _load(r, sr, src) if isinstance(r, np.ndarray) else r,
            _load(d, sr, src) if isinstance(d, np.ndarray) else d,
        )
        for r, d in zip(refs, degs)
    ]
    jobs = [PairJob(str(i), r, d, sr, groups, speaker_model) for i, (r, d) in zip(ids, conv)]
    t0 = time.perf_counter()
    items = run_jobs(_score_pair_safe, jobs, workers, desc=kind)
    elapsed = time.perf_counter() - t0
    meta = {
        "kind": kind,
        "utterances": len(items),
        "failed": sum(it.error is not None for it in items),
        "sample_rate": sr,
        "pesq_mode": {16000: "wb", 8000: "nb"}.get(sr, "skipped"),
        "metric_groups": ",".join(groups),
        "speaker_model": speaker_model or "resemblyzer",
        "workers": workers,
        "seconds": round(elapsed, 2),
    }
    return Report(title, kind, summarize(items, n_resamples, seed), tuple(items), meta)


def find_audio(folder: Path, stem: str) -> Path | None:
    """``folder/stem.EXT`` for the first EXT in :data:`AUDIO_EXTS` that exists."""
    for ext in AUDIO_EXTS:
        p = folder / f"{stem}{ext}"
        if p.is_file():
            return p
    return None


def evaluate_codec(
    manifest: str | os.PathLike,
    decoded_dir: str | os.PathLike,
    split: str | None = None,
    limit: int | None = None,
    **kwargs,
) -> Report:
    """Pairs of a manifest's audio and ``decoded_dir/<id>.wav`` (other audio extensions accepted).

    Utterances without a decoded file are listed as failed rows; ``kwargs`` go to :func:`evaluate_pairs`.
    """
    from speechlm.data.manifest import manifest_root, read_manifest

    utts = [u for u in read_manifest(manifest) if split is None or u.split == split][:limit]
    if not utts:
        raise SpeechLMError(f"no utterances in {manifest}" + (f" with split {split}" if split else ""))
    root, dec = manifest_root(manifest), Path(decoded_dir)
    if not dec.is_dir():
        raise SpeechLMError(f"decoded folder {dec} does not exist")
    found = [(u, find_audio(dec, u.id)) for u in utts]
    present = [(u, p) for u, p in found if p is not None]
    if not present:
        raise SpeechLMError(
            f"none of the {len(utts)} utterances has a decoded file in {dec} (named <id>.wav)"
        )
    kwargs.setdefault("title", f"Codec evaluation: {dec.name}")
    rep = evaluate_pairs(
        [str(u.audio_path(root)) for u, _ in present],
        [str(p) for _, p in present],
        ids=[u.id for u, _ in present],
        kind="codec",
        **kwargs,
    )
    missing = tuple(UtteranceResult(u.id, error="no decoded file") for u, p in found if p is None)
    meta = {**rep.meta, "manifest": str(manifest), "decoded": str(dec), "missing": len(missing)}
    return Report(rep.title, rep.kind, rep.summary, rep.items + missing, meta)


def evaluate_codec_fn(
    refs: Sequence[np.ndarray], codec: Callable[[np.ndarray, int], np.ndarray], sr: int, **kwargs
) -> Report:
    """Run each waveform ``[T]`` (at ``sr``) through ``codec(wav, sr) -> wav'`` and score ``(wav, wav')``.

    ``codec`` runs in this process (it may hold a model); the scoring may use ``workers`` processes.
    """
    from tqdm import tqdm

    degs = [
        np.asarray(codec(np.asarray(r, dtype=np.float32), sr), dtype=np.float32).ravel()
        for r in tqdm(refs, desc="encode-decode", unit="utt", disable=len(refs) < 2)
    ]
    kwargs.setdefault("kind", "codec")
    kwargs.setdefault("title", "Codec evaluation")
    return evaluate_pairs(list(refs), degs, input_sr=sr, **{"sr": 16000 if sr >= 16000 else 8000, **kwargs})
