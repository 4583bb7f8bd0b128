"""Stage 1, standardise: any audio ffmpeg reads -> 16 kHz mono PCM16 WAV at a target loudness, streamed.

The input is decoded by an ``ffmpeg`` subprocess that pipes float32 mono samples at :data:`PIPELINE_SR`; we read
it in blocks of ``block_s`` seconds, so an hours-long file is never held in memory (peak memory is a few blocks,
whatever the length). Two passes over local disk, one decode:

1. decode -> a temporary float32 WAV beside the output, while measuring integrated loudness (ITU-R BS.1770-4:
   K-weighting, 400 ms blocks with 75 % overlap, absolute gate -70 LUFS, relative gate -10 LU);
2. read that file back in blocks, apply one gain (to ``target_lufs``, at most ``max_gain_db``, and lowered so the
   peak stays below full scale: peak-limited inputs end up quieter than the target), write PCM16 atomically.

An input that ffmpeg cannot decode, that holds no samples, that is shorter than ``min_input_s`` or that is silent
(below the absolute gate everywhere) raises :class:`InputRejected` with a one-line reason.
"""

from __future__ import annotations

import logging
import math
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from speechlm.errors import MissingDependencyError, SpeechLMError
from speechlm.pipeline.config import PIPELINE_SR

log = logging.getLogger(__name__)

PEAK_CEILING = 10 ** (-0.5 / 20)  # -0.5 dBFS


class InputRejected(SpeechLMError):
    """An input the pipeline skips; ``reason`` is a short key for the report, the message says why."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class StandardiseResult:
    """What stage 1 measured and did to one input."""

    duration_s: float
    input_lufs: float
    gain_db: float
    output_lufs: float
    input_peak: float
    peak_limited: bool


def _k_weighting(sr: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """BS.1770's two K-weighting biquads (high shelf, then high pass) for any rate.

    The analog parameters and formulas are Brecht De Man's fit ("Evaluation of implementations of the EBU R128
    loudness measurement", AES 2018), which reproduce the standard's 48 kHz coefficients exactly.
    """
    k = math.tan(math.pi * 1681.974450955533 / sr)
    q = 0.7071752369554196
    vh = 10 ** (3.999843853973347 / 20)
    vb = vh ** 0.4996667741545416
    a0 = 1 + k / q + k * k
    shelf = (np.array([(vh + vb * k / q + k * k) / a0, 2 * (k * k - vh) / a0, (vh - vb * k / q + k * k) / a0]),
             np.array([1.0, 2 * (k * k - 1) / a0, (1 - k / q + k * k) / a0]))
    k = math.tan(math.pi * 38.13547087602444 / sr)
    q = 0.5003270373238773
    a0 = 1 + k / q + k * k
    high_pass = (np.array([1.0, -2.0, 1.0]), np.array([1.0, 2 * (k * k - 1) / a0, (1 - k / q + k * k) / a0]))
    return [shelf, high_pass]


class LoudnessMeter:
    """Streaming integrated loudness (BS.1770-4) of mono audio: :meth:`add` blocks ``[t]``, then :meth:`lufs`.

    Keeps only the filter states and one power value per 100 ms (36 000 floats for an hour).
    """

    def __init__(self, sr: int = PIPELINE_SR) -> None:
        from scipy.signal import lfilter_zi

        self.sr = sr
        self._filters = _k_weighting(sr)
        self._zi = [lfilter_zi(b, a) * 0.0 for b, a in self._filters]
        self._step = int(round(0.1 * sr))
        self._pending = np.zeros(0, np.float64)
        self._sub: list[float] = []  # mean square per 100 ms of K-weighted audio

    def add(self, x: np.ndarray) -> None:
        from scipy.signal import lfilter

        y = np.asarray(x, np.float64)
        for i, (b, a) in enumerate(self._filters):
            y, self._zi[i] = lfilter(b, a, y, zi=self._zi[i])
        y = np.concatenate([self._pending, y])
        n = len(y) // self._step
        if n:
            self._sub.extend(np.mean(y[: n * self._step].reshape(n, self._step) ** 2, axis=1).tolist())
        self._pending = y[n * self._step:]

    def lufs(self) -> float:
        """Gated integrated loudness in LUFS; ``-inf`` when no 400 ms block passes the absolute gate."""
        sub = np.asarray(self._sub)
        if len(sub) < 4:
            return -math.inf
        z = np.convolve(sub, np.ones(4) / 4, mode="valid")  # 400 ms blocks, 100 ms hop
        with np.errstate(divide="ignore"):
            loud = -0.691 + 10 * np.log10(z)
        z = z[loud > -70.0]
        if z.size == 0:
            return -math.inf
        rel = -0.691 + 10 * math.log10(float(np.mean(z))) - 10.0
        with np.errstate(divide="ignore"):
            z = z[-0.691 + 10 * np.log10(z) > rel]
        return -0.691 + 10 * math.log10(float(np.mean(z)))


def integrated_loudness(x: np.ndarray, sr: int = PIPELINE_SR) -> float:
    """BS.1770-4 integrated loudness of mono ``x [T]`` in LUFS (``-inf`` for silence or under 400 ms)."""
    m = LoudnessMeter(sr)
    m.add(x)
    return m.lufs()


def ffmpeg_cmd(src: str | os.PathLike, sr: int = PIPELINE_SR) -> list[str]:
    """The decoding command: any input, first audio stream, downmixed to mono float32 at ``sr`` on stdout."""
    return ["ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-i", f"file:{os.fspath(src)}",
            "-map", "0:a:0", "-vn", "-ac", "1", "-ar", str(sr), "-f", "f32le", "-"]


def decode_blocks(src: str | os.PathLike, sr: int = PIPELINE_SR, block_s: float = 30.0):
    """Yield float32 mono blocks ``[t]`` (about ``block_s`` s each) of any ffmpeg-readable file, streamed.

    Raises:
        InputRejected: ``undecodable`` when ffmpeg fails (its last error line is in the message).
        MissingDependencyError: ffmpeg is not installed.
    """
    if shutil.which("ffmpeg") is None:
        raise MissingDependencyError("the pipeline decodes with ffmpeg: apt-get install ffmpeg")
    nbytes = 4 * max(1, int(block_s * sr))
    proc = subprocess.Popen(ffmpeg_cmd(src, sr), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        pending = b""
        while True:
            chunk = proc.stdout.read(nbytes)
            if not chunk:
                break
            pending += chunk
            n = len(pending) // 4
            if n:
                yield np.frombuffer(pending[: 4 * n], dtype="<f4").copy()
                pending = pending[4 * n:]
        err = proc.stderr.read().decode(errors="replace").strip()
        proc.wait(timeout=60)
        if proc.returncode != 0:
            last = err.splitlines()[-1] if err else f"exit status {proc.returncode}"
            raise InputRejected("undecodable", f"{src}: ffmpeg cannot decode it ({last})")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
        proc.stderr.close()


def standardise(
    src: str | os.PathLike,
    dst: str | os.PathLike,
    *,
    target_lufs: float = -23.0,
    max_gain_db: float = 30.0,
    min_input_s: float = 1.0,
    block_s: float = 30.0,
) -> StandardiseResult:
    """Decode ``src`` (anything ffmpeg reads) and write ``dst``: 16 kHz mono PCM16 WAV at ``target_lufs``.

    Memory stays at a few ``block_s`` blocks whatever the input length. ``dst`` appears only when complete.

    Raises:
        InputRejected: undecodable, empty, too short or silent input (``dst`` is not written).
    """
    import soundfile as sf

    from speechlm.utils.atomic import atomic_path

    dst = Path(dst)
    dst.parent.mkdir(parents=True, exist_ok=True)
    meter = LoudnessMeter(PIPELINE_SR)
    n = 0
    peak = 0.0
    bad = 0
    fd, raw_name = tempfile.mkstemp(prefix=f".{dst.name}.", suffix=".raw.wav", dir=dst.parent)
    os.close(fd)
    raw = Path(raw_name)
    try:
        with sf.SoundFile(str(raw), "w", PIPELINE_SR, 1, subtype="FLOAT", format="WAV") as f:
            for block in decode_blocks(src, PIPELINE_SR, block_s):
                finite = np.isfinite(block)
                if not finite.all():
                    bad += int((~finite).sum())
                    block = np.where(finite, block, 0.0).astype(np.float32)
                meter.add(block)
                peak = max(peak, float(np.max(np.abs(block))) if block.size else 0.0)
                f.write(block)
                n += block.size
        duration = n / PIPELINE_SR
        if n == 0:
            raise InputRejected("empty", f"{src}: no audio samples")
        if duration < min_input_s:
            raise InputRejected("too_short", f"{src}: {duration:.2f} s of audio, under {min_input_s:g} s")
        lufs = meter.lufs()
        if not math.isfinite(lufs):
            raise InputRejected("silent", f"{src}: silent (no 400 ms block above -70 LUFS)")
        gain_db = min(target_lufs - lufs, max_gain_db)
        limited = peak * 10 ** (gain_db / 20) > PEAK_CEILING
        if limited:
            gain_db = 20 * math.log10(PEAK_CEILING / peak)
        g = np.float32(10 ** (gain_db / 20))
        with atomic_path(dst) as tmp, sf.SoundFile(str(tmp), "w", PIPELINE_SR, 1, subtype="PCM_16",
                                                   format="WAV") as out:
            for block in sf.blocks(str(raw), blocksize=int(block_s * PIPELINE_SR), dtype="float32"):
                out.write(np.clip(block * g, -1.0, 1.0))
    finally:
        raw.unlink(missing_ok=True)  # our own temporary file
    if bad:
        log.warning("%s: %d non-finite samples replaced by zeros", src, bad)
    return StandardiseResult(duration_s=duration, input_lufs=lufs, gain_db=gain_db, output_lufs=lufs + gain_db,
                             input_peak=peak, peak_limited=limited)


def read_span(path: str | os.PathLike, start_s: float, end_s: float) -> np.ndarray:
    """Samples ``[start_s, end_s)`` of a standardised WAV as float32 ``[t]`` (seeks; never reads the whole file)."""
    import soundfile as sf

    with sf.SoundFile(str(path)) as f:
        a = max(0, int(round(start_s * f.samplerate)))
        b = min(f.frames, int(round(end_s * f.samplerate)))
        if b <= a:
            return np.zeros(0, np.float32)
        f.seek(a)
        return f.read(b - a, dtype="float32")
