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
- ``tile=False`` (an option of the data pipeline's gate, ``dnsmos_tile: false``): a clip of 2-9 s is scored by
  SIG/BAK/OVRL on its own length instead of tiled to 9.01 s. The P.835 network is convolutional up to a global max
  pool over time, so it accepts any length once the two fixed shapes of its framing (a reshape to 900 frames, a crop
  at 144000 samples) are made free; the graph is rewritten that way in memory with the ``onnx`` package (without it,
  clips are tiled). It costs the clip's length instead of 9 s, and it does not score the joins of the tiles. On 89
  development clips of 3-9 s (``benchmarks/dnsmos_own_length.py``) OVRL moved by 0.07 on average (mean -0.04, at most
  0.68), 2 decisions at 2.5 changed, 1.47x faster. P.808 is still scored on the tiled window (0.02 s).
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


OWN_LENGTH_MIN_S = 2.0  # shorter clips are tiled even with ``tile=False``


@functools.lru_cache(maxsize=1)
def _own_length_session():
    """The P.835 network with its framing made length-free (batch 1), or None without the ``onnx`` package."""
    try:
        import onnx
        import onnxruntime as ort
        from onnx import numpy_helper
    except ImportError:
        return None
    model = onnx.load(_dnsmos().primary_model_path)
    free = {"shape_tensor": [1, -1, 160], "shape_tensor1": [1, -1, 160],  # [frames, 160] halves of 320-sample frames
            "input_1:01_cropping_end": [np.iinfo(np.int64).max, -160]}  # the first half: all but the last 160
    found = 0
    for init in model.graph.initializer:
        if init.name in free:
            init.CopyFrom(numpy_helper.from_array(np.asarray(free[init.name], np.int64), init.name))
            found += 1
    if found != len(free):
        return None  # another version of the model: tile instead
    model.graph.input[0].type.tensor_type.shape.dim[1].dim_param = "samples"
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    return ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])


def dnsmos(wav: np.ndarray, sr: int, exact: bool = False, hop_s: float = 1.0, tile: bool = True) -> DNSMOSScores:
    """DNSMOS scores of a mono waveform ``[T]`` at ``sr`` (see the module docstring for input handling). A clip
    longer than a window is scored every ``hop_s`` seconds (1 s: the reference's hop); with a longer hop, the
    fewest windows at most ``hop_s`` apart that reach from its start to its end, evenly spread (each window
    costs the same: about 0.25 s on one thread). ``tile=False``: a 2-9 s clip is scored on its own length."""
    from speechlm.audio.io import resample

    x = np.asarray(wav, dtype=np.float32).ravel()
    if x.size == 0 or not np.any(x) or not np.all(np.isfinite(x)):
        return _nan_scores()
    if sr != DNSMOS_SR:
        x = resample(x, sr, DNSMOS_SR)
    peak = float(np.abs(x).max())
    if peak > 1.0:
        x = x / peak
    x = np.clip(x, -1.0, 1.0)  # rounding after the division must not trip speechmos's range check
    scorer = _dnsmos()
    if exact:
        out = scorer(x.astype(np.float32), DNSMOS_SR, False)
        return DNSMOSScores(
            float(out["ovrl_mos"]), float(out["sig_mos"]), float(out["bak_mos"]), float(out["p808_mos"])
        )
    if not tile and OWN_LENGTH_MIN_S * DNSMOS_SR <= x.size < _window_samples():
        own = _own_length_session()
        if own is not None:
            return _own_length(scorer, own, x.astype(np.float32))
    return _windows(scorer, x.astype(np.float32), hop_s)


def _window_samples() -> int:
    from speechmos.dnsmos import INPUT_LENGTH

    return int(INPUT_LENGTH * DNSMOS_SR)


def _tiled(audio: np.ndarray) -> np.ndarray:
    """``audio`` repeated (doubled, as the reference does) until it fills at least one window."""
    while len(audio) < _window_samples():
        audio = np.append(audio, audio)
    return audio


def _p808(scorer, window: np.ndarray) -> float:
    """The P.808 MOS of one full window ``[_window_samples()]``."""
    mel = np.asarray(scorer.audio_melspec(audio=window[:-160]), dtype=np.float32)[None]
    return scorer.p808_onnx_sess.run(None, {"input_1": mel})[0][0][0]


def _own_length(scorer, session, audio: np.ndarray) -> DNSMOSScores:
    """SIG/BAK/OVRL of ``audio [T]`` (shorter than a window) on its own length; P.808 on the tiled window."""
    p808 = _p808(scorer, _tiled(audio)[: _window_samples()])
    x = audio[: audio.size // 160 * 160]  # whole 160-sample halves of the network's 320-sample frames
    sig, bak, ovr = session.run(None, {"input_1": x[None, :]})[0][0]
    sig, bak, ovr = scorer.get_polyfit_val(sig, bak, ovr, False)
    return DNSMOSScores(float(ovr), float(sig), float(bak), float(p808))


def _windows(scorer, audio: np.ndarray, hop_s: float = 1.0) -> DNSMOSScores:
    """speechmos's ``DNSMOS.__call__`` loop, limited to the hops that start in the original clip (``hop_s`` > 1:
    fewer windows, spread evenly; see :func:`dnsmos`)."""
    from speechmos.dnsmos import INPUT_LENGTH

    fs = DNSMOS_SR
    n_hops = max(1, int(np.floor(len(audio) / fs) - INPUT_LENGTH) + 1)
    starts = [float(i) for i in range(n_hops)]
    if hop_s > 1.0 and n_hops > 1:
        span = starts[-1]
        starts = np.linspace(0.0, span, int(np.ceil(span / hop_s)) + 1).tolist()
    len_samples = _window_samples()
    audio = _tiled(audio)
    scores = []
    for start in starts:
        seg = audio[int(start * fs) : int(start * fs) + len_samples]
        if len(seg) < len_samples:
            continue
        p808 = _p808(scorer, seg)
        sig, bak, ovr = scorer.onnx_sess.run(None, {"input_1": seg[None, :]})[0][0]
        sig, bak, ovr = scorer.get_polyfit_val(sig, bak, ovr, False)
        scores.append((ovr, sig, bak, p808))
    ovr, sig, bak, p808 = np.mean(np.asarray(scores, dtype=np.float64), axis=0)
    return DNSMOSScores(float(ovr), float(sig), float(bak), float(p808))
