"""``speechlm asr``: train the CTC recogniser, transcribe, force-align, score it on a manifest."""

from __future__ import annotations

import argparse
import json
import sys

from speechlm.cli._common import add_command, add_group, check_output_file


def register(sub: argparse._SubParsersAction) -> None:
    _, cmds = add_group(
        sub,
        "asr",
        "CTC speech recognition and forced alignment",
        description="A small conformer CTC model with IPA-phoneme and character outputs: "
        "transcription for WER, and the forced aligner (phone and word spans).",
    )

    p = add_command(
        cmds,
        "train",
        "train the CTC model on manifests",
        _train,
        description=(
            "Train the conformer CTC model on the 'train' split of one or more manifests (scored on\n"
            "'valid'). Log-mels of the corpus (plus augmented copies) are computed into memory first.\n"
            "Checkpoints go to OUT/checkpoints (a rerun resumes); the model is exported to OUT/final.\n\n"
            "example: speechlm asr train --config configs/asr/default.yaml \\\n"
            "           --data corpus/manifest.jsonl --out runs/asr"
        ),
    )
    p.add_argument("--config", help="recipe YAML (configs/asr/tiny.yaml, configs/asr/default.yaml)")
    p.add_argument(
        "--data", action="append", required=True, metavar="MANIFEST", help="JSONL manifest (repeatable)"
    )
    p.add_argument("--out", required=True, metavar="DIR", help="run folder")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config value, e.g. --set optim.max_minutes=10 (repeatable)",
    )

    p = add_command(
        cmds,
        "transcribe",
        "transcribe audio files",
        _transcribe,
        description=(
            "Print one line per file: the recognised text (lower case, no punctuation), or with\n"
            "--phonemes the recognised IPA phones.\n\nexample: speechlm asr transcribe speech.wav"
        ),
    )
    p.add_argument("inputs", nargs="+", metavar="IN", help="audio files (any rate; resampled to 16 kHz)")
    p.add_argument("--model", default=None, help="checkpoint folder (default: the shipped model)")
    p.add_argument("--phonemes", action="store_true", help="print IPA phones instead of text")

    p = add_command(
        cmds,
        "align",
        "force-align a transcript to audio (phone and word spans)",
        _align,
        description=(
            "CTC Viterbi forced alignment of TEXT (phonemized with espeak-ng for --lang) to the audio.\n"
            "Prints (or writes with -o) JSON: phones [{label, start_s, end_s}], words [{word, start_s,\n"
            "end_s}], frame_rate, n_frames, score (mean log-prob per frame; below about -1.5 suggests a\n"
            "wrong transcript).\n\n"
            'example: speechlm asr align speech.wav --text "hello world" --lang en -o spans.json'
        ),
    )
    p.add_argument("input", metavar="IN", help="audio file")
    p.add_argument("--text", required=True, help="the transcript")
    p.add_argument("--lang", default="en", help="espeak-ng language code (default en)")
    p.add_argument("--model", default=None, help="checkpoint folder (default: the shipped model)")
    p.add_argument("-o", "--output", default=None, metavar="JSON", help="write the alignment here")

    p = add_command(
        cmds,
        "eval",
        "score the model on a manifest split (PER, WER, CER, speed)",
        _eval,
        description=(
            "Transcribe the utterances of one split of a manifest and report phone error rate (against the\n"
            "espeak-ng phonemes), WER and CER (jiwer, normalised text), and the real-time factor.\n\n"
            "example: speechlm asr eval --data corpus/manifest.jsonl --split test --max-utts 100"
        ),
    )
    p.add_argument("--data", required=True, metavar="MANIFEST")
    p.add_argument("--split", default="test", help="split to score (default test; 'all' for every line)")
    p.add_argument("--max-utts", type=int, default=0, help="score at most this many (0 = all)")
    p.add_argument("--model", default=None, help="checkpoint folder (default: the shipped model)")
    p.add_argument("--threads", type=int, default=1, help="torch intra-op threads (default 1: on a busy "
                   "machine 2 threads can be 20x slower than 1)")
    p.add_argument(
        "-o",
        "--output",
        default=None,
        metavar="JSON",
        help="write the report (and per-utterance results) here",
    )


def _train(args: argparse.Namespace) -> int:
    from speechlm.asr.train import ASRTrainConfig, train
    from speechlm.train.config import load_config

    cfg = load_config(args.config, ASRTrainConfig, args.set)
    out = train(cfg, args.data, args.out)
    print(out)
    return 0


def _transcribe(args: argparse.Namespace) -> int:
    from speechlm.asr.transcriber import SAMPLE_RATE, get_transcriber
    from speechlm.audio.io import load_audio

    tr = get_transcriber(args.model)
    for path in args.inputs:
        wav, sr = load_audio(path, sr=SAMPLE_RATE)
        out = " ".join(tr.phonemes(wav[0])) if args.phonemes else tr.transcribe(wav[0])
        print(out if len(args.inputs) == 1 else f"{path}\t{out}")
    return 0


def _align(args: argparse.Namespace) -> int:
    from speechlm.asr.transcriber import SAMPLE_RATE, get_transcriber
    from speechlm.audio.io import load_audio
    from speechlm.errors import SpeechLMError
    from speechlm.utils.atomic import atomic_write_text

    if not args.text.strip():
        raise SpeechLMError("--text is empty")
    if args.output:
        check_output_file(args.output, "json")
    tr = get_transcriber(args.model)
    wav, _ = load_audio(args.input, sr=SAMPLE_RATE)
    al = tr.align(wav[0], args.text, args.lang)
    text = al.to_json()
    if args.output:
        atomic_write_text(args.output, text + "\n")
    else:
        print(text)
    return 0


def _eval(args: argparse.Namespace) -> int:
    from speechlm.asr.evaluate import evaluate_manifest
    from speechlm.utils.atomic import atomic_write_text

    if args.output:
        check_output_file(args.output, "json")
    report = evaluate_manifest(
        args.data, split=args.split, max_utts=args.max_utts, model=args.model, threads=args.threads
    )
    summary = {k: v for k, v in report.items() if k != "utterances"}
    print(json.dumps(summary, indent=1, ensure_ascii=False))
    if args.output:
        atomic_write_text(args.output, json.dumps(report, indent=1, ensure_ascii=False) + "\n")
    sys.stdout.flush()
    return 0
