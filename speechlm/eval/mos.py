"""No-reference MOS prediction with DNSMOS P.835 (SIG, BAK, OVRL) and P.808, from the ``speechmos`` package.

The ONNX files ship inside the speechmos wheel (``speechmos/dnsmos_models/``); nothing is downloaded. We build
the onnxruntime sessions ourselves with one thread each (speechmos's own ``run`` uses every core and a thread
pool, which fights the process pool of the evaluation drivers).

Input handling (documented limits):
- audio is resampled to 16 kHz (DNSMOS's only rate);
- speechmos refuses samples outside [-1, 1]: a signal whose peak exceeds 1 is scaled down by its peak (not
  clipped — clipping would add distortion that DNSMOS would then score). Within [-1, 1] nothing is changed,
  because DNSMOS is level-sensitive and was trained on unnormalised audio;
- DNSMOS scores 9.01 s windows. A shorter clip is tiled (repeated) to at least that length, as in Microsoft's
  script and speechmos. The reference then averages every 1 s hop of the *tiled* signal — up to 8 windows that
  are shifted copies of the same audio, for a 4 s clip 7 of them. By default (``exact=False``) we score only
  the windows that start inside the original clip's first ``max(1, floor(duration - 9.01) + 1)`` hops, i.e.
  one window for clips under 10 s: ~7x faster on short clips, typically within a few hundredths of the
  reference. ``exact=True`` reproduces speechmos's numbers exactly (tested). An empty or all-zero signal gives
  nan;
- the P.835 network runs once per clip, not once per window, where that gives the same numbers and costs less
  (:mod:`speechlm.eval.dnsmos_shared`; needs the ``onnx`` package, else the per-window loop): a 4-s clip of whole
  10-ms frames costs about half a window, a 20-s one scored every second (the reference's hop) about two and a
  half windows instead of eleven (``benchmarks/dnsmos_fast.py``).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from speechlm.errors import MissingDependencyError

DNSMOS_SR = 16000


@dataclass(frozen=True)
class DNSMOSScores:
    """DNSMOS P.835 signal / background / overall quality and the P.808 MOS, each on a 1-5 scale."""

    ovrl: float
    sig: float
    bak: float
    p808: float


def _nan_scores() -> DNSMOSScores:
    nan = float("nan")
    return DNSMOSScores(nan, nan, nan, nan)


@functools.lru_cache(maxsize=1)
def _dnsmos():
    try:
        import onnxruntime as ort
        from speechmos import dnsmos as sm
    except ImportError as exc:
        raise MissingDependencyError(
            "DNSMOS needs speechmos and onnxruntime (pip install --no-deps speechmos; pip install "
            "'speechlm[eval]')"
        ) from exc
    models = Path(sm.__file__).resolve().parent / "dnsmos_models"
    primary, p808 = models / "sig_bak_ovr.onnx", models / "model_v8.onnx"
    for f in (primary, p808):
        if not f.is_file():
            raise MissingDependencyError(f"speechmos is missing its model file {f}")
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    scorer = sm.DNSMOS.__new__(sm.DNSMOS)  # its __init__ makes sessions with default (all-core) threading
    scorer.primary_model_path = str(primary)
    scorer.onnx_sess = ort.InferenceSession(str(primary), opts, providers=["CPUExecutionProvider"])
    scorer.p808_onnx_sess = ort.InferenceSession(str(p808), opts, providers=["CPUExecutionProvider"])
    return scorer


def dnsmos(wav: np.ndarray, sr: int, exact: bool = False, hop_s: float = 1.0, p808: bool = True,
           bf16: bool = False) -> DNSMOSScores:
    """DNSMOS scores of a mono waveform ``[T]`` at ``sr`` (see the module docstring for input handling). A clip
    longer than a window is scored on the windows starting every second (the reference's hop) or, with ``hop_s``
    > 1, the fewest whole-second starts at most ``hop_s`` apart that reach from its start to its end, evenly
    spread. ``p808=False`` skips the P.808 MOS (nan; 13 ms a window). ``bf16=True``: the network's costly half in
    bfloat16 where this CPU computes it natively (1.8x faster; OVRL within a few thousandths; else as without;
    :mod:`speechlm.eval.dnsmos_shared`)."""
    from speechlm.audio.io import resample

    x = np.asarray(wav, dtype=np.float32).ravel()
    if x.size == 0 or not np.any(x) or not np.all(np.isfinite(x)):
        return _nan_scores()
    if sr != DNSMOS_SR:
        x = resample(x, sr, DNSMOS_SR)
    peak = float(np.abs(x).max())
    if peak > 1.0:
        x = x / peak
    x = np.clip(x, -1.0, 1.0).astype(np.float32)  # rounding after the division must not trip speechmos's check
    scorer = _dnsmos()
    if exact:
        out = scorer(x, DNSMOS_SR, False)
        return DNSMOSScores(
            float(out["ovrl_mos"]), float(out["sig_mos"]), float(out["bak_mos"]), float(out["p808_mos"])
        )
    starts = _window_starts(x.size, hop_s)
    shared = (bf16 and _shared(True)) or _shared(False)
    raws = shared.raw(x, starts) if shared is not None and shared.pays(x.size, len(starts)) else None
    windows = None
    if raws is None or p808:  # the windows themselves: for the per-window loop, and P.808
        audio = _tiled(x)
        windows = [audio[s * DNSMOS_SR: s * DNSMOS_SR + _window_samples()] for s in starts]
    if raws is None:
        raws = [scorer.onnx_sess.run(None, {"input_1": w[None, :]})[0][0] for w in windows]
    rows = [(*_polyfit(scorer, raw), _p808(scorer, windows[i]) if p808 else np.nan) for i, raw in enumerate(raws)]
    ovr, sig, bak, mos808 = np.mean(np.asarray(rows, dtype=np.float64), axis=0)
    return DNSMOSScores(float(ovr), float(sig), float(bak), float(mos808))


def _window_samples() -> int:
    from speechmos.dnsmos import INPUT_LENGTH

    return int(INPUT_LENGTH * DNSMOS_SR)


def _shared(bf16: bool):
    from speechlm.eval.dnsmos_shared import load

    return load(_dnsmos().primary_model_path, bf16)


def _window_starts(n: int, hop_s: float = 1.0) -> list[int]:
    """Start seconds of the windows scored on a clip of ``n`` samples: the reference's, every second while a
    whole window fits (one at 0 for a clip under 10 s), thinned to at most ``hop_s`` apart (evenly spread,
    first and last kept)."""
    from speechmos.dnsmos import INPUT_LENGTH

    n_hops = max(1, int(np.floor(n / DNSMOS_SR) - INPUT_LENGTH) + 1)
    if hop_s <= 1.0 or n_hops == 1:
        return list(range(n_hops))
    span = n_hops - 1
    return sorted({int(round(s)) for s in np.linspace(0.0, span, int(np.ceil(span / hop_s)) + 1)})


def _tiled(audio: np.ndarray) -> np.ndarray:
    """``audio`` repeated (doubled, as the reference does) until it fills at least one window."""
    while len(audio) < _window_samples():
        audio = np.append(audio, audio)
    return audio


def _polyfit(scorer, raw) -> tuple[float, float, float]:
    """(OVRL, SIG, BAK) of the network's raw ``(sig, bak, ovr)``."""
    sig, bak, ovr = scorer.get_polyfit_val(raw[0], raw[1], raw[2], False)
    return ovr, sig, bak


def _p808(scorer, window: np.ndarray) -> float:
    """The P.808 MOS of one full window ``[_window_samples()]``."""
    mel = np.asarray(scorer.audio_melspec(audio=window[:-160]), dtype=np.float32)[None]
    return scorer.p808_onnx_sess.run(None, {"input_1": mel})[0][0][0]
