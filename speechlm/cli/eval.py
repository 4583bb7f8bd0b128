"""``speechlm eval``: score generated or processed speech and write a JSON / Markdown / HTML report."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from speechlm.cli._common import add_command, add_group

_REPORT_HELP = """
Outputs (in --out, written atomically): report.json (every number), report.md (summary + per-utterance
tables), report.html (one self-contained page: summary with bootstrap 95% CIs, per-utterance rows, embedded
audio players and spectrograms for the first --max-media utterances).
"""


def _common(p: argparse.ArgumentParser, default_out: str) -> None:
    p.add_argument("--out", "-o", default=default_out, help=f"report folder (default {default_out})")
    p.add_argument(
        "--workers",
        "-j",
        type=int,
        default=None,
        help="worker processes (default: the CPUs available, at most 8)",
    )
    p.add_argument(
        "--speaker-model",
        default=None,
        metavar="PATH",
        help="speaker embedder: .onnx, .safetensors (GE2E weights) or TorchScript .pt "
        "(default: resemblyzer's shipped encoder)",
    )
    p.add_argument(
        "--max-media",
        type=int,
        default=40,
        metavar="N",
        help="embed audio players and spectrograms for the first N utterances (default 40)",
    )
    p.add_argument(
        "--skip",
        default="",
        metavar="GROUPS",
        help="comma-separated metric groups to skip (see the command description)",
    )
    p.add_argument(
        "--bootstrap", type=int, default=1000, metavar="N", help="bootstrap resamples (default 1000)"
    )
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")


def _groups(all_groups: tuple[str, ...], skip: str) -> list[str]:
    from speechlm.errors import SpeechLMError

    skipped = [s.strip() for s in skip.split(",") if s.strip()]
    bad = [s for s in skipped if s not in all_groups]
    if bad:
        raise SpeechLMError(f"--skip: unknown group(s) {', '.join(bad)}; choose from {', '.join(all_groups)}")
    kept = [g for g in all_groups if g not in skipped]
    if not kept:
        raise SpeechLMError("--skip leaves no metric to compute")
    return kept


def _workers(args) -> int:
    from speechlm.errors import SpeechLMError
    from speechlm.eval.runner import default_workers

    if args.workers is None:
        return default_workers()
    if args.workers < 1:
        raise SpeechLMError("--workers must be >= 1")
    return args.workers


def _finish(report, args) -> int:
    written = report.write(args.out, max_media=args.max_media)
    for r in report.summary:
        ci = f"[{r.low:.4g}, {r.high:.4g}]"
        print(f"{r.key:>14s}  {r.value:10.4g}  {ci:>22s}  n={r.n}")
    failed = int(report.meta.get("failed", 0)) + int(report.meta.get("missing", 0))
    if failed:
        print(f"warning: {failed} utterance(s) not scored (see the report)", file=sys.stderr)
    print(
        f"{report.meta.get('utterances')} utterances in {report.meta.get('seconds')} s; "
        f"report: {', '.join(str(p) for p in written.values())}",
        file=sys.stderr,
    )
    return 0


def _read_pairs(ref: str, deg: str | None) -> tuple[list[str], list[str], list[str]]:
    from speechlm.errors import SpeechLMError
    from speechlm.eval.pairs import AUDIO_EXTS, find_audio

    r = Path(ref)
    if deg is None:  # a list file: "REF DEG" per line (tab or spaces), paths relative to the list's folder
        if not r.is_file():
            raise SpeechLMError(f"pair list {r} does not exist")
        refs, degs = [], []
        for n, line in enumerate(r.read_text(encoding="utf-8").splitlines(), 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            parts = line.split("\t") if "\t" in line else line.split()
            if len(parts) != 2:
                raise SpeechLMError(
                    f"{r}:{n}: expected two paths (reference, degraded), got {len(parts)} fields"
                )
            a, b = (Path(p) if Path(p).is_absolute() else r.parent / p for p in parts)
            refs.append(str(a))
            degs.append(str(b))
        if not refs:
            raise SpeechLMError(f"pair list {r} has no pairs")
        ids = [Path(a).stem for a in refs]
        if len(set(ids)) != len(ids):
            ids = [f"{i:05d}_{s}" for i, s in enumerate(ids)]
        return refs, degs, ids
    d = Path(deg)
    if r.is_dir() and d.is_dir():
        refs, degs = [], []
        for p in sorted(r.iterdir()):
            if p.suffix.lower() in AUDIO_EXTS:
                q = find_audio(d, p.stem)
                if q is not None:
                    refs.append(str(p))
                    degs.append(str(q))
        if not refs:
            raise SpeechLMError(f"no audio file names match between {r} and {d}")
        return refs, degs, [Path(p).stem for p in refs]
    for p in (r, d):
        if not p.is_file():
            raise SpeechLMError(f"{p} does not exist (give two files, two folders, or one pair list)")
    return [str(r)], [str(d)], [r.stem]


def cmd_pairs(args) -> int:
    from speechlm.eval.pairs import PAIR_GROUPS, evaluate_pairs

    refs, degs, ids = _read_pairs(args.ref, args.deg)
    report = evaluate_pairs(
        refs,
        degs,
        sr=args.sr,
        ids=ids,
        groups=_groups(PAIR_GROUPS, args.skip),
        speaker_model=args.speaker_model,
        workers=_workers(args),
        title=f"Pair evaluation: {Path(args.ref).name}",
        n_resamples=args.bootstrap,
        seed=args.seed,
    )
    return _finish(report, args)


def cmd_codec(args) -> int:
    from speechlm.eval.pairs import PAIR_GROUPS, evaluate_codec

    report = evaluate_codec(
        args.manifest,
        args.decoded,
        split=args.split,
        limit=args.limit,
        sr=args.sr,
        groups=_groups(PAIR_GROUPS, args.skip),
        speaker_model=args.speaker_model,
        workers=_workers(args),
        n_resamples=args.bootstrap,
        seed=args.seed,
    )
    return _finish(report, args)


def cmd_tts(args) -> int:
    from speechlm.eval.tts import TTS_GROUPS, evaluate_tts

    report = evaluate_tts(
        args.manifest,
        args.generated,
        asr=args.asr,
        asr_model=args.asr_model,
        prompts_dir=args.prompts,
        groups=_groups(TTS_GROUPS, args.skip),
        speaker_model=args.speaker_model,
        split=args.split,
        lang=args.lang,
        limit=args.limit,
        workers=_workers(args),
        n_resamples=args.bootstrap,
        seed=args.seed,
    )
    return _finish(report, args)


def register(sub: argparse._SubParsersAction) -> None:
    _, cmds = add_group(
        sub, "eval", "evaluate speech: WER, speaker similarity, DNSMOS, PESQ/STOI/SI-SDR, MCD, F0"
    )

    p = add_command(
        cmds,
        "pairs",
        "score degraded audio against references (sample-aligned)",
        cmd_pairs,
        description="Score REF/DEG pairs: one pair of files, two folders matched by file name, or one "
        "list file (two paths per line, relative to the list) given alone.\n"
        "Metric groups: signal (PESQ wb@16k/nb@8k, STOI, SI-SDR capped at 100 dB, "
        "log-mel L1), cepstral (MCD, F0 RMSE, voicing error), speaker (resemblyzer cosine), "
        "mos (DNSMOS of DEG).\nBoth signals are resampled to --sr and trimmed to the "
        "shorter one." + _REPORT_HELP,
    )
    p.add_argument("ref", help="reference file, folder, or a pair list")
    p.add_argument("deg", nargs="?", default=None, help="degraded file or folder (omit with a pair list)")
    p.add_argument(
        "--sr",
        type=int,
        default=16000,
        choices=(8000, 16000),
        help="evaluation rate: 16000 (PESQ wide-band, default) or 8000 (narrow-band)",
    )
    _common(p, "eval_pairs")

    p = add_command(
        cmds,
        "codec",
        "score a folder of decoded files against a manifest's audio",
        cmd_codec,
        description="Pairs of each manifest utterance's audio and DECODED/<id>.wav "
        "(.flac/.ogg/.opus/.mp3 also found); same metric groups as 'eval pairs'." + _REPORT_HELP,
    )
    p.add_argument("--manifest", "-m", required=True, help="JSONL manifest of the reference audio")
    p.add_argument("--decoded", "-d", required=True, help="folder of decoded files named by utterance id")
    p.add_argument("--split", default=None, help="only this split (train/valid/test)")
    p.add_argument("--limit", type=int, default=None, help="only the first N selected utterances")
    p.add_argument(
        "--sr", type=int, default=16000, choices=(8000, 16000), help="evaluation rate (default 16000)"
    )
    _common(p, "eval_codec")

    p = add_command(
        cmds,
        "tts",
        "score generated speech: WER/CER, speaker similarity, DNSMOS, MCD/F0",
        cmd_tts,
        description="Score GENERATED/<id>.wav for each manifest utterance.\nMetric groups: asr "
        "(WER/CER of the --judge transcript vs the manifest text), speaker (cosine to the "
        "prompt: --prompts DIR/<id>.wav, else tags.prompt, else the reference audio), mos "
        "(DNSMOS), cepstral (MCD and F0 RMSE/voicing error vs the reference, after DTW).\n"
        "ASR judges (--judge): whisper-base (default; Whisper base from PyPI, hash-verified, "
        "never downloaded), whisper-tiny.en (English only, faster), pocketsphinx (shipped en-US "
        "model; English only), ctc (speechlm's CTC model; --asr-model DIR or the shipped one), "
        "whisper (a local faster-whisper folder given with --asr-model)." + _REPORT_HELP,
    )
    p.add_argument(
        "--manifest", "-m", required=True, help="JSONL manifest with the texts (and reference audio)"
    )
    p.add_argument("--generated", "-g", required=True, help="folder of generated files named by utterance id")
    p.add_argument(
        "--judge",
        "--asr",
        dest="asr",
        default="whisper-base",
        choices=("whisper-base", "whisper-tiny.en", "pocketsphinx", "ctc", "whisper"),
        help="ASR judge of WER/CER (default whisper-base; --asr is the older spelling)",
    )
    p.add_argument("--asr-model", default=None, metavar="DIR", help="model folder for --judge ctc / whisper")
    p.add_argument("--prompts", default=None, metavar="DIR", help="voice prompts named by utterance id")
    p.add_argument("--split", default=None, help="only this split (train/valid/test)")
    p.add_argument("--lang", default=None, help="only utterances of this language")
    p.add_argument("--limit", type=int, default=None, help="only the first N selected utterances")
    _common(p, "eval_tts")
