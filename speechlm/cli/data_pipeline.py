"""``speechlm data pipeline RAW... -o OUT/``: in-the-wild audio to a training set (speechlm.pipeline)."""

from __future__ import annotations

import argparse
import sys

from speechlm.cli._common import add_command


def _cmd_pipeline(args: argparse.Namespace) -> int:
    import logging

    from speechlm.errors import SpeechLMError
    from speechlm.pipeline.config import PipelineConfig
    from speechlm.pipeline.runner import check_inputs

    check_inputs(args.inputs, args.out)  # before any heavy import or model load
    if args.workers < 1:
        raise SpeechLMError(f"--workers must be >= 1, not {args.workers}")
    if args.ray_address and args.backend == "local":
        raise SpeechLMError("--ray-address needs the ray backend")
    cfg = PipelineConfig.load(args.config) if args.config else PipelineConfig()
    if args.lang is not None:
        if args.lang != "auto" and not args.lang.replace("-", "").isalpha():
            raise SpeechLMError(f"--lang must be auto or a language code, not {args.lang!r}")
        cfg = cfg.with_(lang=args.lang)
    if args.asr is not None:
        cfg = cfg.with_(asr=args.asr)
    if args.denoiser == "none":
        cfg = cfg.with_(denoise=False)
    elif args.denoiser is not None:
        cfg = cfg.with_(denoise=True, denoiser=args.denoiser)
    if cfg.lang != "auto" and cfg.asr.startswith("whisper-"):
        from speechlm.eval.whisper import whisper_language

        whisper_language(cfg.lang, cfg.asr.endswith(".en"))  # an unknown code is a one-line error now
    if args.backend == "ray":
        try:
            import ray  # noqa: F401
        except ImportError:
            raise SpeechLMError(
                "the pipeline runs on Ray: pip install 'speechlm[pipeline]' (or --backend local)") from None
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")

    from speechlm.pipeline.export import format_report
    from speechlm.pipeline.runner import run_pipeline

    report = run_pipeline(args.inputs, args.out, cfg, backend=args.backend, workers=args.workers,
                          ray_address=args.ray_address, progress=not args.quiet)
    print(format_report(report))
    for src, msg in report["failed_inputs"].items():
        print(f"speechlm: error: {src}: {msg}", file=sys.stderr)
    return 1 if report["failed_inputs"] else 0


def add_pipeline(sub: argparse._SubParsersAction) -> None:
    p = add_command(
        sub, "pipeline", "raw in-the-wild audio -> segmented, transcribed, filtered, tagged corpus (Emilia-style)",
        _cmd_pipeline,
        description=(
            "Stages per input: standardise (ffmpeg, 16 kHz mono, loudness) -> denoise -> VAD -> diarise -> "
            "3-30 s single-speaker\nutterances -> language id + ASR (Whisper) -> quality gates (DNSMOS, SNR, "
            "clipping, confidence) -> style tags\nand a description. Writes OUT/manifest.jsonl, OUT/cuts.jsonl.gz "
            "(Lhotse), OUT/shards/*.tar (WebDataset) and\n*.parquet, OUT/report.json, OUT/index.html (open it "
            "to listen to what was kept); segment audio\nunder OUT/audio/. Resumable: re-running skips finished "
            "inputs and stages (OUT/work/). Runs on Ray:\nlocal with --workers N, a cluster with --ray-address "
            "(inputs and OUT on shared storage).\n\n"
            "  speechlm data pipeline podcasts/*.mp3 -o corpus/ --workers 2\n"
            "  speechlm data pipeline talk.wav -o corpus/ --lang en --config my_thresholds.yaml"
        ),
    )
    p.add_argument("inputs", nargs="+", metavar="RAW", help="audio files (anything ffmpeg reads, any length)")
    p.add_argument("-o", "--out", required=True, help="output folder (created; re-running into it resumes)")
    p.add_argument("--workers", type=int, default=1, help="parallel workers (Ray CPUs; default 1)")
    p.add_argument("--ray-address", default=None, metavar="ADDR",
                   help="join a running Ray cluster (e.g. ray://head:10001 or auto) instead of a local one")
    p.add_argument("--backend", choices=("ray", "local"), default="ray",
                   help="ray (default) or local: the same per-input code in a pool of --workers processes")
    p.add_argument("--lang", default=None, help="auto (identify per utterance; default) or a language code")
    p.add_argument("--asr", default=None, choices=("whisper-base", "whisper-tiny.en", "none"),
                   help="recogniser (default whisper-base; tiny.en is ~3x faster, English only)")
    from speechlm.pipeline.config import DENOISER_CHOICES

    p.add_argument("--denoiser", default=None, choices=(*DENOISER_CHOICES, "none"),
                   help="music/noise removal (default from the config: deepfilternet3); speechlm: the 16-kHz "
                        "enhancer trained here, many times faster; none: off")
    p.add_argument("--config", default=None, metavar="F",
                   help="YAML/JSON file of settings (see speechlm.pipeline.config.PipelineConfig)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
