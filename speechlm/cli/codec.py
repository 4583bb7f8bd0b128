"""``speechlm codec``: encode audio to tokens, decode tokens to audio, train, export and benchmark codecs."""

from __future__ import annotations

import argparse
import sys

from speechlm.cli._common import (
    add_command,
    add_force_arg,
    add_group,
    check_checkpoint_output,
    check_input_file,
    check_output_file,
)

MODEL_HELP = (
    "codec to use: 'default' (shipped in speechlm/assets), another asset name, a checkpoint folder, or "
    "a training run folder (its newest checkpoint)"
)


THREADS_HELP = (
    "torch threads (default 1: the model is small, one thread is > 100x real time and extra threads mostly "
    "add synchronisation cost, badly so on a busy machine)"
)


def register(sub: argparse._SubParsersAction) -> None:
    _, cmds = add_group(
        sub,
        "codec",
        help="audio codec (acoustic tokenizer): encode, decode, train, bench",
        description="Audio codec: 16 kHz speech <-> tokens [K, T] at 50 Hz. The default is the source-filter "
        "codec (F0, gain, aperiodicity and envelope streams, 1.35-3.85 kbps; 4 kbps adds F0 knots every 10 ms); "
        "the neural RVQ codecs are "
        "codec_default, codec_pitch and codec_hybrid (--model).\n\n"
        "  speechlm codec encode in.wav -o tokens.npz --bitrate 1.5\n"
        "  speechlm codec decode tokens.npz -o out.wav",
    )

    p = add_command(
        cmds,
        "encode",
        "encode an audio file to a tokens .npz",
        _encode,
        description="Encode audio (any format/rate; resampled, downmixed) to a tokens .npz with codes "
        "[K, T]. Long files are streamed in blocks (bounded memory). An output ending in .slc is packed: the "
        "same tokens entropy-coded with the codec's token entropy model (about a third fewer bits for the "
        "default codec; 'codec decode' reads both), and, for the source-filter codec, quiet frames keep fewer "
        "envelope stages ('codec info' says which; --full-depth keeps them all).",
    )
    p.add_argument("input", help="audio file")
    p.add_argument("-o", "--output", required=True, help="tokens file to write (.npz, or .slc packed)")
    p.add_argument(
        "--bitrate",
        type=float,
        default=None,
        help="kbps; picks the number of codebooks (default: all). Default codec: 1.35-3.85 kbps in 0.5 kbps steps, "
        "then 4 kbps (the f0.mid stream: F0 knots every 10 ms). "
        "With a .slc output it is the packed rate: the most codebooks whose packed rate the entropy model "
        "expects at or under it (measured on its held-back files; the real rate varies with the content and "
        "is printed)",
    )
    p.add_argument("--full-depth", action="store_true",
                   help="with a .slc output: keep every envelope stage in quiet frames too (the packed file then "
                   "unpacks to exactly the encoded tokens)")
    p.add_argument("--model", default=None, help=MODEL_HELP)
    p.add_argument("--f0-tracker", choices=("dio", "harvest"), default=None,
                   help="source-filter codec only: F0 analysis. dio (default) is fast; harvest makes fewer voicing "
                   "errors and sharper envelopes (PESQ-WB +0.14 at 2.85 kbps, docs/codec.md) but encodes ~2x real "
                   "time on one thread instead of ~14x")
    p.add_argument("--threads", type=int, default=1, help=THREADS_HELP)

    p = add_command(
        cmds,
        "decode",
        "decode a tokens .npz to audio",
        _decode,
        description="Decode a tokens .npz (or a packed .slc) back to a 16-bit .wav/.flac. The tokens must come "
        "from the same codec (name and checkpoint hash are checked).",
    )
    p.add_argument("input", help="tokens file (.npz or .slc) from 'speechlm codec encode'")
    p.add_argument("-o", "--output", required=True, help="audio file to write (.wav or .flac)")
    p.add_argument(
        "--model",
        default=None,
        help=MODEL_HELP + " (default: the one named in the tokens file if it is shipped, else 'default')",
    )
    p.add_argument("--no-postfilter", action="store_true",
                   help="skip the source-filter codec's spectral post-filter (WORLD's output as it is; for A/B "
                   "listening)")
    p.add_argument("--threads", type=int, default=1, help=THREADS_HELP)

    p = add_command(
        cmds,
        "pack",
        "entropy-code a tokens .npz into a packed .slc (lossless)",
        _pack,
        description="Entropy-code the tokens of a .npz with the token entropy model shipped beside their codec "
        "(entropy.safetensors; see 'codec fit-entropy'). 'codec unpack' gives back the same codes (with "
        "--thin-quiet: except the envelope stages it left out of quiet frames).\n\n"
        "  speechlm codec pack tokens.npz -o tokens.slc",
    )
    p.add_argument("--thin-quiet", action="store_true",
                   help="source-filter codec: leave deeper envelope stages out of quiet frames, as 'codec encode -o "
                   "X.slc' does (lossy; fewer bits)")
    p.add_argument("input", help="tokens file (.npz)")
    p.add_argument("-o", "--output", required=True, help="packed file to write (.slc)")
    p.add_argument("--model", default=None,
                   help=MODEL_HELP + " (default: the one named in the tokens file if it is shipped)")

    p = add_command(cmds, "unpack", "decode a packed .slc back into a tokens .npz (the same codes)", _unpack)
    p.add_argument("input", help="packed file (.slc)")
    p.add_argument("-o", "--output", required=True, help="tokens file to write (.npz)")
    p.add_argument("--model", default=None,
                   help=MODEL_HELP + " (default: the one named in the packed file if it is shipped)")

    p = add_command(cmds, "info", "describe a codec (params, frame rate, bitrates, latency)", _info)
    p.add_argument("--model", default=None, help=MODEL_HELP)

    p = add_command(
        cmds,
        "train",
        "train a codec (resumable; torchrun for DDP)",
        _train,
        description="Train a codec from a YAML preset on one or more manifests (utterances with split=train; "
        "split=valid for validation). configs/codec/source_filter.yaml is the default codec (codec_sf: WORLD "
        "analysis, k-means quantisers, an envelope refiner and a spectral post-filter; under an hour on 2 CPU "
        "cores; --set quantizer_from=speechlm/assets/codec_sf keeps its codebooks, so its token space, and "
        "retrains the rest; --set refiner_from=... keeps the refiner too and trains the post-filter only). "
        "configs/codec/tiny|default|large.yaml are the neural RVQ codecs: rerunning with the same "
        "--out resumes; multi-GPU/CPU: torchrun --nproc_per_node=N -m speechlm.tokenizers.codec.train --config "
        "... --data ... --out ...",
    )
    p.add_argument("--config", required=True, help="YAML preset")
    p.add_argument("--data", action="append", required=True, help="manifest (repeatable)")
    p.add_argument("--out", required=True, help="run folder (checkpoints, metrics.jsonl)")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config value, e.g. --set train.max_steps=100 (repeatable)",
    )

    p = add_command(cmds, "export", "copy a trained checkpoint into an inference-only model folder", _export)
    p.add_argument("run", help="training run or checkpoint folder")
    p.add_argument(
        "-o", "--output", required=True, help="destination folder (e.g. speechlm/assets/codec_default)"
    )
    p.add_argument("--name", default="codec_default", help="model name written into every tokens file")
    add_force_arg(p)

    p = add_command(
        cmds,
        "fit-entropy",
        "fit the token entropy model that packs tokens losslessly (.slc files)",
        _fit_entropy,
        description="Encode training speech with the codec (each file at one of its bitrates in turn), count "
        "the tokens, and write the frequency tables that 'codec encode -o X.slc' and 'codec pack' code them with "
        "(a range coder: the same tokens in fewer bits). Each stream's probabilities depend on its previous "
        "frame where that codes held-back files (every fifth) in fewer bits. The codec looks for its model as "
        "entropy.safetensors in its own folder.\n\n"
        "  speechlm codec fit-entropy --data data/real/klettres/manifest.jsonl -o speechlm/assets/codec_sf/"
        "entropy.safetensors",
    )
    p.add_argument("--data", action="append", required=True, help="manifest (repeatable; split=train lines)")
    p.add_argument("-o", "--output", required=True, help="model file to write (.safetensors)")
    p.add_argument("--model", default=None, help=MODEL_HELP)
    p.add_argument("--max-hours", type=float, default=None, help="encode at most this much speech (default: all)")
    p.add_argument("--workers", type=int, default=2, help="encoding processes (default 2)")
    p.add_argument("--seed", type=int, default=0, help="order in which files are drawn and given bitrates")
    p.add_argument("--smoothing", type=int, default=32,
                   help="weight of a stream's overall frequencies in each previous-value row (default 32)")

    p = add_command(
        cmds,
        "bench",
        "benchmark against Opus, Codec2 and the EnCodec architecture",
        _bench,
        description="Quality (PESQ-WB, STOI, mel distance, SI-SDR, speaker similarity) and 1-thread "
        "speed over the same clips, for our bitrates, Opus 6/8/12 kbps and Codec2 "
        "3200/1600/700C; writes OUT.md and OUT.json.",
    )
    p.add_argument("--data", action="append", required=True, help="manifest (repeatable)")
    p.add_argument("--split", default="test", help="manifest split to use ('all' for every line)")
    p.add_argument("--bitrates", type=float, nargs="+", default=None, help="our bitrates in kbps")
    p.add_argument("--model", default=None, help=MODEL_HELP)
    p.add_argument("--max-clips", type=int, default=40, help="clips per manifest (evenly spaced)")
    p.add_argument("--max-seconds", type=float, default=8.0, help="crop clips to this length")
    p.add_argument("-o", "--output", default="codec_bench", help="output path stem (writes .md and .json)")
    p.add_argument("--no-baselines", action="store_true", help="skip Opus/Codec2/EnCodec")
    p.add_argument("--wideband", action="store_true", help="only clips recorded at 16 kHz or more")
    p.add_argument("--also", action="append", default=[], metavar="MODEL",
                   help="another codec to measure in the same run at all its codebooks (repeatable), "
                   "e.g. --also codec_default --also pitch")


def _threads(n: int) -> None:
    import torch

    from speechlm.errors import SpeechLMError

    if n < 1:
        raise SpeechLMError(f"--threads must be at least 1, got {n}")
    torch.set_num_threads(n)


def _encode(args: argparse.Namespace) -> int:
    check_input_file(args.input)
    from speechlm.errors import SpeechLMError

    check_output_file(args.output, "codec_tokens")
    if args.bitrate is not None and not args.bitrate > 0:
        raise SpeechLMError(f"--bitrate must be positive, got {args.bitrate}")
    _threads(args.threads)
    from speechlm.tokenizers.codec.api import Codec, resolve_model_dir
    from speechlm.tokenizers.packed import entropy_model_for

    packed = args.output.lower().endswith(".slc")
    if args.full_depth and not packed:
        raise SpeechLMError("--full-depth applies to a packed (.slc) output; a .npz keeps every stage anyway")
    model_dir = resolve_model_dir(args.model)
    codec = Codec.load(model_dir)
    entropy = entropy_model_for(model_dir, codec.tokenizer_id) if packed else None  # checked before encoding
    if args.f0_tracker is not None:
        if not hasattr(codec, "f0_tracker"):
            raise SpeechLMError(f"--f0-tracker applies to the source-filter codec, not {codec.name}")
        codec.f0_tracker = args.f0_tracker
    if entropy is None:
        tokens = codec.encode_file(args.input, bitrate=args.bitrate)
        tokens.save(args.output)
        rate = f"{tokens.bitrate:g} kbps"
    else:
        from speechlm.tokenizers.packed import write_packed

        thin = None if args.full_depth else getattr(codec, "frame_depth", None)
        tokens, data, info = _encode_packed(codec, entropy, args.input, args.bitrate, thin)
        write_packed(args.output, data)
        over = " (over --bitrate: the lowest depth)" if args.bitrate is not None and info.kbps > args.bitrate else ""
        rate = f"packed {info.kbps:.3f} kbps{over}, {tokens.bitrate:g} unpacked"
    print(
        f"{args.output}: {tokens.num_codebooks} x {tokens.num_frames} codes, {rate}, "
        f"{tokens.duration:.2f} s, {tokens.tokenizer}",
        file=sys.stderr,
    )
    return 0


def _encode_packed(codec, entropy, path: str, ceiling: float | None, thin):
    """``(tokens, file bytes, PackedInfo)`` of ``path`` packed. ``ceiling`` (kbps) bounds the packed rate: the
    deepest tokens expected to fit, one step shallower (encoded again) while the file's own rate is over it.
    ``thin`` (the codec's ``frame_depth``, or None) packs quiet frames shallower; it makes the entropy model's
    expected rates too high, so the file's own rate at every depth is estimated from one encode at full depth."""
    from speechlm.errors import SpeechLMError
    from speechlm.tokenizers.packed import pack

    def packed(tokens):
        return (tokens, *pack(tokens, entropy, None if thin is None else thin(tokens.codes)))

    if ceiling is None:
        return packed(codec.encode_file(path))
    rates = {codec.n_q_for(b): b for b in codec.bitrates}  # streams -> nominal kbps
    if not entropy.expected_kbps:  # a model without recorded rates: --bitrate stays the tokens' rate
        return packed(codec.encode_file(path, bitrate=ceiling))
    if entropy.streams_for_kbps(ceiling, sorted(rates)) is None:  # the lowest depth is never thinned
        low = min(entropy.expected_kbps.values())
        raise SpeechLMError(f"--bitrate {ceiling:g}: packed, the lowest bitrate of this codec takes about {low:g} kbps")
    full = None
    if thin is None:
        top = entropy.streams_for_kbps(ceiling, sorted(rates))
    else:
        full = codec.encode_file(path, bitrate=max(codec.bitrates))
        fits = [k for k in sorted(rates) if _thinned_kbps(full, k, entropy, thin) <= ceiling]
        top = max(fits) if fits else min(rates)
    ks = [k for k in sorted(rates, reverse=True) if k <= top]
    for i, k in enumerate(ks):
        tokens = full if full is not None and k == full.num_codebooks else codec.encode_file(path, bitrate=rates[k])
        out = packed(tokens)
        if out[2].kbps <= ceiling or i == len(ks) - 1:
            break
    return out


def _thinned_kbps(tokens, k: int, entropy, thin) -> float:
    """Estimated packed kbps of the first ``k`` streams of ``tokens`` thinned by ``thin`` (ideal code lengths)."""
    depth = thin(tokens.codes[:k])
    codes = depth.apply(tokens.codes[:k])
    return float(entropy.bits(codes, depth.kept(codes)).sum()) / max(tokens.duration, 1e-9) / 1000


def _model_for_tokens(tokenizer: str, model: str | None) -> str | None:
    """``--model`` if given, else the shipped codec a tokens file names (None: the default, checked later)."""
    if model is not None:
        return model
    name = tokenizer.split("@")[0]
    model = name.removeprefix("codec_") if name.startswith("codec_") else None
    try:
        from speechlm.tokenizers.codec.api import resolve_model_dir

        resolve_model_dir(model)
    except Exception:  # noqa: BLE001 - not a shipped name: fall back to the default (checked by the caller)
        model = None
    return model


def _read_tokens(path: str, model: str | None):
    """``(tokens, model)`` of a ``.npz`` or packed ``.slc`` file; a packed one is unpacked with the entropy model
    beside the codec it names."""
    from speechlm.tokenizers.tokens import load_tokens

    if not path.lower().endswith(".slc"):
        tokens = load_tokens(path)
        return tokens, _model_for_tokens(tokens.tokenizer, model)
    from speechlm.tokenizers.codec.api import resolve_model_dir
    from speechlm.tokenizers.packed import entropy_model_for, load_packed, read_header

    header, _ = read_header(path)
    model = _model_for_tokens(str(header.get("tokenizer", "")), model)
    return load_packed(path, entropy_model_for(resolve_model_dir(model), entropy_id=str(header.get("entropy")))), model


def _pack(args: argparse.Namespace) -> int:
    check_input_file(args.input)
    from speechlm.errors import SpeechLMError

    if not args.output.lower().endswith(".slc"):
        raise SpeechLMError(f"{args.output}: a packed file ends in .slc")
    check_output_file(args.output, "codec_tokens")
    from speechlm.tokenizers.codec.api import Codec, resolve_model_dir
    from speechlm.tokenizers.packed import entropy_model_for, save_packed
    from speechlm.tokenizers.tokens import load_tokens

    tokens = load_tokens(args.input)
    model_dir = resolve_model_dir(_model_for_tokens(tokens.tokenizer, args.model))
    thin = None
    if args.thin_quiet:
        codec = Codec.load(model_dir)
        if not hasattr(codec, "frame_depth"):
            raise SpeechLMError(f"--thin-quiet applies to the source-filter codec, not {codec.name}")
        thin = codec.frame_depth(tokens.codes)
    info = save_packed(args.output, tokens, entropy_model_for(model_dir, tokens.tokenizer), thin)
    print(f"{args.output}: {info.payload_bytes} bytes of payload + {info.header_bytes} of header, "
          f"{info.kbps:.3f} kbps ({tokens.bitrate:g} unpacked), {tokens.duration:.2f} s", file=sys.stderr)
    return 0


def _unpack(args: argparse.Namespace) -> int:
    check_input_file(args.input)
    check_output_file(args.output, "tokens")
    tokens, _ = _read_tokens(args.input, args.model)
    tokens.save(args.output)
    print(f"{args.output}: {tokens.num_codebooks} x {tokens.num_frames} codes, {tokens.duration:.2f} s",
          file=sys.stderr)
    return 0


def _decode(args: argparse.Namespace) -> int:
    check_output_file(args.output, "pcm16")
    _threads(args.threads)
    from speechlm.errors import SpeechLMError
    from speechlm.tokenizers.codec.api import Codec

    tokens, model = _read_tokens(args.input, args.model)
    codec = Codec.load(model)
    if args.no_postfilter:
        if not getattr(codec, "use_postfilter", False):
            raise SpeechLMError(f"--no-postfilter: the codec {codec.tokenizer_id} has no post-filter")
        codec.use_postfilter = False
    codec.decode_to_file(tokens, args.output)
    print(f"{args.output}: {tokens.duration:.2f} s at {codec.sample_rate} Hz", file=sys.stderr)
    return 0


def _fit_entropy(args: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    from speechlm.errors import SpeechLMError

    for m in args.data:
        check_input_file(m, "manifest")
    if Path(args.output).suffix != ".safetensors":
        raise SpeechLMError(f"{args.output}: the entropy model is written as .safetensors")
    check_output_file(args.output, "json")
    if args.workers < 1 or args.smoothing < 1 or (args.max_hours is not None and not args.max_hours > 0):
        raise SpeechLMError("--workers and --smoothing must be at least 1 and --max-hours positive")
    from speechlm.tokenizers.codec.api import Codec, resolve_model_dir
    from speechlm.tokenizers.entropy_fit import collect_codes, fit_entropy

    model_dir = str(resolve_model_dir(args.model))
    codec = Codec.load(model_dir)
    names = getattr(codec, "stream_names", None) or [f"level.{i + 1}" for i in range(codec.num_codebooks)]
    cards = getattr(codec, "cardinalities", None) or [codec.cardinality] * codec.num_codebooks
    codes, hours = collect_codes(model_dir, args.data, args.max_hours, args.workers, args.seed)
    model, report = fit_entropy(codes, names, cards, codec.tokenizer_id, args.smoothing)
    prefix = len(names) - len(codec.bitrates)
    model.expected_kbps = report.kbps_by_streams(codec.frame_rate, prefix)
    model.save(args.output)
    summary = {"output": args.output, "entropy_id": model.id, "tokenizer": codec.tokenizer_id,
               "files": report.files, "hours": round(hours, 3), "contexts": report.contexts,
               "dev_bits_per_frame": {s: {c: round(b, 3) for c, b in d.items()} for s, d in report.dev_bits.items()},
               "dev_kbps_by_depth": dict(zip([f"{b:g}" for b in codec.bitrates], model.expected_kbps.values()))}
    print(json.dumps(summary, indent=1))
    return 0


def _info(args: argparse.Namespace) -> int:
    from speechlm.tokenizers.codec.api import Codec, resolve_model_dir
    from speechlm.tokenizers.entropy import EntropyModelError
    from speechlm.tokenizers.packed import entropy_model_for

    c = Codec.load(args.model)
    try:
        em = entropy_model_for(resolve_model_dir(args.model))
        ctx = [s.name for s in em.streams if s.context == "previous"]
        rates = [em.expected_kbps.get(str(c.n_q_for(b))) for b in c.bitrates]
        packed = (f"packed (.slc): entropy model {em.id}, fitted on {em.tokenizer}"
                  f"{'' if em.tokenizer == c.tokenizer_id else ' (another codec: not usable)'}; previous-frame "
                  f"context for {', '.join(ctx) or 'no stream'}\n"
                  + (f"packed kbps expected (its held-back files, every stage of every frame): "
                     f"{', '.join(f'{r:g}' for r in rates)}\n" if all(r is not None for r in rates) else "")
                  + (f"quiet frames in a .slc (the default; --full-depth: none): {c.quiet_depth_summary}\n"
                     if hasattr(c, "quiet_depth_summary") else ""))
    except EntropyModelError:
        packed = "packed (.slc): no entropy model (speechlm codec fit-entropy)\n"
    streams = getattr(c, "stream_names", None)
    books = (", ".join(f"{s} {k}" for s, k in zip(streams, c.cardinalities)) if streams
             else f"{c.num_codebooks} x {c.cardinality}")
    print(
        f"tokenizer: {c.tokenizer_id}\nparams: {c.num_params / 1e6:.2f} M\nsample_rate: {c.sample_rate}\n"
        f"frame_rate: {c.frame_rate:g} Hz\ncodebooks: {books}\n"
        f"bitrates (kbps): {', '.join(f'{b:g}' for b in c.bitrates)}\n"
        + (f"encoder: {c.encoder_name}\n" if hasattr(c, "encoder_name") else "")
        + f"decoder: {c.decoder_name}\n" + packed
        + ("encoder: offline (level-1 semantic units need the whole input); decoding streams"
           if c.latency_ms is None else f"algorithmic latency: {c.latency_ms:g} ms")
    )
    return 0


def _train(args: argparse.Namespace) -> int:
    if _config_kind(args.config) == "source_filter":
        from speechlm.tokenizers.source_filter.train import train
    else:
        from speechlm.tokenizers.codec.train import train

    metrics = train(args.config, args.data, args.out, args.set)
    print(" ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in metrics.items()))
    return 0


def _config_kind(path: str) -> str | None:
    """The ``kind`` key of a recipe YAML (``source_filter`` for the source-filter codec), None if absent."""
    import yaml

    from speechlm.errors import SpeechLMError

    try:
        data = yaml.safe_load(open(path, encoding="utf-8"))
    except OSError as exc:
        raise SpeechLMError(f"cannot read config {path}: {exc.strerror or exc}") from None
    except yaml.YAMLError as exc:
        raise SpeechLMError(f"config {path} is not valid YAML: {str(exc).splitlines()[0]}") from None
    return data.get("kind") if isinstance(data, dict) else None


def _export(args: argparse.Namespace) -> int:
    check_checkpoint_output(args.output, args.force)
    from speechlm.tokenizers.codec.train import export_model

    print(export_model(args.run, args.output, args.name))
    return 0


def _bench(args: argparse.Namespace) -> int:
    from speechlm.eval.codec_bench import run_bench

    run_bench(
        args.data,
        args.output,
        model=args.model,
        bitrates=args.bitrates,
        also=args.also,
        min_rate=16000 if args.wideband else 0,
        split=args.split,
        max_clips=args.max_clips,
        max_seconds=args.max_seconds,
        baselines=not args.no_baselines,
    )
    return 0
