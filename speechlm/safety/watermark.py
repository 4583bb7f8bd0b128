"""An imperceptible, blind audio watermark carrying a 16-bit payload (signal processing, no learned model).

Method (a time-frequency "patchwork" with informed embedding):

- The audio is cut into 32 ms blocks (2 STFT hops of 16 ms) and 16 log-spaced bands between 1000 and 3700 Hz (all
  below the 4 kHz Nyquist of 8 kHz telephone audio). Each (block, band) cell is a *chip*. Bands start at 1 kHz:
  below it a band holds one or two harmonics of a voice, whose level swings with F0 (noise for the statistic),
  and PESQ weighs changes there most (scheme 2, 2026-12-04; scheme 1 used 300-3500 Hz and a 1.5 dB margin).
- A fixed pseudo-random pattern of ``PERIOD`` = 24 blocks x 16 bands = 384 chips repeats every 0.768 s, so any
  ~1 s of audio holds a whole copy. 128 chips form the sync group, the other 256 sixteen payload-bit groups; each
  chip carries a sign +-1 and each group is balanced (as many + as - chips).
- Detection statistic per group: the sum over its chips of sign x ``r``, where ``r`` is the block's band energy in
  dB with the block's mean over bands and a 5-block moving average per band removed (so loudness, gain, spectral
  tilt and most of the speech envelope drop out). Embedding multiplies the STFT magnitudes of each chip by a gain
  (``BASE_DB`` to ``MAX_GAIN_DB``) chosen *knowing the host*: each group of each copy of the pattern is pushed until
  its statistic reaches ``MARGIN_DB`` per chip in the direction of its bit (sync: +1), then once more after
  measuring the marked audio (``CLOSED_LOOP``). The mark is the speech itself, slightly re-weighted in frequency,
  so it sits under the speech's own spectrum; blocks more than ``SILENCE_DB`` (80 dB) under the loudest are left
  alone. Quiet chips count as much as loud ones (the statistic is in dB), so marking the background of pauses
  (50-80 dB under the loudest block) lets a 1-s crop that is mostly pause carry the mark (the 50-dB floor before
  2026-12-05 found 91.5 % of 1-s crops of held-out clips, 80 dB every one: docs/safety.md).
- Detection resamples to 16 kHz and searches 7 speed factors 0.95-1.05 (a speed change by resampling shifts time
  and frequency together), 2 block phases and 24 cyclic shifts, over the whole file and over 1 s and 2 s windows.
  Per hypothesis the group sums become z-scores (divided by the spread of ``r``, clipped at ``CLIP_SD`` robust
  deviations); the score sums the sync z and the bits' ``|z| - E|z|``, weighted by their chips, scaled to about
  N(0, 1) without a mark. The p-value is the best score's Gaussian tail times the number of hypotheses
  (Bonferroni, twice for the two searches); detected when it is at most :data:`P_THRESHOLD`, which
  ``benchmarks/watermark_bench.py`` checks against unmarked calibration speech it does not report on (the
  Bonferroni p-values are not conservative on speech: the threshold is the calibrated one). The payload is the
  sign of each bit group (whole file, or summed over the windows that detect); windows that detect are merged,
  and each merged span is trimmed to where the blocks carry the mark (:func:`_trim`: a window can detect while it
  reaches ~0.5 s past the mark's edge).

Payload layout (16 bits, most significant first): 4 bits model family (:data:`FAMILIES`), 12 bits a user id
(``$SPEECHLM_WATERMARK_ID``, 0-4095, default 0). See :func:`make_payload` / :func:`split_payload`.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field

import numpy as np

from speechlm.errors import SpeechLMError

# ---- the scheme (changing any of these changes the mark: old files stop being detected) -----------------------
DETECT_SR = 16000
HOP_S = 0.016  # STFT hop; frames are 2 hops long (sqrt-Hann, 50 % overlap: perfect reconstruction)
BLOCK_FRAMES = 2  # 32 ms blocks
PERIOD = 24  # blocks in one copy of the pattern (0.768 s)
BAND_EDGES_HZ = tuple(float(x) for x in np.geomspace(1000.0, 3700.0, 17))
N_BANDS = len(BAND_EDGES_HZ) - 1
N_SYNC = 1  # sync groups (known sign)
SYNC_CHIPS = 128  # of the PERIOD * N_BANDS = 384 chips; the rest is shared equally by the bits
N_BITS = 16
N_GROUPS = N_SYNC + N_BITS
SEED = 0x5EEC  # the pattern's seed
HP_BLOCKS = 5  # moving-average length of the time high-pass
SILENCE_DB = 80.0  # chips this far under the loudest block are neither marked nor counted
CLIP_SD = 2.5  # the detector clips r at this many robust deviations
MIN_SD_DB = 1.0  # floor of the spread of r (digital silence, pure tones)

# ---- strength and search --------------------------------------------------------------------------------------
MARGIN_DB = 2.5  # target per-chip statistic of each group in each copy
BASE_DB = 0.25  # every chip gets at least this much (robustness where the host already agrees)
MAX_GAIN_DB = 5.0
EMBED_ITERS = 4
CLOSED_LOOP = 1  # re-analyses of the marked audio
SPEEDS = tuple(float(s) for s in np.linspace(0.95, 1.05, 7))
WINDOW_BLOCKS = 30  # 0.96 s
WINDOW_HOP = 6
MIN_MARK_S = 2.0  # a marked span shorter than this (an edited word) is widened to it (scheme 2 found 2-s spans
# inside unmarked speech in 284 of 284 trials: docs/safety.md; scheme 1 needed 3 s)
P_THRESHOLD = 2.5e-4  # file-level decision; checked against calibration speech in benchmarks/watermark_bench.py

FAMILIES: dict[str, int] = {"unknown": 0, "tts_duration": 1, "lm": 2, "edit": 3, "semantic": 4, "vc": 5,
                            "serve": 6, "manual": 15}
ID_ENV = "SPEECHLM_WATERMARK_ID"

_E_ABS = math.sqrt(2.0 / math.pi)  # E|z| for z ~ N(0, 1)


class WatermarkError(SpeechLMError):
    """Bad input to the watermark (payload out of range, audio too short, ...)."""


@dataclass(frozen=True)
class Detection:
    """What :func:`detect` found.

    ``score``: the best window's statistic (about N(0, 1) on unmarked audio); ``p_value``: the chance of a score at
    least this high in unmarked audio of this length (Bonferroni over the search); ``payload``: the 16-bit payload
    or None when not detected; ``bit_confidence``: per bit, P(bit right) from its accumulated z (16 floats, most
    significant first; empty when not detected); ``regions``: marked spans ``(start_s, end_s)`` in the input's
    time; ``speed``: the speed factor of the best hypothesis (1.0: none).
    """

    detected: bool
    score: float
    p_value: float
    payload: int | None
    bit_confidence: tuple[float, ...] = ()
    regions: tuple[tuple[float, float], ...] = ()
    speed: float = 1.0
    windows: int = 0
    extra: dict = field(default_factory=dict)

    def to_json(self) -> dict:
        fam, uid = split_payload(self.payload) if self.payload is not None else (None, None)
        return {"detected": self.detected, "score": round(self.score, 4), "payload": self.payload,
                "p_value": self.p_value, "family": fam, "user_id": uid,
                "bit_confidence": [round(c, 4) for c in self.bit_confidence],
                "regions": [[round(a, 3), round(b, 3)] for a, b in self.regions], "speed": round(self.speed, 4)}


# ---- payload ---------------------------------------------------------------------------------------------------
def user_id() -> int:
    """The user id from ``$SPEECHLM_WATERMARK_ID`` (0-4095; 0 when unset)."""
    raw = os.environ.get(ID_ENV, "").strip()
    if not raw:
        return 0
    try:
        v = int(raw, 0)
    except ValueError:
        raise WatermarkError(f"${ID_ENV} must be an integer 0-4095, got {raw!r}") from None
    if not 0 <= v < 4096:
        raise WatermarkError(f"${ID_ENV} must be 0-4095, got {v}")
    return v


def make_payload(family: str | int, uid: int | None = None) -> int:
    """16-bit payload: ``family`` (name in :data:`FAMILIES` or 0-15) in the top 4 bits, ``uid`` (0-4095, default
    :func:`user_id`) in the low 12."""
    fam = FAMILIES.get(family, FAMILIES["unknown"]) if isinstance(family, str) else int(family)
    uid = user_id() if uid is None else int(uid)
    if not 0 <= fam < 16 or not 0 <= uid < 4096:
        raise WatermarkError(f"family must be 0-15 and user id 0-4095, got {fam}, {uid}")
    return (fam << 12) | uid


def split_payload(payload: int) -> tuple[int, int]:
    """(family 0-15, user id 0-4095) of a 16-bit payload."""
    return (payload >> 12) & 0xF, payload & 0xFFF


def check_payload(payload: int) -> int:
    if not isinstance(payload, int | np.integer) or not 0 <= int(payload) < 1 << N_BITS:
        raise WatermarkError(f"the payload must be an integer 0-65535, got {payload!r}")
    return int(payload)


# ---- the pattern -----------------------------------------------------------------------------------------------
def _pattern() -> tuple[np.ndarray, np.ndarray]:
    """(group ``[PERIOD, N_BANDS]`` int, sign ``[PERIOD, N_BANDS]`` +-1): ``SYNC_CHIPS`` chips for the sync group,
    the rest shared equally by the bit groups, half of each group + and half -, spread over blocks and bands by a
    seeded permutation."""
    rng = np.random.default_rng(SEED)
    n = PERIOD * N_BANDS
    per = (n - SYNC_CHIPS) // N_BITS
    groups = np.concatenate([np.zeros(n - per * N_BITS, int), np.repeat(np.arange(N_SYNC, N_GROUPS), per)])
    groups = groups[rng.permutation(n)]
    signs = np.empty(n)
    for g in range(N_GROUPS):
        idx = np.flatnonzero(groups == g)
        s = np.tile([1.0, -1.0], (len(idx) + 1) // 2)[: len(idx)]
        signs[idx] = s[rng.permutation(len(idx))]
    return groups.reshape(PERIOD, N_BANDS), signs.reshape(PERIOD, N_BANDS)


_GROUPS, _SIGNS = _pattern()
# M[j*B + b, g] = sign of chip (j, b) if it is in group g: group sums are one matrix product.
_M = np.zeros((PERIOD * N_BANDS, N_GROUPS))
_M[np.arange(PERIOD * N_BANDS), _GROUPS.ravel()] = _SIGNS.ravel()
# For a block in slot s of the period and a cyclic shift k, the pattern row is (s - k) mod PERIOD:
# _M_SHIFTED[s] [B, PERIOD * G] maps the block's band values to the group sums of every shift.
_M3 = _M.reshape(PERIOD, N_BANDS, N_GROUPS)
_M_SHIFTED = np.stack([np.stack([_M3[(s - k) % PERIOD] for k in range(PERIOD)], 1).reshape(N_BANDS, -1)
                       for s in range(PERIOD)])
_N_SHIFTED = np.abs(_M_SHIFTED)


def _bit_signs(payload: int) -> np.ndarray:
    """``[N_GROUPS]`` +-1: sync groups +1, then the payload bits (1 -> +1), most significant first."""
    bits = [(payload >> (N_BITS - 1 - k)) & 1 for k in range(N_BITS)]
    return np.concatenate([np.ones(N_SYNC), np.where(np.array(bits) == 1, 1.0, -1.0)])


# ---- analysis --------------------------------------------------------------------------------------------------
def _stft(x: np.ndarray, hop: int) -> np.ndarray:
    """``[T]`` -> complex ``[F, hop + 1]``; frame f covers samples ``[(f - 1) hop, (f + 1) hop)`` (zero padded),
    i.e. it is centred on sample ``f * hop``."""
    n = 2 * hop
    nf = len(x) // hop + 1
    xp = np.zeros((nf + 1) * hop, x.dtype if x.dtype == np.float32 else np.float64)
    xp[hop : hop + len(x)] = x
    h = xp.reshape(nf + 1, hop)
    return np.fft.rfft(np.concatenate([h[:-1], h[1:]], axis=1) * _window(n).astype(xp.dtype), axis=1)


def _power(spec: np.ndarray) -> np.ndarray:
    return spec.real**2 + spec.imag**2


def _istft(spec: np.ndarray, hop: int, length: int) -> np.ndarray:
    n = 2 * hop
    frames = np.fft.irfft(spec, n=n, axis=1)
    frames *= _window(n).astype(frames.dtype)
    nf = frames.shape[0]
    out = np.zeros((nf + 1) * hop, frames.dtype)
    out[: nf * hop] += frames[:, :hop].reshape(-1)
    out[hop : (nf + 1) * hop] += frames[:, hop:].reshape(-1)
    return out[hop : hop + length]


_WINDOWS: dict[int, np.ndarray] = {}


def _window(n: int) -> np.ndarray:
    if n not in _WINDOWS:
        _WINDOWS[n] = np.sqrt(0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n) / n))  # periodic: w^2 overlaps to 1
    return _WINDOWS[n]


def _band_matrix(hop: int, sr: float) -> np.ndarray:
    """``[hop + 1, N_BANDS]`` 0/1: which rfft bin is in which band."""
    freqs = np.arange(hop + 1) * sr / (2 * hop)
    m = np.zeros((hop + 1, N_BANDS))
    for b in range(N_BANDS):
        m[(freqs >= BAND_EDGES_HZ[b]) & (freqs < BAND_EDGES_HZ[b + 1]), b] = 1.0
    return m


def _bin_amplitudes(gain_db: np.ndarray, bm: np.ndarray) -> np.ndarray:
    """``[F, B]`` band gains in dB, band matrix ``[bins, B]`` -> ``[F, bins]`` amplitude factors (1 outside every
    band). Each bin is in at most one band, so this is ``10 ** ((gain_db @ bm.T) / 20)`` with the power taken per
    band rather than per bin (16 instead of 257 exponentials a frame)."""
    in_band = bm.any(1)
    amp = np.ones((gain_db.shape[0], bm.shape[0]), np.float32)
    amp[:, in_band] = (10.0 ** (gain_db / 20.0))[:, bm[in_band].argmax(1)]
    return amp


def _blocks_db(frame_energy: np.ndarray, phase: int = 0) -> np.ndarray:
    """``[F, B]`` band energies per frame -> ``[T, B]`` dB per block of ``BLOCK_FRAMES`` frames from ``phase``."""
    e = frame_energy[phase:]
    t = e.shape[0] // BLOCK_FRAMES
    e = e[: t * BLOCK_FRAMES].reshape(t, BLOCK_FRAMES, -1).sum(1)
    return 10.0 * np.log10(e + 1e-12)


def _residual(y: np.ndarray) -> np.ndarray:
    """``[T, B]`` dB -> the statistic's input ``r``: minus the block's mean over bands, minus a ``HP_BLOCKS``-block
    moving average per band (edges: the average of what exists)."""
    y1 = y - y.mean(1, keepdims=True)
    t = y1.shape[0]
    h = HP_BLOCKS // 2
    c = np.concatenate([np.zeros((1, y1.shape[1])), np.cumsum(y1, 0)])
    lo = np.clip(np.arange(t) - h, 0, t)
    hi = np.clip(np.arange(t) + h + 1, 0, t)
    return y1 - (c[hi] - c[lo]) / (hi - lo)[:, None]


def _floor(y: np.ndarray) -> np.ndarray:
    """Block levels floored at ``SILENCE_DB`` under the loudest, so that digital silence next to speech does not
    dominate the high-pass."""
    return np.maximum(y, float(y.max()) - SILENCE_DB) if y.size else y


def _weights(y: np.ndarray, ref_db: float | None = None) -> np.ndarray:
    """``[T, B]`` 1 where the chip is loud enough to carry the mark (within ``SILENCE_DB`` of the loudest)."""
    if y.size == 0:
        return np.zeros_like(y)
    ref = float(y.max()) if ref_db is None else ref_db
    return (y > ref - SILENCE_DB).astype(np.float64)


# ---- embedding -------------------------------------------------------------------------------------------------
def _chip_gains(y: np.ndarray, payload: int, base: float = BASE_DB) -> np.ndarray:
    """``[T, B]`` dB block energies -> ``[T, B]`` gains in dB: every group of every copy of the pattern pushed to
    ``MARGIN_DB`` per chip in the direction of its bit (at least ``BASE_DB`` per chip, at most ``MAX_GAIN_DB``)."""
    t = y.shape[0]
    w = _weights(y)
    pos = np.arange(t) % PERIOD
    grp = _GROUPS[pos]  # [T, B]
    sgn = _SIGNS[pos] * _bit_signs(payload)[grp]  # the direction each chip must move the statistic
    inst = (np.arange(t) // PERIOD)[:, None] * N_GROUPS + grp  # one key per (copy, group)
    n_keys = (t // PERIOD + 1) * N_GROUPS
    n = np.bincount(inst.ravel(), weights=w.ravel(), minlength=n_keys)
    gain = base * sgn * w
    for _ in range(EMBED_ITERS):
        r = _residual(_floor(y + gain))
        c = np.bincount(inst.ravel(), weights=(sgn * r * w).ravel(), minlength=n_keys)
        deficit = np.maximum(0.0, MARGIN_DB * n - c) / np.maximum(n, 1.0)
        # The high-pass removes part of a gain (about 1/HP_BLOCKS of it, plus the neighbours' share): overshoot a bit.
        gain = np.clip(gain + 1.25 * sgn * w * deficit[inst], -MAX_GAIN_DB, MAX_GAIN_DB)
    return gain


def _level_neutral(gain: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Gains ``[T, B]`` dB minus, per block, the dB change they make to the block's energy in the marked bands
    (``y [T, B]`` its band levels in dB): the mark re-weights bands without making a block louder or quieter. The
    detector removes each block's mean over bands, so a per-block constant is invisible to it."""
    e = 10.0 ** ((y - y.max(1, keepdims=True)) / 10.0)
    shift = 10.0 * np.log10((e * 10.0 ** (gain / 10.0)).sum(1) / np.maximum(e.sum(1), 1e-30))
    return gain - shift[:, None]


def embed(audio: np.ndarray, sr: int, payload: int, regions: list[tuple[float, float]] | None = None
          ) -> np.ndarray:
    """Mark ``audio`` with the 16-bit ``payload``.

    Args:
        audio: float ``[T]`` mono (any rate >= 8 kHz).
        sr: its rate in Hz.
        payload: 0-65535 (see :func:`make_payload`).
        regions: if given, only these spans ``(start_s, end_s)`` are marked (10 ms ramps at their edges); the
            rest is returned unchanged. The pattern stays aligned to the start of the file.

    Returns:
        float32 ``[T]``, the marked audio (clipped to [-1, 1] only where the input was within it).
    """
    payload = check_payload(payload)
    x = np.asarray(audio, dtype=np.float32)
    if x.ndim != 1:
        raise WatermarkError(f"embed takes mono audio [T], got shape {tuple(x.shape)}")
    if sr < 8000:
        raise WatermarkError(f"sample rate {sr} Hz is below 8 kHz")
    if len(x) == 0 or not np.isfinite(x).all():
        raise WatermarkError("empty audio or audio with NaN/Inf samples")
    hop = max(1, round(sr * HOP_S))
    spec = _stft(x, hop)
    bm = _band_matrix(hop, sr)
    e = _power(spec) @ bm  # [F, B]
    y = _blocks_db(e)
    if y.shape[0] == 0:
        return x.astype(np.float32)
    g = _level_neutral(_chip_gains(y, payload), y)  # [T, B] dB
    for k in range(CLOSED_LOOP + 1):
        frame_gain = np.zeros((spec.shape[0], N_BANDS))
        frame_gain[: g.shape[0] * BLOCK_FRAMES] = np.repeat(g, BLOCK_FRAMES, axis=0)
        amp = _bin_amplitudes(frame_gain, bm)  # [F, bins]; bins outside every band: 1
        out = _istft(spec * amp, hop, len(x))
        if k == CLOSED_LOOP:
            break
        # Overlapping frames smear a block's gain into its neighbours: measure what the detector will see and
        # push the groups that fell short again.
        y_out = _blocks_db(_power(_stft(out, hop)) @ bm)[: y.shape[0]]
        g = _level_neutral(g + _chip_gains(y_out, payload, base=0.0), y)
    if regions is not None:
        out = x + _region_mask(len(x), sr, regions) * (out - x)
    peak = float(np.max(np.abs(x))) if len(x) else 0.0
    if peak <= 1.0:
        out = np.clip(out, -1.0, 1.0)
    return out.astype(np.float32)


def widen(spans: list[tuple[float, float]], min_s: float, total_s: float) -> list[tuple[float, float]]:
    """Each span ``(start_s, end_s)`` widened around its centre to at least ``min_s`` (within ``[0, total_s]``)."""
    out = []
    for a, b in spans:
        if b - a < min_s:
            c = 0.5 * (a + b)
            a, b = c - 0.5 * min_s, c + 0.5 * min_s
            if a < 0:
                a, b = 0.0, min(total_s, min_s)
            if b > total_s:
                a, b = max(0.0, total_s - min_s), total_s
        out.append((max(0.0, a), min(total_s, b)))
    return out


def _region_mask(n: int, sr: int, regions: list[tuple[float, float]], ramp_s: float = 0.01) -> np.ndarray:
    m = np.zeros(n)
    t = np.arange(n) / sr
    for a, b in regions:
        if b <= a:
            continue
        m = np.maximum(m, np.clip(np.minimum(t - a, b - t) / ramp_s + 0.5, 0.0, 1.0))
    return m


# ---- detection -------------------------------------------------------------------------------------------------
def _norm_sf(z: float) -> float:
    return 0.5 * math.erfc(z / math.sqrt(2.0))


def _per_shift(x: np.ndarray, m: np.ndarray) -> np.ndarray:
    """``x [K, P, B]`` (K pattern copies of P blocks), ``m [P, B, Q]`` -> ``[K, P, Q]``: for every block row p,
    ``x[:, p] @ m[p]`` (a batched BLAS product; ``einsum("kpb,pbq->kpq")`` without BLAS was 4x slower)."""
    return np.matmul(x.transpose(1, 0, 2), m).transpose(1, 0, 2)


def _clipped(r: np.ndarray, w: np.ndarray) -> np.ndarray:
    """``r [T, B]`` clipped at ``CLIP_SD`` robust deviations (median absolute, over the counted chips ``w > 0``):
    syllable onsets and offsets make heavy tails in ``r``."""
    on = r[w > 0]
    if not on.size:
        return r
    mad = max(1.4826 * float(np.median(np.abs(on - np.median(on)))), MIN_SD_DB)
    return np.clip(r, -CLIP_SD * mad, CLIP_SD * mad)


def _trim(evidence: np.ndarray, counted: np.ndarray, lo: int, hi: int, mu: float) -> tuple[int, int]:
    """The marked part of blocks ``[lo, hi)``: the contiguous span maximising the sum of ``evidence - mu / 2 *
    counted`` (a change-point estimate: inside the mark each block's evidence has mean ``mu`` per counted chip,
    outside zero), widened over the blocks at its ends that count no chip (no evidence either way)."""
    v = evidence[lo:hi] - 0.5 * mu * counted[lo:hi]
    best, cur, a, b, start = -np.inf, 0.0, 0, 0, 0
    for i, x in enumerate(v):
        if cur <= 0.0:
            cur, start = 0.0, i
        cur += x
        if cur > best:
            best, a, b = cur, start, i + 1
    while a > 0 and counted[lo + a - 1] == 0:
        a -= 1
    while b < len(v) and counted[lo + b] == 0:
        b += 1
    return lo + a, lo + b


def _window_stats(r: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """Score every ~1 s window, and the whole analysis, at every cyclic shift of one (speed, phase) analysis.

    Args:
        r, w: ``[T, B]`` residual (clipped: :func:`_clipped`) and weights.

    Returns:
        (score ``[W + 1, PERIOD]``, z ``[W + 1, PERIOD, N_GROUPS]`` group z-scores, first block ``[W]`` and end
        block ``[W]`` of each window); windows of ``WINDOW_BLOCKS`` and twice that (a 1-2 s marked region), row
        ``W`` is the whole analysis.
    """
    t = r.shape[0]
    los, his = [], []
    for length in (WINDOW_BLOCKS, 2 * WINDOW_BLOCKS):
        wl = min(length, t)
        starts = np.arange(0, max(t - wl, 0) + 1, WINDOW_HOP)
        if starts[-1] != t - wl:
            starts = np.append(starts, t - wl)
        los.append(starts)
        his.append(starts + wl)
        if wl == t:
            break
    lo, hi = np.concatenate([*los, [0]]), np.concatenate([*his, [t]])
    # Per block and shift, the signed group sums: block t meets pattern row (t - shift) mod PERIOD.
    rw = r * w
    k = -(-t // PERIOD)
    pad = np.zeros((k * PERIOD - t, N_BANDS))
    c = _per_shift(np.concatenate([rw, pad]).reshape(k, PERIOD, N_BANDS), _M_SHIFTED)
    n = _per_shift(np.concatenate([w, pad]).reshape(k, PERIOD, N_BANDS), _N_SHIFTED)
    zero = np.zeros((1, PERIOD * N_GROUPS))
    c = np.concatenate([zero, np.cumsum(c.reshape(-1, PERIOD * N_GROUPS)[:t], 0)])
    n = np.concatenate([zero, np.cumsum(n.reshape(-1, PERIOD * N_GROUPS)[:t], 0)])
    c = (c[hi] - c[lo]).reshape(-1, PERIOD, N_GROUPS)  # [W + 1, shift, G]
    cn = (n[hi] - n[lo]).reshape(-1, PERIOD, N_GROUPS)
    r2 = np.concatenate([[0.0], np.cumsum((r * rw).sum(1))])
    s1 = np.concatenate([[0.0], np.cumsum(rw.sum(1))])
    nw = np.concatenate([[0.0], np.cumsum(w.sum(1))])
    m = np.maximum(nw[hi] - nw[lo], 1.0)
    var = (r2[hi] - r2[lo]) / m - ((s1[hi] - s1[lo]) / m) ** 2
    sd = np.maximum(np.sqrt(np.maximum(var, 0.0)), MIN_SD_DB)
    z = np.where(cn >= 1.0, c / (sd[:, None, None] * np.sqrt(np.maximum(cn, 1.0))), 0.0)
    # Weighted by sqrt(chips) so that every chip counts alike (a sum over chips, bit groups by their sign);
    # minus the null mean of the |.| part, over its null spread: about N(0, 1) without a mark.
    sq = np.sqrt(cn)
    score = ((z[..., :N_SYNC] * sq[..., :N_SYNC]).sum(-1)
             + ((np.abs(z[..., N_SYNC:]) - _E_ABS) * sq[..., N_SYNC:]).sum(-1))
    score = score / np.sqrt(cn[..., :N_SYNC].sum(-1) + (1.0 - 2.0 / math.pi) * cn[..., N_SYNC:].sum(-1) + 1e-9)
    return score, z, lo[:-1], hi[:-1]


def detect(audio: np.ndarray, sr: int, p_threshold: float = P_THRESHOLD,
           speeds: tuple[float, ...] = SPEEDS) -> Detection:
    """Look for the mark in ``audio``.

    Two searches share the analysis: the whole file at once (strongest for a marked file) and ~1 s windows
    (a partly marked file, and where the mark is). The p-value is the smaller of the two, each Bonferroni-corrected
    for its hypotheses, times 2.

    Args:
        audio: float ``[T]`` mono, any rate >= 8 kHz (resampled to 16 kHz here).
        sr: its rate.
        p_threshold: detected when the p-value is at most this.
        speeds: speed factors searched (a file played ``s`` times faster is undone by ``s``).

    Returns:
        a :class:`Detection`.
    """
    import soxr

    x = np.asarray(audio, dtype=np.float32)
    if x.ndim != 1:
        raise WatermarkError(f"detect takes mono audio [T], got shape {tuple(x.shape)}")
    if not np.isfinite(x).all():
        raise WatermarkError("audio with NaN/Inf samples")
    if sr != DETECT_SR:
        x = soxr.resample(x, sr, DETECT_SR)
    hop = round(DETECT_SR * HOP_S)
    best_w: tuple | None = None  # (score, speed, phase, scores, z, lo, hi) of the best window
    best_f: tuple | None = None  # (score, speed, z [G]) of the best whole-file hypothesis
    n_windows = 0
    bm = _band_matrix(hop, DETECT_SR)
    for s in speeds:
        # Resampled by s: a file played s times faster is back to its own time and frequencies.
        xs = x if s == 1.0 else soxr.resample(x, DETECT_SR, DETECT_SR * s)
        if len(xs) < 4 * hop * BLOCK_FRAMES:
            continue
        e = _power(_stft(np.asarray(xs, np.float32), hop)) @ bm
        for ph in range(BLOCK_FRAMES):
            y = _blocks_db(e, ph)
            w = _weights(y)
            r = _clipped(_residual(_floor(y)), w)
            score, z, lo, hi = _window_stats(r, w)
            if len(lo) > 1:  # the whole file is a hypothesis of its own
                k = int(score[-1].argmax())
                if best_f is None or score[-1, k] > best_f[0]:
                    best_f = (float(score[-1, k]), s, z[-1, k])
            score, z = score[:-1], z[:-1]
            n_windows = max(n_windows, len(lo))
            if best_w is None or score.max() > best_w[0]:
                best_w = (float(score.max()), s, ph, score, z, lo, hi, r, w)
    if best_w is None:
        return Detection(False, 0.0, 1.0, None)
    tmax, s, ph, score, z, lo, hi, r, w = best_w
    hyp = len(speeds) * BLOCK_FRAMES * PERIOD
    n_eff = max(1.0, n_windows * WINDOW_HOP / WINDOW_BLOCKS)
    p_win = min(1.0, hyp * n_eff * _norm_sf(tmax))
    p_file = min(1.0, hyp * _norm_sf(best_f[0])) if best_f is not None else 1.0
    p = min(1.0, 2.0 * min(p_win, p_file)) if best_f is not None else p_win
    use_file = best_f is not None and p_file < p_win
    top = best_f[0] if use_file else tmax
    if p > p_threshold:
        return Detection(False, top, p, None, speed=best_f[1] if use_file else s, windows=n_windows)
    # Windows of the best (speed, phase) whose own p-value passes: the marked regions.
    shift = score.argmax(1)
    wp = np.array([min(1.0, hyp * _norm_sf(v)) for v in score.max(1)])
    good = np.flatnonzero(wp <= p_threshold)
    if use_file:
        zb, s_out = best_f[2][N_SYNC:], best_f[1]
    else:
        if len(good) == 0:
            good = np.array([int(score.max(1).argmax())])
        zb, s_out = z[good, shift[good], N_SYNC:].sum(0) / math.sqrt(len(good)), s
    if len(good) == 0:  # the file as a whole is marked, no single window is sure: the best window stands for it
        good = np.array([int(score.max(1).argmax())])
    bits = (zb > 0).astype(int)
    payload = int(sum(int(b) << (N_BITS - 1 - k) for k, b in enumerate(bits)))
    conf = tuple(float(1.0 - _norm_sf(abs(v))) for v in zb)
    # Regions: the windows that detect, merged, each trimmed to where the blocks carry the mark (a window that
    # detects may reach ~0.5 s past a marked span's edge).
    w_best = int(score.max(1).argmax())
    rows = (np.arange(r.shape[0]) - int(shift[w_best])) % PERIOD
    chip = _SIGNS[rows] * _bit_signs(payload)[_GROUPS[rows]]  # [T, B]: the sign the mark gives each chip
    evidence, counted = (chip * r * w).sum(1), w.sum(1)
    mu = float(evidence[lo[w_best]:hi[w_best]].sum() / max(counted[lo[w_best]:hi[w_best]].sum(), 1.0))
    spans: list[list[int]] = []
    for a, b in sorted(zip(lo[good].tolist(), hi[good].tolist(), strict=True)):
        if spans and a <= spans[-1][1]:
            spans[-1][1] = max(spans[-1][1], b)
        else:
            spans.append([a, b])
    block_s = BLOCK_FRAMES * HOP_S / s  # a block of the speed-corrected signal, in the input's time
    off = ph * HOP_S / s
    dur = len(x) / DETECT_SR
    regions = []
    for a, b in spans:
        if mu > 0.0:
            a, b = _trim(evidence, counted, a, b, mu)
        regions.append((off + a * block_s, min(off + b * block_s, dur)))
    return Detection(True, top, p, payload, conf, tuple(regions), s_out, n_windows)


# ---- streams ---------------------------------------------------------------------------------------------------
class StreamMarker:
    """Mark audio that arrives block by block (the server's streamed responses), on the same global pattern grid
    as :func:`embed` of the whole.

    :meth:`push` returns the marked audio that is final so far; :meth:`flush` the rest. Audio is held back until
    ``segment_s`` of it is waiting (so the first bytes wait for ``segment_s`` of generated audio: at the default
    model's speed ~30 ms for 0.5 s), and each segment is marked with up to one pattern copy of context before it
    and two STFT hops after it. The seams fall on block boundaries, where the gains change anyway.
    """

    def __init__(self, sr: int, payload: int, segment_s: float = 0.5) -> None:
        self.sr, self.payload = int(sr), check_payload(payload)
        self.hop = max(1, round(sr * HOP_S))
        self.block = self.hop * BLOCK_FRAMES
        self.period = self.block * PERIOD
        self.segment = max(self.block, int(round(segment_s * sr / self.block)) * self.block)
        self.raw = np.zeros(0, np.float32)
        self.base = 0  # global sample index of raw[0]
        self.emitted = 0  # global samples returned so far

    def push(self, block: np.ndarray) -> np.ndarray:
        """``[n]`` new samples -> ``[m]`` marked samples ready to send (possibly none)."""
        self.raw = np.concatenate([self.raw, np.asarray(block, np.float32).reshape(-1)])
        end = self.base + len(self.raw) - 2 * self.hop  # what has enough right context
        ready = (end - self.emitted) // self.segment * self.segment
        return self._mark(self.emitted + ready) if ready > 0 else np.zeros(0, np.float32)

    def flush(self) -> np.ndarray:
        """The marked rest."""
        return self._mark(self.base + len(self.raw))

    def _mark(self, upto: int) -> np.ndarray:
        # Context: from the start of the pattern copy one copy before the emitted point (global grid), so the
        # pattern's phase and the informed gains' context match marking the whole.
        ctx = max(self.base, (max(0, self.emitted - self.period) // self.period) * self.period)
        seg = self.raw[ctx - self.base :]
        if len(seg) == 0 or upto <= self.emitted:
            return np.zeros(0, np.float32)
        marked = embed(seg, self.sr, self.payload) if len(seg) >= 2 * self.block else seg.copy()
        out = marked[self.emitted - ctx : upto - ctx]
        self.emitted = upto
        keep = max(self.base, (max(0, self.emitted - self.period) // self.period) * self.period)
        self.raw, self.base = self.raw[keep - self.base :], keep
        return out.astype(np.float32)


# ---- files -----------------------------------------------------------------------------------------------------
def embed_file(src: str, dst: str, payload: int) -> float:
    """Mark the audio file ``src`` (mixed to mono) into ``dst`` (16-bit WAV/FLAC or any format save_audio writes,
    at the source rate). Returns the duration in seconds."""
    from speechlm.audio.io import load_audio, save_audio

    wav, sr = load_audio(src)
    out = embed(wav[0], sr, payload)
    save_audio(dst, out[None], sr)
    return len(out) / sr


def detect_file(path: str) -> Detection:
    from speechlm.audio.io import load_audio

    wav, sr = load_audio(path)
    return detect(wav[0], sr)
