"""``speechlm acoustic corpus|features|train|train-lm|export``: the duration-based TTS model's recipe and the
aligned codec LM trained on the same data."""

from __future__ import annotations

import argparse

from speechlm.cli._common import add_command, add_force_arg, add_group, check_checkpoint_output, check_input_file


def register(sub: argparse._SubParsersAction) -> None:
    _, cmds = add_group(
        sub, "acoustic", help="duration-based TTS model (the default `speechlm tts`): corpus, features, training",
        description="The recipe of tts_duration:\n\n"
        "  speechlm acoustic corpus --out data/piper_joe -n 2000 --exclude data/real/asterisk_core_en/manifest.jsonl\n"
        "  speechlm acoustic features data/piper_joe/manifest.jsonl -o data/piper_joe/features.npz\n"
        "  speechlm acoustic train data/piper_joe/features.npz --out runs/tts_duration --steps 4500\n"
        "  speechlm acoustic export runs/tts_duration -o speechlm/assets/tts_duration\n\n"
        "An aligned autoregressive codec LM on the same data (experimental; docs/experiments/"
        "2026-12-04-aligned-lm.md):\n"
        "  speechlm acoustic train-lm data/piper_joe/features.npz --out runs/aligned_lm/small --max-minutes 32")
    p = add_command(cmds, "corpus", "speak offline English sentences with the Piper voice, with exact durations",
                    _corpus)
    p.add_argument("--out", required=True, help="corpus folder (wav/ and manifest.jsonl; resumes)")
    p.add_argument("-n", type=int, default=2000, help="sentences (default 2000, about 1.9 h)")
    p.add_argument("--seed", type=int, default=0, help="sentence sampling seed")
    p.add_argument("--exclude", action="append", default=[], metavar="MANIFEST",
                   help="never speak the texts of this manifest (held-out evaluation sentences; repeatable)")
    p = add_command(cmds, "align-corpus", "force-align real recordings' transcripts: a duration for every TTS "
                    "input token (other languages' training data)", _align_corpus,
                    description="Recordings with transcripts -> OUT/manifest.jsonl with tags.tts_tokens and "
                    "tags.durations_s\n(the CTC aligner asr_default places every phone; pauses go to the "
                    "punctuation), ready for\n`speechlm acoustic features`. The multilingual model's recipe:\n\n"
                    "  python benchmarks/tts_lang_cer.py --list-heldout runs/heldout_texts.txt\n"
                    "  speechlm acoustic align-corpus data/real/asterisk_prompts/manifest.jsonl \\\n"
                    "      data/real/fillets_cs/manifest.jsonl data/real/fillets_nl/manifest.jsonl \\\n"
                    "      --out data/aligned_ml --exclude-texts runs/heldout_texts.txt --min-speaker-minutes 2")
    p.add_argument("manifests", nargs="+", help="manifests of recordings with transcripts (text, lang, speaker)")
    p.add_argument("--out", required=True, help="output folder (manifest.jsonl, report.json)")
    p.add_argument("--lang", action="append", default=[], help="keep only this language (repeatable; default all)")
    p.add_argument("--exclude", action="append", default=[], metavar="MANIFEST",
                   help="never train on the texts of this manifest (held-out sentences; repeatable)")
    p.add_argument("--exclude-texts", action="append", default=[], metavar="FILE",
                   help="never train on these texts (one per line; repeatable)")
    p.add_argument("--min-speaker-minutes", type=float, default=0.0,
                   help="leave out speakers with less speech than this in the inputs (default 0)")
    p.add_argument("--min-score", type=float, default=-1.5,
                   help="leave out alignments whose mean log-probability per frame is below this (default -1.5: "
                        "usually a wrong transcript)")
    p = add_command(cmds, "features", "analyse an aligned manifest into a feature cache (.npz)", _features)
    p.add_argument("manifests", nargs="+", help="manifests with tags.tts_tokens and tags.durations_s")
    p.add_argument("-o", "--output", required=True, help="cache file (.npz)")
    p.add_argument("--workers", type=int, default=2, help="processes (default 2)")
    p.add_argument("--sub-frames", type=int, default=1, choices=(1, 2, 4),
                   help="feature frames per 20-ms codec frame: 1 = 20-ms averages (default, as the shipped model), "
                        "4 = WORLD's own 5-ms frames (the model then predicts 5-ms parameters; it did not measure "
                        "better: docs/experiments/2026-12-04-tts-parameters.md)")
    p.add_argument("--f0-tracker", choices=("dio", "harvest"), default="dio",
                   help="WORLD F0 analysis: dio (fast) or harvest (about 20x slower; fewer voicing errors)")
    p.add_argument("--dio-threshold", type=float, default=0.25,
                   help="DIO's voicing threshold (its allowed_range; default 0.25, as codec_sf and the shipped model; "
                        "WORLD's own 0.1 leaves much of a voice unvoiced and sounds breathier)")
    p = add_command(cmds, "train", "train the acoustic model on a feature cache (resumable)", _train)
    p.add_argument("features", help="feature cache (.npz) from `speechlm acoustic features`")
    p.add_argument("--out", required=True, help="run folder (checkpoints/, log.jsonl)")
    p.add_argument("--steps", type=int, default=4500, help="optimizer steps (default 4500: ~1 h on 2 cores)")
    p.add_argument("--codec", default="codec_sf", help="the source-filter codec the output is quantised for")
    p.add_argument("--threads", type=int, default=2, help="torch threads")
    p.add_argument("--init", default=None, metavar="MODEL",
                   help="fine-tune this acoustic model (name, folder or run; e.g. `default`) instead of starting "
                        "from scratch: its size and normalisation are kept, the optimizer starts afresh")
    p.add_argument("--lr", type=float, default=None, help="peak learning rate (default 1e-3; 3e-4 with --init)")
    p.add_argument("--batch-frames", type=int, default=3000,
                   help="20-ms frames per batch (default 3000; a GPU takes 10-20x more)")
    p.add_argument("--d-model", type=int, default=192, help="width (default 192)")
    p.add_argument("--layers", type=int, default=4, help="encoder and decoder blocks each (default 4)")
    p.add_argument("--dropout", type=float, default=0.1, help="dropout in every block (default 0.1)")
    p.add_argument("--ff-kernel", type=int, default=5,
                   help="feed-forward convolution width in frames (default 5, as the shipped model; 3 before it)")
    p.add_argument("--max-minutes", type=float, default=0.0,
                   help="a wall-time budget: the learning-rate cosine ends at the last step or at the budget, "
                        "whichever comes first, and training stops (and saves) there (0 = no limit)")
    p.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    p = add_command(cmds, "train-lm", "train the aligned autoregressive codec LM (durations from the NAR model)",
                    _train_lm, description="Train an aligned autoregressive LM over codec_sf tokens (RALL-E-style: "
                    "the NAR acoustic model's\nencoder, durations and pitch guide a causal transformer over 20-ms "
                    "frames; next-token prediction,\nKV-cache sampling, a voice prompt in context). Resumes a run "
                    "folder that has checkpoints.\n\n"
                    "  taskset -c 0 speechlm acoustic train-lm data/piper_joe/features20.npz \\\n"
                    "      --out runs/aligned_lm/small --steps 2000 --max-minutes 32 --threads 1\n\n"
                    "The cache's parameters are quantised to codec tokens once (RUN/codes.npz). Use the result with\n"
                    "speechlm.tasks.tts_aligned.AlignedTTS.load(RUN) or benchmarks/tts_eval.py --systems "
                    "ours_aligned --aligned-model RUN.")
    p.add_argument("features", help="20-ms feature cache (.npz) from `speechlm acoustic features`")
    p.add_argument("--out", required=True, help="run folder (codes.npz, checkpoints/, log.jsonl)")
    p.add_argument("--steps", type=int, default=600,
                   help="optimizer steps (default 600; 3.5-6.5 s a step on one thread at the default size: bound "
                        "the time with --max-minutes)")
    p.add_argument("--nar", default=None, metavar="MODEL",
                   help="the duration model (an acoustic model name, folder or run; default: the shipped one); "
                        "its weights are copied into the LM, frozen")
    p.add_argument("--codec", default="codec_sf", help="the source-filter codec whose tokens are modelled")
    p.add_argument("--size", default="small", choices=("tiny", "small", "base"),
                   help="tiny = 2 x 64 (tests), small = 4 layers x 192 (default), base = 6 x 256")
    p.add_argument("--draft", action="store_true",
                   help="condition every frame on the duration model's own tokens for it (a draft the LM refines; "
                        "docs/experiments/2026-12-05-aligned-lm-draft.md)")
    p.add_argument("--draft-kernel", type=int, default=1,
                   help="with --draft: each frame also hears the drafts of its neighbours (odd width; default 1)")
    p.add_argument("--copy-bias", action="store_true",
                   help="with --draft: a learned logit bonus for the draft's own code in every stream (a copy path)")
    p.add_argument("--prev-drop", type=float, default=0.0,
                   help="training: chance that a frame's input hides the previous frame's codes (default 0)")
    p.add_argument("--batch-frames", type=int, default=4000, help="padded frames per batch (default 4000)")
    p.add_argument("--lr", type=float, default=1e-3, help="peak learning rate (default 1e-3)")
    p.add_argument("--max-minutes", type=float, default=0.0,
                   help="a wall-time budget: the learning-rate cosine ends at the last step or at the budget, "
                        "whichever comes first, and training stops (and saves) there (0 = no limit)")
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    p = add_command(cmds, "export", "copy a trained acoustic model into an inference-only folder", _export)
    p.add_argument("run", help="training run or checkpoint folder")
    p.add_argument("-o", "--output", required=True, help="destination (e.g. speechlm/assets/tts_duration)")
    p.add_argument("--fp32", action="store_true", help="keep float32 weights (default: float16, half the size)")
    p.add_argument("--lang-voice", action="append", default=[], metavar="LANG=SPEAKER",
                   help="a multi-speaker model's voice for LANG: one of its training speakers of that language "
                        "(repeatable; default: the speaker with the most training speech)")
    add_force_arg(p)


def _excluded_texts(manifests: list[str], text_files: list[str] = ()) -> list[str]:
    """The transcripts of ``--exclude`` manifests and the lines of ``--exclude-texts`` files (checked first)."""
    import json

    texts = []
    for m in manifests:
        check_input_file(m, "--exclude")
        texts += [json.loads(line)["text"] for line in open(m, encoding="utf-8") if line.strip()]
    for f in text_files:
        check_input_file(f, "--exclude-texts")
        texts += [line.strip() for line in open(f, encoding="utf-8") if line.strip()]
    return texts


def _corpus(args: argparse.Namespace) -> int:
    from speechlm.data.piper_corpus import build_piper_corpus
    from speechlm.errors import SpeechLMError

    if args.n < 1:
        raise SpeechLMError(f"-n must be at least 1, got {args.n}")
    texts = _excluded_texts(args.exclude)
    print(build_piper_corpus(args.out, args.n, args.seed, texts, length_scales=(1.0, 1.0, 0.9, 1.1)))
    return 0


def _align_corpus(args: argparse.Namespace) -> int:
    from speechlm.errors import SpeechLMError
    from speechlm.lm.acoustic_corpus import build_aligned_corpus
    from speechlm.text.g2p import resolve_lang

    for m in args.manifests:
        check_input_file(m, "manifest")
    langs = tuple(resolve_lang(x) for x in args.lang) or None
    if args.min_speaker_minutes < 0:
        raise SpeechLMError(f"--min-speaker-minutes must be at least 0, got {args.min_speaker_minutes}")
    texts = _excluded_texts(args.exclude, args.exclude_texts)
    out = build_aligned_corpus(args.manifests, args.out, langs, texts, args.min_speaker_minutes * 60.0,
                               min_score=args.min_score)
    print(out)
    print((out.parent / "report.json").read_text())
    return 0


def _features(args: argparse.Namespace) -> int:
    from speechlm.errors import SpeechLMError
    from speechlm.lm.acoustic_data import extract_features

    for m in args.manifests:
        check_input_file(m, "manifest")
    if not args.output.endswith(".npz"):
        raise SpeechLMError(f"the feature cache must be a .npz file, got {args.output}")
    analysis = {"f0_tracker": args.f0_tracker, "dio_threshold": args.dio_threshold}
    print(extract_features(args.manifests, args.output, workers=max(1, args.workers), sub_frames=args.sub_frames,
                           analysis=analysis))
    return 0


def _train(args: argparse.Namespace) -> int:
    from speechlm.errors import SpeechLMError

    check_input_file(args.features, "feature cache")
    if args.steps < 1:
        raise SpeechLMError(f"--steps must be at least 1, got {args.steps}")
    if args.lr is not None and not 0 < args.lr < 1:
        raise SpeechLMError(f"--lr must be in (0, 1), got {args.lr}")
    if args.batch_frames < 100 or args.d_model < 8 or args.d_model % 2 or args.layers < 1 or args.ff_kernel < 1:
        raise SpeechLMError("--batch-frames must be at least 100, --d-model even and at least 8, --layers and "
                            "--ff-kernel at least 1")
    if not 0 <= args.dropout < 1:
        raise SpeechLMError(f"--dropout must be in [0, 1), got {args.dropout}")
    if args.max_minutes < 0 or args.device.split(":")[0] not in ("cpu", "cuda"):
        raise SpeechLMError(f"--max-minutes must be at least 0 and --device cpu or cuda, got {args.device}")
    from speechlm.lm.acoustic_train import AcousticTrainConfig, train_acoustic
    from speechlm.tokenizers.codec.api import Codec

    codec = Codec.load(args.codec)
    if not hasattr(codec, "quantizer"):
        raise SpeechLMError(f"{args.codec} is not a source-filter codec")
    lr = args.lr if args.lr is not None else (3e-4 if args.init else 1e-3)
    model = {"d_model": args.d_model, "ff_dim": args.d_model * 8 // 3, "ff_kernel": args.ff_kernel,
             "enc_layers": args.layers, "dec_layers": args.layers, "dropout": args.dropout}
    cfg = AcousticTrainConfig(steps=args.steps, batch_frames=args.batch_frames, save_every=500, threads=args.threads,
                              lr=lr, warmup=100 if args.init else 400, max_minutes=args.max_minutes,
                              device=args.device, model=model)
    print(train_acoustic(args.features, args.out, cfg, extra={"tokenizer": codec.tokenizer_id}, init=args.init))
    return 0


SIZES = {"tiny": {"d_model": 64, "n_layers": 2, "n_heads": 2}, "small": {"d_model": 192, "n_layers": 4, "n_heads": 4},
         "base": {"d_model": 256, "n_layers": 6, "n_heads": 4}}


def _train_lm(args: argparse.Namespace) -> int:
    from speechlm.errors import SpeechLMError

    check_input_file(args.features, "feature cache")
    if not args.features.endswith(".npz"):
        raise SpeechLMError(f"{args.features}: the feature cache must be a .npz file")
    if args.steps < 1:
        raise SpeechLMError(f"--steps must be at least 1, got {args.steps}")
    if not 0 < args.lr < 1:
        raise SpeechLMError(f"--lr must be in (0, 1), got {args.lr}")
    if args.batch_frames < 100:
        raise SpeechLMError(f"--batch-frames must be at least 100, got {args.batch_frames}")
    if args.threads < 1 or args.max_minutes < 0:
        raise SpeechLMError("--threads must be at least 1 and --max-minutes at least 0")
    if not 0 <= args.prev_drop < 1 or args.draft_kernel < 1 or args.draft_kernel % 2 == 0:
        raise SpeechLMError("--prev-drop must be in [0, 1) and --draft-kernel an odd number >= 1")
    from speechlm.lm.aligned_train import AlignedTrainConfig, train_aligned

    cfg = AlignedTrainConfig(steps=args.steps, batch_frames=args.batch_frames, lr=args.lr, threads=args.threads,
                             max_minutes=args.max_minutes, warmup=min(30, max(1, args.steps // 10)),
                             prev_drop=args.prev_drop,
                             model=dict(SIZES[args.size], draft=args.draft, draft_kernel=args.draft_kernel,
                                        copy_bias=args.copy_bias))
    print(train_aligned(args.features, args.out, cfg, nar=args.nar, codec_name=args.codec))
    return 0


def _export(args: argparse.Namespace) -> int:
    check_checkpoint_output(args.output, args.force)
    from speechlm.errors import SpeechLMError
    from speechlm.lm.acoustic_train import export_acoustic

    if any("=" not in v for v in args.lang_voice):
        raise SpeechLMError(f"--lang-voice takes LANG=SPEAKER, got {args.lang_voice}")
    voices = dict(v.split("=", 1) for v in args.lang_voice)
    print(export_acoustic(args.run, args.output, force=args.force, half=not args.fp32, lang_voices=voices))
    return 0
