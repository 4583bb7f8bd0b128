"""Audio as response bytes: ``wav``, ``flac``, ``pcm`` (OpenAI's: 24 kHz signed 16-bit little-endian, no
header), ``mp3`` and ``opus`` (Ogg) through ffmpeg — whole, or streamed block by block as the audio is made."""

from __future__ import annotations

import io
import itertools
import queue
import subprocess
import threading
from collections.abc import Iterator

import numpy as np

FORMATS = ("mp3", "opus", "wav", "flac", "pcm")
MEDIA_TYPES = {"mp3": "audio/mpeg", "opus": "audio/ogg", "wav": "audio/wav", "flac": "audio/flac",
               "pcm": "audio/pcm"}
PCM_RATE = 24000
_FFMPEG = {"mp3": ["-c:a", "libmp3lame", "-b:a", "64k", "-f", "mp3"],
           "opus": ["-c:a", "libopus", "-b:a", "32k", "-f", "ogg"]}


def pcm16(wav: np.ndarray) -> bytes:
    return (np.clip(np.asarray(wav, np.float32), -1.0, 1.0) * 32767.0).astype("<i2").tobytes()


def wav_header(sr: int, n_samples: int | None = None) -> bytes:
    """A 16-bit mono WAV header; ``None`` samples: the largest size (a stream of unknown length)."""
    data = 0xFFFFFFFF - 36 if n_samples is None else 2 * n_samples
    return (b"RIFF" + (36 + data).to_bytes(4, "little") + b"WAVEfmt " + (16).to_bytes(4, "little")
            + (1).to_bytes(2, "little") + (1).to_bytes(2, "little") + sr.to_bytes(4, "little")
            + (2 * sr).to_bytes(4, "little") + (2).to_bytes(2, "little") + (16).to_bytes(2, "little")
            + b"data" + data.to_bytes(4, "little"))


def _ffmpeg(fmt: str, sr: int) -> subprocess.Popen:
    # only pipes: nothing a request carries can make ffmpeg open a file or URL
    return subprocess.Popen(["ffmpeg", "-hide_banner", "-loglevel", "error", "-protocol_whitelist", "pipe",
                             "-f", "f32le", "-ar", str(sr), "-ac", "1", "-i", "pipe:0", *_FFMPEG[fmt], "pipe:1"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)


def encode(wav: np.ndarray, sr: int, fmt: str) -> bytes:
    """Whole audio ``[T]`` at ``sr`` -> the bytes of ``fmt``."""
    wav = np.asarray(wav, np.float32)
    if fmt == "wav":
        return wav_header(sr, len(wav)) + pcm16(wav)
    if fmt == "pcm":
        from speechlm.audio.io import resample

        return pcm16(resample(wav, sr, PCM_RATE))
    if fmt == "flac":
        import soundfile as sf

        buf = io.BytesIO()
        sf.write(buf, wav, sr, format="FLAC", subtype="PCM_16")
        return buf.getvalue()
    proc = _ffmpeg(fmt, sr)
    out, _ = proc.communicate(np.clip(wav, -1, 1).astype("<f4").tobytes(), timeout=120)
    if proc.returncode != 0:
        raise RuntimeError(f"ffmpeg could not encode {fmt}")
    return out


def stream(blocks: Iterator[np.ndarray], sr: int, fmt: str, stop: threading.Event) -> Iterator[bytes]:
    """Audio blocks -> bytes of ``fmt`` as they come. ``flac`` is not streamed (sent when complete). Setting
    ``stop`` (the client went away) ends the work at the next block. The first block is made before any byte is
    produced, so an error in making it reaches the caller before the response starts."""
    blocks = iter(blocks)
    first = next(blocks, None)
    blocks = itertools.chain([] if first is None else [first], blocks)
    if fmt == "wav":
        yield wav_header(sr)
        for b in blocks:
            yield pcm16(b)
            if stop.is_set():
                return
    elif fmt == "pcm":
        import soxr

        rs = soxr.ResampleStream(sr, PCM_RATE, 1, dtype="float32")
        for b in blocks:
            yield pcm16(rs.resample_chunk(np.asarray(b, np.float32)))
            if stop.is_set():
                return
        yield pcm16(rs.resample_chunk(np.zeros(0, np.float32), last=True))
    elif fmt == "flac":
        parts = []
        for b in blocks:
            parts.append(b)
            if stop.is_set():
                return
        yield encode(np.concatenate(parts) if parts else np.zeros(0, np.float32), sr, fmt)
    else:
        yield from _stream_ffmpeg(blocks, sr, fmt, stop)


def _stream_ffmpeg(blocks: Iterator[np.ndarray], sr: int, fmt: str, stop: threading.Event) -> Iterator[bytes]:
    proc = _ffmpeg(fmt, sr)
    failed: queue.Queue[BaseException] = queue.Queue()

    def feed() -> None:
        try:
            for b in blocks:
                if stop.is_set():
                    break
                proc.stdin.write(np.clip(b, -1, 1).astype("<f4").tobytes())
                proc.stdin.flush()
        except BaseException as exc:  # noqa: BLE001 - handed to the reading side
            failed.put(exc)
        finally:
            try:
                proc.stdin.close()
            except OSError:
                pass

    t = threading.Thread(target=feed, daemon=True)
    t.start()
    try:
        while chunk := proc.stdout.read1(16384):
            yield chunk
        t.join()
        if not failed.empty():
            raise failed.get()
    finally:
        stop.set()
        if proc.poll() is None:
            proc.kill()
        proc.wait()
