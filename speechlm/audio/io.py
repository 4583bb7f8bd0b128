"""Audio loading and saving: float32 ``[C, T]`` arrays in, atomic files out.

Reading goes through soundfile (libsndfile: WAV, FLAC, OGG Vorbis/Opus, MP3, AIFF, AU, CAF, W64, RF64, ...)
and, for anything libsndfile cannot open (M4A/AAC, WebM, WMA, AMR, ...), through an ``ffmpeg`` subprocess when
ffmpeg is installed. Resampling uses soxr (no torchaudio). Every problem is an
:class:`~speechlm.errors.AudioError` with a one-line message; the limits are documented in
:mod:`speechlm.audio.validate`.

Saving validates first (rate, channels, finite samples), clips to [-1, 1] for integer and lossy formats
(rather than letting the integer conversion wrap around) and writes through
:func:`speechlm.utils.atomic.atomic_path`, so a failure never leaves a partial file at the target.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
import soxr

from speechlm.audio.validate import (
    MAX_CHANNELS,
    MAX_SAMPLE_RATE,
    MAX_SECONDS,
    MIN_SAMPLE_RATE,
    check_channels,
    check_duration,
    check_finite,
    check_sample_rate,
    validate_waveform,
)
from speechlm.errors import AudioError
from speechlm.utils.atomic import atomic_path

__all__ = [
    "MAX_CHANNELS", "MAX_SAMPLE_RATE", "MAX_SECONDS", "MIN_SAMPLE_RATE", "SAVE_FORMATS", "AudioInfo",
    "audio_info", "ffmpeg_available", "iter_audio_blocks", "load_audio", "resample", "save_audio",
]

log = logging.getLogger(__name__)

# Output extension -> (libsndfile format, default subtype). Lossy formats ignore ``subtype``.
SAVE_FORMATS: dict[str, tuple[str, str]] = {
    ".wav": ("WAV", "PCM_16"),
    ".flac": ("FLAC", "PCM_16"),
    ".ogg": ("OGG", "VORBIS"),
    ".oga": ("OGG", "VORBIS"),
    ".opus": ("OGG", "OPUS"),
    ".mp3": ("MP3", "MPEG_LAYER_III"),
    ".aiff": ("AIFF", "PCM_16"),
    ".aif": ("AIFF", "PCM_16"),
    ".au": ("AU", "PCM_16"),
    ".caf": ("CAF", "PCM_16"),
    ".w64": ("W64", "PCM_16"),
}
_FLOAT_SUBTYPES = {"FLOAT", "DOUBLE"}
_LOSSY_SUBTYPES = {"VORBIS", "OPUS", "MPEG_LAYER_III", "MPEG_LAYER_II", "MPEG_LAYER_I"}
# Opus (as libsndfile writes it) and MPEG only take these rates.
_OPUS_RATES = {8000, 12000, 16000, 24000, 48000}
_MP3_RATES = {8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000}
# Frames per write call: libsndfile's Vorbis encoder has crashed on very large single writes.
_WRITE_BLOCK = 1 << 16


@dataclass(frozen=True)
class AudioInfo:
    """What a file holds, read from its header (no samples decoded except for the ffmpeg path)."""

    path: str
    format: str          # e.g. "WAV", "FLAC", "OGG", "MP3", or ffmpeg's format name ("mov,mp4,m4a,...")
    subtype: str         # e.g. "PCM_16", "FLOAT", "VORBIS", or ffmpeg's codec name
    sample_rate: int
    channels: int
    frames: int
    backend: str         # "soundfile" or "ffmpeg"

    @property
    def duration(self) -> float:
        """Duration in seconds."""
        return self.frames / self.sample_rate


def ffmpeg_available() -> bool:
    """True when both ``ffmpeg`` and ``ffprobe`` are on PATH."""
    return shutil.which("ffmpeg") is not None and shutil.which("ffprobe") is not None


# ----------------------------------------------------------------------------------------------------
# Opening and sniffing


def _mpeg_frame_header(b: bytes) -> bool:
    """A plausible MPEG audio frame header: 11 sync bits, and no reserved version, layer, bitrate or rate."""
    if len(b) < 4 or b[0] != 0xFF or (b[1] & 0xE0) != 0xE0:
        return False
    version, layer = (b[1] >> 3) & 3, (b[1] >> 1) & 3
    bitrate, rate = b[2] >> 4, (b[2] >> 2) & 3
    return version != 1 and layer != 0 and bitrate not in (0, 15) and rate != 3


def _magic_kind(head: bytes) -> str | None:
    """Name the container the first bytes announce, or None when they look like nothing we know.

    Used only to word the error: a known container that fails to open is "corrupt or truncated", anything
    else is an "unknown format".
    """
    if head[:4] in (b"RIFF", b"RIFX", b"RF64"):
        return "WAV"
    if head[:4] == b"fLaC":
        return "FLAC"
    if head[:4] == b"OggS":
        return "OGG"
    if head[:3] == b"ID3":
        return "MP3"
    if head[:4] == b"FORM":
        return "AIFF"
    if head[:4] == b".snd":
        return "AU"
    if head[:4] == b"caff":
        return "CAF"
    if head[4:8] == b"ftyp":
        return "MP4"
    if head[:4] == b"\x1a\x45\xdf\xa3":
        return "Matroska/WebM"
    if head[:4] == b"riff":
        return "W64"
    return None


def _check_file(path: Path) -> bytes:
    """Raise for a missing, non-regular or empty file; return its first bytes for sniffing."""
    if not path.exists():
        raise AudioError(f"{path}: no such file")
    if not path.is_file():
        raise AudioError(f"{path}: not a regular file")
    if path.stat().st_size == 0:
        raise AudioError(f"{path}: empty file (0 bytes)")
    with open(path, "rb") as f:
        return f.read(16)


def _soundfile_error(exc: Exception) -> str:
    return " ".join(str(exc).split())


# A user's file is only ever read as a local file: a playlist (HLS .m3u8, concat list, ...) inside it cannot make
# ffmpeg open URLs or other protocols. The whitelist is inherited by the demuxers that open nested inputs.
_FFMPEG_SAFE_INPUT = ("-protocol_whitelist", "file,pipe")


def _ffmpeg_url(path: Path) -> str:
    """``file:`` + the absolute path, so a name like ``http:x`` or ``concat:a|b`` is never read as a protocol."""
    return "file:" + str(Path(path).absolute())


def _ffprobe(path: Path) -> dict[str, Any] | None:
    """Stream info of the first audio stream through ffprobe, or None when ffprobe finds none."""
    try:
        proc = subprocess.run(
            ["ffprobe", "-v", "error", *_FFMPEG_SAFE_INPUT, "-select_streams", "a:0",
             "-show_entries", "stream=codec_name,sample_rate,channels,duration,duration_ts,time_base"
             ":format=format_name,duration", "-of", "json", _ffmpeg_url(path)],
            capture_output=True, timeout=60, check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    if proc.returncode != 0:
        return None
    try:
        data = json.loads(proc.stdout or b"{}")
    except json.JSONDecodeError:
        return None
    streams = data.get("streams") or []
    if not streams:
        return None
    st = streams[0]
    duration = st.get("duration") or (data.get("format") or {}).get("duration")
    try:
        sr = int(st["sample_rate"])
        channels = int(st["channels"])
        seconds = float(duration) if duration is not None else float("nan")
    except (KeyError, TypeError, ValueError):
        return None
    return {"sample_rate": sr, "channels": channels, "seconds": seconds,
            "codec": st.get("codec_name", "?"), "format": (data.get("format") or {}).get("format_name", "?")}


def audio_info(path: str | os.PathLike) -> AudioInfo:
    """Read a file's header: format, rate, channels, frame count.

    Raises:
        AudioError: missing/empty file, unknown format, corrupt or truncated header.
    """
    path = Path(path)
    head = _check_file(path)
    try:
        with _quiet_stderr(_may_reach_mpg123(path, head)):
            info = sf.info(str(path))
        return AudioInfo(str(path), info.format, info.subtype, int(info.samplerate), int(info.channels),
                         int(info.frames), "soundfile")
    except (sf.LibsndfileError, RuntimeError, TypeError) as exc:
        sf_err = _soundfile_error(exc)
    probe = _ffprobe(path) if ffmpeg_available() else None
    if probe is None:
        raise _open_error(path, head, sf_err)
    frames = int(round(probe["seconds"] * probe["sample_rate"])) if np.isfinite(probe["seconds"]) else -1
    return AudioInfo(str(path), probe["format"], probe["codec"], probe["sample_rate"], probe["channels"],
                     frames, "ffmpeg")


_EXT_KIND = {".wav": "WAV", ".wave": "WAV", ".flac": "FLAC", ".ogg": "OGG", ".oga": "OGG", ".opus": "OGG",
             ".mp3": "MP3", ".aiff": "AIFF", ".aif": "AIFF", ".au": "AU", ".caf": "CAF", ".w64": "W64"}


def _open_error(path: Path, head: bytes, detail: str) -> AudioError:
    kind = _magic_kind(head)
    if kind is None and _mpeg_frame_header(head) and path.suffix.lower() in (".mp3", ".mp2", ".mpga"):
        kind = "MP3"
    if kind is not None:
        return AudioError(f"{path}: corrupt or truncated {kind} header ({detail})")
    if path.suffix.lower() in _EXT_KIND:  # named like audio, but no valid signature at the start
        return AudioError(f"{path}: corrupt or truncated header (no valid {_EXT_KIND[path.suffix.lower()]} "
                          "signature)")
    hint = "" if ffmpeg_available() else "; install ffmpeg to read more formats"
    return AudioError(f"{path}: unknown or unsupported audio format{hint}")


# ----------------------------------------------------------------------------------------------------
# Loading


def _adapt_channels(wav: np.ndarray, channels: int | None, name: object) -> np.ndarray:
    """Map ``[C, T]`` to the requested channel count: mean for mono, copy mono to many; else refuse."""
    c = wav.shape[0]
    if channels is None or channels == c:
        return wav
    if channels < 1:
        raise AudioError(f"{name}: requested {channels} channels")
    if channels == 1:
        return wav.mean(axis=0, keepdims=True, dtype=np.float32)
    if c == 1:
        return np.repeat(wav, channels, axis=0)
    raise AudioError(f"{name}: cannot map {c} channels to {channels} (only to 1, or from 1)")


_quiet_lock = threading.Lock()
_quiet_depth = 0
_quiet_saved_fd: int | None = None


@contextlib.contextmanager
def _quiet_stderr(active: bool) -> Iterator[None]:
    """Silence file descriptor 2 while libmpg123 may run: it prints resync notes there, which would break the
    one-line error contract of the CLI.

    Only used around libsndfile calls on files that may reach its MP3 decoder. The redirection is process-
    wide, so concurrent users share one (reference-counted) redirection; the last one out restores stderr.
    """
    global _quiet_depth, _quiet_saved_fd
    if not active:
        yield
        return
    with _quiet_lock:
        if _quiet_depth == 0:
            sys.stderr.flush()
            _quiet_saved_fd = os.dup(2)
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, 2)
            os.close(devnull)
        _quiet_depth += 1
    try:
        yield
    finally:
        with _quiet_lock:
            _quiet_depth -= 1
            if _quiet_depth == 0 and _quiet_saved_fd is not None:
                os.dup2(_quiet_saved_fd, 2)
                os.close(_quiet_saved_fd)
                _quiet_saved_fd = None


_WAV_DATA_SIZE = re.compile(r"data : (\d+) \(should be (\d+)\)")


def _check_extra_info(path: Path, f: sf.SoundFile) -> None:
    """Catch the damage libsndfile works around silently, from the log it keeps in ``extra_info``."""
    extra = f.extra_info
    m = _WAV_DATA_SIZE.search(extra)
    if m and f.format in ("WAV", "WAVEX", "RF64", "W64"):
        declared, actual = int(m.group(1)), int(m.group(2))
        # 0 and 0xFFFFFFFF are placeholders written by streaming writers (ffmpeg to a pipe, sox -t wav -).
        if 0 < declared < 0xFFFFFFFF and actual < declared:
            raise AudioError(f"{path}: truncated file (header announces {declared} data bytes, "
                             f"the file holds {actual})")
    if f.format == "OGG" and ("Corrupted bitstream" in extra or "reports a hole" in extra):
        raise AudioError(f"{path}: corrupt audio data (damaged Ogg pages)")


def _may_reach_mpg123(path: Path, head: bytes) -> bool:
    """True unless the file is clearly another container (libsndfile tries its MP3 decoder on the rest)."""
    kind = _magic_kind(head)
    return kind is None or kind == "MP3" or path.suffix.lower() in (".mp3", ".mp2", ".mpga")


def _read_soundfile(path: Path, max_seconds: float, max_channels: int, quiet: bool
                    ) -> tuple[np.ndarray, int]:
    with _quiet_stderr(quiet), sf.SoundFile(str(path)) as f:
        sr = check_sample_rate(f.samplerate, path)
        check_channels(f.channels, path, max_channels)
        announced = int(f.frames)
        check_duration(announced, sr, path, max_seconds)
        _check_extra_info(path, f)
        try:
            data = f.read(dtype="float32", always_2d=True)  # [T, C]
        except (sf.LibsndfileError, RuntimeError) as exc:
            raise AudioError(f"{path}: corrupt audio data ({_soundfile_error(exc)})") from None
    if data.shape[0] == 0:
        raise AudioError(f"{path}: audio contains no samples")
    # libsndfile stops early (without raising) at undecodable FLAC/MP3/Vorbis data: a shortfall is corruption.
    if announced > 0 and data.shape[0] < 0.99 * announced - sr * 0.05:
        raise AudioError(f"{path}: corrupt audio data (decoded {data.shape[0]} of {announced} samples)")
    return np.ascontiguousarray(data.T), sr


def _ffmpeg_cmd(path: Path, extra: list[str] | None = None) -> list[str]:
    # -xerror: stop on the first decode error instead of silently skipping corrupt packets.
    return ["ffmpeg", "-nostdin", "-v", "error", "-xerror", *_FFMPEG_SAFE_INPUT, "-i", _ffmpeg_url(path),
            "-map", "0:a:0", "-vn",
            *(extra or []), "-f", "f32le", "-acodec", "pcm_f32le", "pipe:1"]


_FFMPEG_PREFIX = re.compile(r"^\[[^\]]*@ 0x[0-9a-f]+\]\s*")


def _ffmpeg_detail(stderr: str, returncode: int) -> str:
    """First distinct error line of ffmpeg, without its ``[codec @ 0x...]`` prefix."""
    lines = [_FFMPEG_PREFIX.sub("", ln).strip() for ln in stderr.splitlines()]
    lines = [ln for ln in lines if ln]
    return ("ffmpeg: " + lines[0][:160]) if lines else f"ffmpeg exit status {returncode}"


def _read_ffmpeg(path: Path, head: bytes, sf_err: str, max_seconds: float, max_channels: int
                 ) -> tuple[np.ndarray, int]:
    probe = _ffprobe(path)
    if probe is None:
        raise _open_error(path, head, sf_err)
    sr = check_sample_rate(probe["sample_rate"], path)
    c = check_channels(probe["channels"], path, max_channels)
    if np.isfinite(probe["seconds"]):
        check_duration(max(1, int(probe["seconds"] * sr)), sr, path, max_seconds)
    # The container's duration can lie: cap what we accept from the decoder as well.
    limit = int((max_seconds + 1.0) * sr) * c * 4 if np.isfinite(max_seconds) else None
    proc = subprocess.Popen(_ffmpeg_cmd(path), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        raw = proc.stdout.read(limit + 4) if limit is not None else proc.stdout.read()
        if limit is not None and len(raw) > limit:
            proc.kill()
            raise AudioError(f"{path}: duration is over the {max_seconds:g} s limit")
        err = proc.stderr.read().decode(errors="replace")
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.stdout.close()
        proc.stderr.close()
    if proc.returncode != 0:
        raise AudioError(f"{path}: corrupt audio data ({_ffmpeg_detail(err, proc.returncode)})")
    n = len(raw) // (4 * c)
    if n == 0:
        raise AudioError(f"{path}: audio contains no samples")
    data = np.frombuffer(raw[: n * c * 4], dtype="<f4").reshape(n, c).T.astype(np.float32)
    return np.ascontiguousarray(data), sr


def load_audio(path: str | os.PathLike, sr: int | None = None, channels: int | None = 1,
               max_seconds: float = MAX_SECONDS, *, max_channels: int = MAX_CHANNELS
               ) -> tuple[np.ndarray, int]:
    """Load an audio file as float32 ``[C, T]`` (nominally in [-1, 1]).

    Args:
        path: WAV/FLAC/OGG/MP3/... through soundfile; other formats through ffmpeg when it is installed.
        sr: resample to this rate with soxr (None keeps the file's rate).
        channels: 1 downmixes (mean of channels), None keeps the file's channels, N > 1 copies a mono file.
        max_seconds: refuse longer files (default :data:`MAX_SECONDS`, 3 h). Use :func:`iter_audio_blocks` for
            longer inputs.
        max_channels: refuse files with more channels (default :data:`MAX_CHANNELS`, 8).

    Returns:
        ``(wav [C, T] float32, sample_rate)``.

    Raises:
        AudioError: empty file, zero samples, NaN/Inf samples, too many channels, rate outside 8-192 kHz,
            too long, unknown format, corrupt or truncated header or data.
    """
    path = Path(path)
    if sr is not None:
        sr = check_sample_rate(sr, "requested rate")
    if max_seconds is None:
        max_seconds = float("inf")
    head = _check_file(path)
    quiet = _may_reach_mpg123(path, head)
    try:
        with _quiet_stderr(quiet):
            sf.info(str(path))
        use_soundfile = True
    except (sf.LibsndfileError, RuntimeError, TypeError) as exc:
        use_soundfile, sf_err = False, _soundfile_error(exc)
    if use_soundfile:
        wav, file_sr = _read_soundfile(path, max_seconds, max_channels, quiet)
    elif ffmpeg_available():
        try:
            wav, file_sr = _read_ffmpeg(path, head, sf_err, max_seconds, max_channels)
        except AudioError as exc:
            # libsndfile could not open a file named (or signed) as one of its own formats, and ffmpeg could
            # not decode it either: report the header libsndfile rejected, not ffmpeg's decoder complaint.
            if "corrupt audio data" in str(exc) and (_magic_kind(head) or path.suffix.lower() in _EXT_KIND):
                raise _open_error(path, head, sf_err) from None
            raise
    else:
        raise _open_error(path, head, sf_err)
    check_finite(wav, path)
    wav = _adapt_channels(wav, channels, path)
    if sr is not None and sr != file_sr:
        wav = resample(wav, file_sr, sr)
        return wav, sr
    return wav, file_sr


def iter_audio_blocks(path: str | os.PathLike, sr: int | None = None, block_seconds: float = 10.0,
                      channels: int | None = 1, *, max_channels: int = MAX_CHANNELS) -> Iterator[np.ndarray]:
    """Stream a file of any length in bounded memory as float32 blocks ``[C, t]``.

    Blocks hold about ``block_seconds`` of output audio each (the last is shorter; with resampling a block can
    differ by a few samples because soxr's stream keeps some samples in its filter delay). Concatenating the
    blocks gives the same signal as :func:`load_audio` without its duration limit (up to soxr's streaming edge
    effects, below 1e-4). The output rate is ``sr`` (or the file's when None); find it beforehand with
    :func:`audio_info`.

    Raises:
        AudioError: as :func:`load_audio` (NaN/Inf is reported in the block where it appears).
    """
    path = Path(path)
    head = _check_file(path)
    if sr is not None:
        sr = check_sample_rate(sr, "requested rate")
    if block_seconds <= 0:
        raise AudioError(f"block_seconds must be positive, got {block_seconds}")
    quiet = _may_reach_mpg123(path, head)
    try:
        with _quiet_stderr(quiet):
            info = sf.info(str(path))
    except (sf.LibsndfileError, RuntimeError, TypeError) as exc:
        info, sf_err = None, _soundfile_error(exc)
    if info is not None:
        file_sr = check_sample_rate(info.samplerate, path)
        c = check_channels(info.channels, path, max_channels)
        check_duration(int(info.frames), file_sr, path, float("inf"))
        blocks = _sf_blocks(path, int(block_seconds * file_sr), quiet)
    elif ffmpeg_available():
        probe = _ffprobe(path)
        if probe is None:
            raise _open_error(path, head, sf_err)
        file_sr = check_sample_rate(probe["sample_rate"], path)
        c = check_channels(probe["channels"], path, max_channels)
        blocks = _ffmpeg_blocks(path, c, int(block_seconds * file_sr))
    else:
        raise _open_error(path, head, sf_err)

    out_sr = sr or file_sr
    stream = soxr.ResampleStream(file_sr, out_sr, c, dtype="float32") if out_sr != file_sr else None
    total = 0
    for block in blocks:  # [t, C]
        check_finite(block, path)
        if stream is not None:
            block = stream.resample_chunk(block, last=False)
        if block.shape[0]:
            total += block.shape[0]
            yield _adapt_channels(np.ascontiguousarray(block.T), channels, path)
    if stream is not None:
        tail = stream.resample_chunk(np.zeros((0, c), np.float32), last=True)
        if tail.shape[0]:
            total += tail.shape[0]
            yield _adapt_channels(np.ascontiguousarray(tail.T), channels, path)
    if total == 0:
        raise AudioError(f"{path}: audio contains no samples")


def _sf_blocks(path: Path, blocksize: int, quiet: bool) -> Iterator[np.ndarray]:
    """``[t, C]`` float32 blocks; stderr is silenced around each libsndfile call, never across a yield."""
    try:
        with _quiet_stderr(quiet):
            f = sf.SoundFile(str(path))
        with f:
            _check_extra_info(path, f)
            while True:
                with _quiet_stderr(quiet):
                    block = f.read(max(blocksize, 1), dtype="float32", always_2d=True)
                if block.shape[0] == 0:
                    return
                yield block
    except (sf.LibsndfileError, RuntimeError) as exc:
        raise AudioError(f"{path}: corrupt audio data ({_soundfile_error(exc)})") from None


def _ffmpeg_blocks(path: Path, c: int, blocksize: int) -> Iterator[np.ndarray]:
    nbytes = max(blocksize, 1) * c * 4
    proc = subprocess.Popen(_ffmpeg_cmd(path), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        pending = b""
        while True:
            chunk = proc.stdout.read(nbytes)
            if not chunk:
                break
            pending += chunk
            n = len(pending) // (4 * c)
            if n:
                yield np.frombuffer(pending[: n * c * 4], dtype="<f4").reshape(n, c)
                pending = pending[n * c * 4:]
        err = proc.stderr.read().decode(errors="replace")
        proc.wait(timeout=60)
        if proc.returncode != 0:
            raise AudioError(f"{path}: corrupt audio data ({_ffmpeg_detail(err, proc.returncode)})")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
        proc.stderr.close()


# ----------------------------------------------------------------------------------------------------
# Resampling and saving


def model_input(wav: np.ndarray, sr: int, model_sr: int, *, allow_empty: bool = True) -> np.ndarray:
    """Audio handed to a model's ``encode``: ``[T]`` or ``[C, T]`` (downmixed) float at ``sr`` -> float32 ``[T']``
    at ``model_sr``, clamped to [-1, 1] (the models saw [-1, 1]; over-range float input is clamped, not
    rejected). A wrong shape, NaN/Inf samples, or (unless ``allow_empty``) no samples raise :class:`AudioError`."""
    wav = np.asarray(wav, dtype=np.float32)
    if wav.ndim == 2:
        wav = wav.mean(axis=0)
    if wav.ndim != 1:
        raise AudioError(f"expected audio [T] or [C, T], got shape {wav.shape}")
    if not allow_empty and wav.size == 0:
        raise AudioError("audio contains no samples")
    if not np.all(np.isfinite(wav)):
        raise AudioError("audio contains NaN or Inf samples")
    if sr != model_sr:
        wav = resample(wav, int(sr), model_sr)
    return np.clip(wav, -1.0, 1.0)


def resample(wav: np.ndarray, sr_in: int, sr_out: int, quality: str = "HQ") -> np.ndarray:
    """Resample along the last axis with soxr.

    Args:
        wav: float array ``[..., T]``.
        sr_in, sr_out: rates in Hz.
        quality: soxr quality ("QQ", "LQ", "MQ", "HQ", "VHQ").

    Returns:
        float32 ``[..., T']`` with ``T' = round(T * sr_out / sr_in)`` (soxr's length rule).
    """
    wav = np.asarray(wav, dtype=np.float32)
    if int(sr_in) == int(sr_out):
        return wav.copy()
    if sr_in <= 0 or sr_out <= 0:
        raise AudioError(f"cannot resample from {sr_in} Hz to {sr_out} Hz")
    lead = wav.shape[:-1]
    flat = wav.reshape(-1, wav.shape[-1])  # [N, T]
    if flat.shape[0] == 0 or flat.shape[1] == 0:
        n_out = int(round(wav.shape[-1] * sr_out / sr_in))
        return np.zeros((*lead, n_out), np.float32)
    # soxr wants [T, N]; channels are filtered independently.
    out = soxr.resample(np.ascontiguousarray(flat.T), int(sr_in), int(sr_out), quality=quality)
    out = np.asarray(out, dtype=np.float32).reshape(-1, flat.shape[0]).T
    return np.ascontiguousarray(out.reshape(*lead, out.shape[-1]))


def _to_numpy(wav: Any) -> np.ndarray:
    if hasattr(wav, "detach"):  # a torch.Tensor; torch is not imported here
        wav = wav.detach().to("cpu").float().numpy()
    return np.asarray(wav)


def save_audio(path: str | os.PathLike, wav: Any, sr: int, subtype: str | None = "PCM_16", *,
               max_channels: int = MAX_CHANNELS) -> int:
    """Validate and write audio atomically.

    Args:
        path: output file; the extension picks the format (see :data:`SAVE_FORMATS`). Lossy formats (.ogg,
            .opus, .mp3) ignore ``subtype``.
        wav: ``[T]`` or ``[C, T]`` numpy array or torch tensor, float in [-1, 1] (or integer PCM).
        sr: sample rate in Hz (8-192 kHz; Opus and MP3 accept fewer rates).
        subtype: libsndfile subtype for lossless formats, e.g. "PCM_16", "PCM_24", "FLOAT"; None = format
            default.

    Returns:
        The number of samples clipped to [-1, 1] (also logged as a warning when non-zero). Float subtypes are
        written unclipped.

    Raises:
        AudioError: unknown extension, bad rate/shape/channel count, empty or non-finite audio, or a subtype
            the format does not take. Nothing is written then.
    """
    path = Path(path)
    ext = path.suffix.lower()
    if ext not in SAVE_FORMATS:
        raise AudioError(f"{path}: cannot write format {ext or '(no extension)'!r}; "
                         f"use one of {', '.join(sorted(SAVE_FORMATS))}")
    fmt, default_subtype = SAVE_FORMATS[ext]
    if default_subtype in _LOSSY_SUBTYPES or subtype is None:
        subtype = default_subtype
    subtype = subtype.upper()
    if not sf.check_format(fmt, subtype):
        raise AudioError(f"{path}: format {fmt} does not take subtype {subtype}")
    wav = validate_waveform(_to_numpy(wav), sr, path, max_channels=max_channels, max_seconds=None)
    sr = int(sr)
    if subtype == "OPUS" and sr not in _OPUS_RATES:
        raise AudioError(f"{path}: Opus takes only {sorted(_OPUS_RATES)} Hz, not {sr} (resample first)")
    if fmt == "MP3" and sr not in _MP3_RATES:
        raise AudioError(f"{path}: MP3 takes only {sorted(_MP3_RATES)} Hz, not {sr} (resample first)")
    if np.issubdtype(wav.dtype, np.integer):
        wav = wav.astype(np.float32) / float(np.iinfo(wav.dtype).max + 1)
    data = np.ascontiguousarray(wav.T, dtype=np.float32 if subtype != "DOUBLE" else np.float64)  # [T, C]
    n_clipped = 0
    if subtype not in _FLOAT_SUBTYPES:
        over = np.abs(data) > 1.0
        n_clipped = int(over.sum())
        if n_clipped:
            log.warning("%s: clipped %d of %d samples to [-1, 1]", path, n_clipped, data.size)
            np.clip(data, -1.0, 1.0, out=data)
    try:
        with atomic_path(path) as tmp, sf.SoundFile(str(tmp), "w", samplerate=sr, channels=data.shape[1],
                                                     format=fmt, subtype=subtype) as f:
            for start in range(0, data.shape[0], _WRITE_BLOCK):
                f.write(data[start:start + _WRITE_BLOCK])
    except (sf.LibsndfileError, RuntimeError) as exc:
        raise AudioError(f"{path}: could not write {fmt}/{subtype}: {_soundfile_error(exc)}") from None
    return n_clipped
