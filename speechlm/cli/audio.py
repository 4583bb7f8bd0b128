"""``speechlm audio ...``: inspect and convert audio files (load, validate, atomic save)."""

from __future__ import annotations

import argparse
import json

from speechlm.cli._common import add_command, add_group

_LIMITS = """\
limits (a one-line error, exit status 2 and no output file otherwise):
  sample rate 8-192 kHz; 1-8 channels; at most --max-seconds (default 3 h = 10800 s);
  finite samples (no NaN/Inf); at least one sample; a readable header of a known format.
formats: WAV, FLAC, OGG (Vorbis/Opus), MP3, AIFF, AU, CAF, W64 through libsndfile; anything else that
  ffmpeg decodes (M4A/AAC, WebM, WMA, AMR, ...) when ffmpeg is installed. The -o extension picks the output
  format."""


def register(sub: argparse._SubParsersAction) -> None:
    _, cmds = add_group(sub, "audio", help="inspect and convert audio files",
                        description="Inspect and convert audio files.\n\n" + _LIMITS)

    p = add_command(cmds, "info", help="print format, rate, channels, duration, peak and RMS of a file",
                    func=_info,
                    description="Decode IN fully, validate it, and print what it holds.\n\n" + _LIMITS)
    p.add_argument("input", metavar="IN", help="audio file")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of aligned text")
    p.add_argument("--max-seconds", type=float, default=None,
                   help="refuse longer files (default 10800 = 3 h)")

    p = add_command(cmds, "convert", help="load, validate, resample/remix and save atomically", func=_convert,
                    description="Load IN, validate it, optionally resample and change the channel count, and "
                                "write OUT atomically (nothing is written if any step fails). Samples beyond "
                                "[-1, 1] are clipped (with a warning) for integer and lossy formats.\n\n"
                                + _LIMITS)
    p.add_argument("input", metavar="IN", help="audio file")
    p.add_argument("-o", "--output", required=True, metavar="OUT",
                   help="output file: .wav .flac .ogg .opus .mp3 .aiff .au .caf .w64")
    p.add_argument("--sr", type=int, default=None, help="resample to this rate in Hz (soxr); default: keep")
    p.add_argument("--channels", type=int, default=None,
                   help="1 = downmix to mono, N = copy a mono file to N channels; default: keep")
    p.add_argument("--subtype", default="PCM_16",
                   help="sample format for lossless outputs: PCM_16 (default), PCM_24, PCM_32, FLOAT")
    p.add_argument("--max-seconds", type=float, default=None,
                   help="refuse longer inputs (default 10800 = 3 h)")


def _max_seconds(args: argparse.Namespace) -> float:
    from speechlm.audio.validate import MAX_SECONDS
    from speechlm.errors import SpeechLMError

    if args.max_seconds is None:
        return MAX_SECONDS
    if not args.max_seconds > 0:
        raise SpeechLMError(f"--max-seconds must be positive, got {args.max_seconds}")
    return args.max_seconds


def _info(args: argparse.Namespace) -> int:
    import numpy as np

    from speechlm.audio.io import audio_info, load_audio

    info = audio_info(args.input)
    wav, sr = load_audio(args.input, sr=None, channels=None, max_seconds=_max_seconds(args))
    peak = float(np.abs(wav).max())
    rms = float(np.sqrt(np.mean(np.square(wav, dtype=np.float64))))

    def db(v: float) -> float | None:
        return round(20 * np.log10(v), 2) if v > 0 else None

    out = {
        "path": info.path, "format": info.format, "subtype": info.subtype, "backend": info.backend,
        "sample_rate": sr, "channels": int(wav.shape[0]), "frames": int(wav.shape[1]),
        "duration": round(wav.shape[1] / sr, 6), "peak": round(peak, 6), "peak_dbfs": db(peak),
        "rms": round(rms, 6), "rms_dbfs": db(rms),
    }
    if args.json:
        print(json.dumps(out))
    else:
        width = max(map(len, out))
        for k, v in out.items():
            print(f"{k:<{width}}  {'-inf' if v is None else v}")
    return 0


def _convert(args: argparse.Namespace) -> int:
    from speechlm.audio.io import load_audio, save_audio
    from speechlm.cli._common import check_output_file

    check_output_file(args.output, "audio")

    wav, sr = load_audio(args.input, sr=args.sr, channels=args.channels, max_seconds=_max_seconds(args))
    # Clipping is reported by save_audio as a logging warning (one stderr line).
    save_audio(args.output, wav, sr, subtype=args.subtype)
    print(f"{args.output}: {wav.shape[0]} ch, {sr} Hz, {wav.shape[1] / sr:.3f} s")
    return 0
