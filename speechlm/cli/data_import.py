"""``speechlm data import``: a corpus the user owns -> a validated JSONL manifest.

Kept in its own module (registered from :mod:`speechlm.cli.data`'s ``COMMANDS``) so the data group's other
commands and this one can change independently. Nothing heavy is imported at module level.
"""

from __future__ import annotations

import argparse
import sys

from speechlm.cli._common import add_command

_DEFAULTS = (
    "defaults: duration 0.3–30 s, sample rate 8–192 kHz, at most 30 transcript characters a second of audio "
    "(some Debian formats have their own duration defaults)"
)


def _cmd_import(args: argparse.Namespace) -> int:
    import time
    from dataclasses import replace
    from pathlib import Path

    from speechlm.data import debian_speech
    from speechlm.data.readers import (
        ImportOptions,
        ValidationLimits,
        read_candidates,
        validate_candidates,
        write_import,
    )

    t0 = time.perf_counter()
    out = Path(args.out)
    copy_to = Path(args.copy_audio_to) if args.copy_audio_to else None
    opts = ImportOptions(
        src=Path(args.src) if args.src else None,
        lang=args.lang,
        split=args.split,
        speaker_from_dir=args.speaker_from_dir,
        speaker=args.speaker,
        transcripts=Path(args.transcripts) if args.transcripts else None,
        copy_audio_to=copy_to,
    )
    limits = debian_speech.DEFAULT_LIMITS.get(args.format, ValidationLimits())
    overrides = {
        k: v
        for k, v in (
            ("min_duration", args.min_duration),
            ("max_duration", args.max_duration),
            ("min_sample_rate", args.min_sample_rate),
            ("max_sample_rate", args.max_sample_rate),
            ("max_chars_per_second", args.max_chars_per_second),
        )
        if v is not None
    }
    if args.allow_empty_text:
        overrides["allow_empty_text"] = True
    limits = replace(limits, **overrides)
    candidates = read_candidates(args.format, opts)
    result = validate_candidates(
        candidates, out.resolve().parent, limits, copy_audio_to=copy_to, progress=not args.quiet
    )
    print(result.summary())
    manifest, skipped = write_import(result, out)
    splits: dict[str, int] = {}
    for u in result.utterances:
        splits[u.split] = splits.get(u.split, 0) + 1
    print(
        f"wrote {manifest} ({', '.join(f'{k}: {v}' for k, v in sorted(splits.items()))}); "
        f"skipped list: {skipped} ({time.perf_counter() - t0:.1f} s)"
    )
    if result.skipped and args.verbose:
        for s in result.skipped:
            print(f"  skipped {s.id}: {s.reason}{' - ' + s.detail if s.detail else ''}", file=sys.stderr)
    return 0


def add_import(sub: argparse._SubParsersAction) -> None:
    from speechlm.data.readers import FORMATS

    formats = "\n".join(f"  {name:22s} {help_}" for name, (_, help_) in FORMATS.items())
    p = add_command(
        sub,
        "import",
        "import a corpus you own (folder, LibriTTS, LJSpeech, VCTK, Emilia, Lhotse, Debian speech)",
        _cmd_import,
        description=(
            "Read a corpus, open every audio file (header + a short read), write a validated JSONL "
            "manifest.\nRejected utterances (missing/unreadable audio, empty transcript, too short/long, "
            "sample rate out of range,\nduplicate id, ...) are counted by reason and listed in "
            "OUT.skipped.jsonl. Exits non-zero (writing nothing)\nwhen nothing is imported. "
            "LibriTTS/LJSpeech/VCTK/Emilia are read by lhotse.recipes.prepare_* (pip install lhotse).\n"
            "Audio that is not wav/flac/ogg/mp3/opus (raw PCM, raw GSM) is converted to WAV in OUT's "
            "folder/audio/.\n\nFormats:\n"
            + formats
            + "\n\nHeld-out formats always write split=test and tags {heldout: true, source: ...}: never "
            "train on them.\nDebian formats default --src to the package's install folder "
            "(scripts/get_real_speech.sh installs them)."
        ),
    )
    p.add_argument(
        "--format",
        required=True,
        choices=list(FORMATS),
        metavar="FORMAT",
        help="corpus layout (see the list above)",
    )
    p.add_argument(
        "--src", help="corpus folder or manifest file (Debian formats: defaults to the install folder)"
    )
    p.add_argument(
        "--out", required=True, help="manifest to write (JSONL); OUT.skipped.jsonl lists rejections"
    )
    p.add_argument(
        "--lang",
        help="language code (overrides the corpus'; folder default 'und'; "
        "fillets: cs|nl; asterisk-core: en|fr|es|it)",
    )
    p.add_argument(
        "--split",
        choices=["train", "valid", "test"],
        help="split for every utterance (default: the corpus' own, else train)",
    )
    p.add_argument(
        "--speaker-from-dir",
        action="store_true",
        help="folder format: speaker = the audio file's parent folder name",
    )
    p.add_argument(
        "--speaker", help="folder format: speaker when not --speaker-from-dir (default: --src's name)"
    )
    p.add_argument(
        "--copy-audio-to",
        metavar="DIR",
        help="copy kept audio to DIR (<id><ext>) and point the manifest there; Lhotse cuts that are "
        "segments of a longer recording are cut out to DIR",
    )
    p.add_argument(
        "--transcripts",
        metavar="PATH",
        help="asterisk formats: core-sounds-LANG.txt[.gz] or a folder holding it",
    )
    g = p.add_argument_group("validation limits", _DEFAULTS)
    g.add_argument("--min-duration", type=float, help="seconds (default 0.3)")
    g.add_argument("--max-duration", type=float, help="seconds (default 30)")
    g.add_argument("--min-sample-rate", type=int, help="Hz (default 8000)")
    g.add_argument("--max-sample-rate", type=int, help="Hz (default 192000)")
    g.add_argument(
        "--max-chars-per-second",
        type=float,
        help="reject a transcript longer than this many characters per second of audio (default 30)",
    )
    g.add_argument(
        "--allow-empty-text",
        action="store_true",
        help="keep utterances without a transcript (codec evaluation sets)",
    )
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.add_argument("-v", "--verbose", action="store_true", help="print every skipped utterance to stderr")
