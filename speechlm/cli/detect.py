"""``speechlm detect FILE [--json]``: is this speech synthetic? A score per file and per 2-s segment."""

from __future__ import annotations

import argparse
import json

EPILOG = """\
The score is the detector's probability that the speech was made by a synthesizer, vocoder or speech codec
(speechlm's TTS and codecs, espeak-ng, flite, Piper, ...) rather than recorded from a person; `label` is
"synthetic" when it reaches the model's threshold. A person through a telephone line, Opus or MP3 is human.
The shipped model averages small networks over 2-s segments with a regression on whole-clip statistics, for the
file and for each segment; a segment at or above the threshold is where the generated speech likely is.
Train your own with `speechlm detector build`, `train` and `combine`; measured quality: docs/safety.md.

  speechlm detect speech.wav
  speechlm detect speech.wav --json     # {"synthetic_score": 0.97, "label": "synthetic", "segments": [...], ...}
"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("detect", help="score a file as synthetic or human speech (per file and per 2-s segment)",
                       description=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("file", help="audio file (any format speechlm reads)")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.add_argument("--model", default=None, help="detector name or checkpoint folder (default: detector_default)")
    p.add_argument("--threshold", type=float, default=None, help="override the model's threshold (0-1)")
    p.set_defaults(func=_detect, group_parser=p)


def _detect(args: argparse.Namespace) -> int:
    from speechlm.cli._common import check_input_file
    from speechlm.errors import SpeechLMError

    check_input_file(args.file, "audio")
    if args.threshold is not None and not 0.0 <= args.threshold <= 1.0:
        raise SpeechLMError(f"--threshold must be within [0, 1], got {args.threshold}")
    from speechlm.audio.io import load_audio
    from speechlm.safety.detector import Detector, resolve_model_dir

    resolve_model_dir(args.model)  # a missing model: one line, before the audio is decoded
    wav, sr = load_audio(args.file)
    import torch

    torch.set_num_threads(1)
    det = Detector.load(args.model)
    r = det.score_wav(wav, sr)
    if args.threshold is not None:
        r = type(r)(r.synthetic_score, "synthetic" if r.synthetic_score >= args.threshold else "human",
                    args.threshold, r.duration, r.segments, r.model)
    if args.json:
        print(json.dumps(r.to_dict()))
        return 0
    print(f"{args.file}: {r.label} (synthetic score {r.synthetic_score:.3f}, threshold {r.threshold:.3f}; "
          f"{r.duration:.1f} s after trimming silence; model {r.model})")
    for s in r.segments:
        print(f"  {s.start:7.2f}-{s.end:7.2f} s  {s.synthetic_score:.3f}")
    return 0
