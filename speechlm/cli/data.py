"""``speechlm data ...``: corpora and manifests.

Each command is registered by one ``_add_<name>(sub)`` function listed in :data:`COMMANDS`; adding a
command is one more function and one more entry there. Nothing heavy is imported at module level.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

from speechlm.cli._common import add_command, add_group


def _langs(value: str) -> tuple[str, ...]:
    langs = tuple(p.strip() for p in value.split(",") if p.strip())
    if not langs:
        raise argparse.ArgumentTypeError("give comma-separated language codes, e.g. en,de,fr")
    return langs


# ------------------------------------------------------------------------------------------------------ synth


def _cmd_synth(args: argparse.Namespace) -> int:
    from pathlib import Path

    from speechlm.data.synth import SynthConfig, synthesize

    cfg = SynthConfig(
        out=Path(args.out),
        hours=args.hours,
        langs=args.langs,
        seed=args.seed,
        jobs=args.jobs,
        augment_prob=args.augment_prob,
        utts_per_speaker=args.utts_per_speaker,
        phonemes=args.phonemes,
        text_file=args.text_file,
    )
    res = synthesize(cfg, progress=not args.quiet)
    print(
        f"wrote {res.manifest} : {res.utterances} utterances, {res.seconds / 3600:.3f} h, "
        f"{res.speakers} speakers, {res.voices} voices"
    )
    for split in ("train", "valid", "test"):
        print(
            f"  {split:5s}: {res.seconds_per_split.get(split, 0) / 3600:.3f} h, "
            f"{res.speakers_per_split.get(split, 0)} speakers"
        )
    fails = sum(res.failures.values())
    print(
        f"failed utterances (skipped after a retry): {fails}"
        + (f" ({', '.join(f'{k}: {v}' for k, v in sorted(res.failures.items()))})" if fails else "")
    )
    print(
        f"wall time {res.wall_seconds:.1f} s with --jobs {cfg.jobs}: rendered "
        f"{res.rendered_seconds / 3600:.3f} h ({res.hours_per_wall_hour:.1f} h of audio per wall-clock hour)"
    )
    return 0


def _add_synth(sub: argparse._SubParsersAction) -> None:
    p = add_command(
        sub,
        "synth",
        "build a synthetic multi-voice, multi-language corpus (espeak-ng, flite, festival)",
        _cmd_synth,
        description=(
            "Synthesise real sentences (Debian fortunes, Fish Fillets dialogue, or --text-file) with "
            "many offline voices.\nWrites DIR/wavs/*.wav (16 kHz mono PCM16), DIR/manifest.jsonl and "
            "DIR/voices.json.\nA speaker is engine + voice + prosody setting; speakers are split "
            "train/valid/test by a seeded hash (~84/8/8),\nand some voices are always held out for "
            "test (see `speechlm data voices`). Same seed -> same corpus, whatever --jobs."
        ),
    )
    p.add_argument("--out", required=True, help="output folder (rerunning into it resumes)")
    p.add_argument(
        "--hours", type=float, required=True, help="total hours of audio, split evenly between languages"
    )
    p.add_argument(
        "--langs", type=_langs, required=True, help="comma-separated language codes, e.g. en,de,fr"
    )
    p.add_argument("--jobs", type=int, default=1, help="worker processes (default 1)")
    p.add_argument(
        "--seed", type=int, default=0, help="seed for sentences, speakers, splits and augmentation"
    )
    p.add_argument(
        "--augment-prob",
        type=float,
        default=0.3,
        help="fraction of utterances augmented (noise, reverb, band limit, gain; tagged) (default 0.3)",
    )
    p.add_argument(
        "--utts-per-speaker", type=int, default=6, help="utterances each drawn speaker says (default 6)"
    )
    p.add_argument(
        "--phonemes", action="store_true", help="fill the manifest's phonemes field (espeak-ng g2p)"
    )
    p.add_argument(
        "--text-file", help="use this file's lines (one sentence each) instead of the built-in text"
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")


# ----------------------------------------------------------------------------------------------------- voices


def _cmd_voices(args: argparse.Namespace) -> int:
    from collections import Counter

    from speechlm.data.voices import inventory

    langs = list(args.langs or ("en", "fr", "de", "es", "it", "ru", "cs", "fi"))
    rows = inventory(langs)
    print(f"{'engine':10s} {'voice':26s} {'lang':4s} {'gender':8s} {'speakers':>8s}  held-out")
    for r in rows:
        print(
            f"{r['engine']:10s} {r['voice']:26s} {r['lang']:4s} {r['gender']:8s} {r['speakers']:8d}  "
            f"{'test only' if r['held_out'] else ''}"
        )
    per = Counter((r["engine"], r["lang"]) for r in rows)
    spk = Counter()
    for r in rows:
        spk[(r["engine"], r["lang"])] += r["speakers"]
    print("\nper engine and language: voices / speakers")
    for (engine, lang), n in sorted(per.items()):
        print(f"  {engine:10s} {lang:4s} {n:4d} / {spk[(engine, lang)]}")
    print(f"total: {len(rows)} voices, {sum(spk.values())} speakers")
    return 0


def _add_voices(sub: argparse._SubParsersAction) -> None:
    p = add_command(
        sub, "voices", "list the installed synthesizer voices the synthetic corpus uses", _cmd_voices
    )
    p.add_argument(
        "--langs", type=_langs, help="comma-separated language codes (default en,fr,de,es,it,ru,cs,fi)"
    )


# ------------------------------------------------------------------------------------------------------ stats


def _cmd_stats(args: argparse.Namespace) -> int:
    from pathlib import Path

    from speechlm.data.stats import compute_stats, format_stats, plot_duration_histogram

    st = compute_stats(args.manifest)
    print(format_stats(st))
    if not args.no_plot:
        plot = Path(args.plot) if args.plot else Path(args.manifest).with_suffix(".durations.png")
        plot_duration_histogram(st, plot)
        print(f"duration histogram: {plot}")
    if args.check_splits and st.overlap_total:
        print("speechlm: error: speakers occur in more than one split", file=sys.stderr)
        return 3
    return 0


def _add_stats(sub: argparse._SubParsersAction) -> None:
    p = add_command(
        sub, "stats", "hours, speakers, languages and a duration histogram of a manifest", _cmd_stats
    )
    p.add_argument("manifest", help="manifest.jsonl")
    p.add_argument("--plot", help="duration histogram PNG (default: MANIFEST with .durations.png)")
    p.add_argument("--no-plot", action="store_true", help="do not write the PNG")
    p.add_argument(
        "--check-splits",
        action="store_true",
        help="exit non-zero (3) if any speaker occurs in more than one split",
    )


def _register_import(sub: argparse._SubParsersAction) -> None:
    from speechlm.cli.data_import import add_import  # `speechlm data import` lives in its own module

    add_import(sub)


def _register_pipeline(sub: argparse._SubParsersAction) -> None:
    from speechlm.cli.data_pipeline import add_pipeline  # `speechlm data pipeline` lives in its own module

    add_pipeline(sub)


COMMANDS: list[Callable[[argparse._SubParsersAction], None]] = [
    _add_synth,
    _add_voices,
    _add_stats,
    _register_import,
    _register_pipeline,
]


def register(sub: argparse._SubParsersAction) -> None:
    _, dsub = add_group(sub, "data", "corpora and manifests: synthesise, inspect")
    for add in COMMANDS:
        add(dsub)
