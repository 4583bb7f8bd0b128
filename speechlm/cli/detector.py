"""``speechlm detector build|train``: make the synthetic-speech detector's corpus and train the detector.

(``speechlm detect FILE`` judges a file: :mod:`speechlm.cli.detect`.)
"""

from __future__ import annotations

import argparse

from speechlm.cli._common import add_command, add_group


def register(sub: argparse._SubParsersAction) -> None:
    _, cmds = add_group(
        sub, "detector", help="build the synthetic-speech detector's corpus and train it",
        description="  speechlm detector build --real data/real -o runs/detect/corpus   # ~20 min on one core\n"
        "  speechlm detector train runs/detect/corpus -o runs/detect/model --minutes 15\n"
        "  speechlm detector combine runs/detect/s0 runs/detect/s1 --corpus runs/detect/corpus -o runs/detect/ens\n"
        "  speechlm detect FILE --model runs/detect/model")
    p = add_command(cmds, "build", "render and read the corpus (human recordings, synthesizers, speechlm's TTS "
                    "and codecs) into OUT/<source>.npz", _build)
    p.add_argument("--real", default="data/real", help="folder of the real-speech manifests "
                   "(scripts/get_real_speech.sh)")
    p.add_argument("-o", "--out", required=True, help="corpus folder (sources already there are kept)")
    p.add_argument("--only", nargs="*", default=None, help="build only these sources (e.g. espeak_train)")
    p.add_argument("--vocoded", type=int, default=400,
                   help="training recordings each classic vocoder re-renders (vocoded_*_train; default 400)")
    p.add_argument("--seed", type=int, default=0)
    p = add_command(cmds, "train", "train the detector on a corpus folder", _train)
    p.add_argument("corpus", help="folder written by `speechlm detector build`")
    p.add_argument("-o", "--out", required=True, help="checkpoint folder to write")
    p.add_argument("--minutes", type=float, default=15.0, help="training time cap (default 15)")
    p.add_argument("--steps", type=int, default=2500, help="optimizer steps (default 2500)")
    p.add_argument("--exclude", nargs="*", default=[],
                   help="corpus files (vocoded_lpc_train) or clip sources (vocoded_lpc) never to train on, "
                   "besides the test-only ones; a name that matches nothing is an error")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--recording-aug", action="store_true",
                   help="also vary each augmented view's recording: EQ, compression, room (both classes alike)")
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    p.add_argument("--bands", type=int, default=160,
                   help="linear filterbank bands of the features, 0-8 kHz (default 160; the first model used 60)")
    p.add_argument("--phase-bands", type=int, default=0,
                   help="also phase features (group delay, instantaneous frequency) in this many bands, 3 channels "
                   "each (0: none; the shipped model averages four members with 32 and four without)")
    p = add_command(cmds, "combine", "average the logits of detectors trained alike (other seeds) into one, its "
                    "threshold set on the corpus's human valid clips", _combine)
    p.add_argument("models", nargs="+", help="two or more checkpoint folders of `speechlm detector train`")
    p.add_argument("--corpus", required=True, help="the corpus folder they were trained on")
    p.add_argument("-o", "--out", required=True, help="checkpoint folder to write")
    p.add_argument("--false-alarm", type=float, default=0.02,
                   help="share of the human valid clips scored at or above the threshold (default 0.02)")
    p.add_argument("--clip-weight", type=float, default=0.0,
                   help="also fit a logistic regression on whole-clip statistics (modulation spectrum, band "
                   "spreads, pitch steadiness; speechlm/safety/clip_stats.py) on the corpus's train clips and give "
                   "its logit this weight beside the members' mean (0: none; the shipped model: 0.5)")
    p.add_argument("--clip-exclude", nargs="+", default=[], metavar="NAME",
                   help="corpus files or sources the clip statistics are not fitted on")
    p.add_argument("--clip-views", type=int, default=1,
                   help="3-s crops of each training clip through a random channel, beside the clip, for the clip "
                   "statistics (default 1)")


def _build(args: argparse.Namespace) -> int:
    from pathlib import Path

    from speechlm.errors import SpeechLMError

    real = Path(args.real)
    if args.vocoded < 1:
        raise SpeechLMError(f"--vocoded must be at least 1, not {args.vocoded}")
    if not (real / "fillets_cs" / "manifest.jsonl").is_file():
        raise SpeechLMError(f"{real}: no real-speech manifests; run scripts/get_real_speech.sh")
    import numpy as np
    import torch

    from speechlm import TTS, Codec
    from speechlm.safety.detector_data import CorpusSizes, build_corpus

    torch.set_num_threads(1)
    tts_model = None
    codecs: dict[str, object] = {}

    def tts(text: str, seed: int, prompt: np.ndarray | None) -> tuple[np.ndarray, int]:
        nonlocal tts_model
        if tts_model is None:
            tts_model = TTS.load()
        r = tts_model.generate(text, prompt=prompt, prompt_sr=16000 if prompt is not None else None,
                               pace=float(np.random.default_rng(seed).choice([0.9, 1.0, 1.1])))
        return r.wav, r.sample_rate

    def codec(name: str):
        if name not in codecs:
            codecs[name] = Codec.load(name)
        return codecs[name]

    def styled(text: str, seed: int) -> tuple[np.ndarray, int, str]:  # a random description, as the pipeline
        import random  # writes them

        from speechlm.pipeline.describe import describe

        nonlocal tts_model
        if tts_model is None:
            tts_model = TTS.load()
        rng = random.Random(f"styled:{seed}")
        tags = {"gender": rng.choice(["female", "male", None]), "rate_bin": rng.choice(["slow", "fast", None]),
                "pitch_bin": rng.choice(["low", "high", None]), "pitch_range_st": rng.choice([2.0, 12.0, None]),
                "noise_bin": rng.choice(["slightly noisy", "noisy", None]),
                "reverb_bin": rng.choice(["slightly distant", "distant", None])}
        desc = describe(tags, seed) if any(tags.values()) else "A woman speaks."
        if rng.random() < 0.2:
            desc += " She whispers." if tags["gender"] == "female" else " Whispering."
        r = tts_model.generate(text, description=desc)
        return r.wav, r.sample_rate, desc

    def convert(wav: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, int]:
        from speechlm.tasks.vc import convert_voice

        nonlocal tts_model
        if tts_model is None:
            tts_model = TTS.load()
        r = convert_voice(tts_model, wav, 16000, target, 16000)
        return r.wav, r.sample_rate

    build_corpus(Path(args.out), real, tts, codec, sizes=CorpusSizes(vocoded_train=args.vocoded), seed=args.seed,
                 only=args.only, log=lambda s: print(s, flush=True), styled=styled, convert=convert)
    return 0


def _train(args: argparse.Namespace) -> int:
    from pathlib import Path

    from speechlm.errors import SpeechLMError

    if args.phase_bands < 0 or (args.phase_bands and 256 % args.phase_bands):
        raise SpeechLMError(f"--phase-bands must be 0 or divide 256 (the bins below Nyquist), not {args.phase_bands}")
    if not 8 <= args.bands <= 256:
        raise SpeechLMError(f"--bands must be 8-256 (the STFT has 257 bins), not {args.bands}")
    if not list(Path(args.corpus).glob("*.npz")):
        raise SpeechLMError(f"{args.corpus}: no corpus (.npz) files; run `speechlm detector build` first")
    from speechlm.safety.detector import DetectorConfig, FeatureConfig
    from speechlm.safety.detector_train import TrainConfig, train

    out = train(Path(args.corpus), Path(args.out), TrainConfig(
        max_steps=args.steps, max_minutes=args.minutes, seed=args.seed, threads=args.threads,
        exclude=tuple(args.exclude), recording_aug=args.recording_aug,
        detector=DetectorConfig(features=FeatureConfig(n_bands=args.bands, phase_bands=args.phase_bands))))
    print(out)
    return 0


def _combine(args: argparse.Namespace) -> int:
    from pathlib import Path

    from speechlm.errors import SpeechLMError

    if not list(Path(args.corpus).glob("*.npz")):
        raise SpeechLMError(f"{args.corpus}: no corpus (.npz) files; run `speechlm detector build` first")
    from speechlm.safety.detector_train import combine

    print(combine([Path(m) for m in args.models], Path(args.corpus), Path(args.out), args.false_alarm,
                  clip_weight=args.clip_weight, clip_exclude=tuple(args.clip_exclude), clip_views=args.clip_views))
    return 0
