"""``speechlm lm``: token shards, training, export and info for the codec language model."""

from __future__ import annotations

import argparse

from speechlm.cli._common import add_command, add_force_arg, add_group, check_checkpoint_output, check_input_file


def register(sub: argparse._SubParsersAction) -> None:
    _, cmds = add_group(
        sub, "lm", help="codec language model (zero-shot TTS / speech editing generator)",
        description="Codec LM over [phonemes ; codec tokens] (delay pattern, VoiceCraft causal masking, or "
        "VALL-E AR+NAR).\n\n"
        "  speechlm lm shards --data data/manifest.jsonl -o shards/\n"
        "  speechlm lm train --config configs/lm/default.yaml --data shards/ --out runs/lm\n"
        "  speechlm lm export runs/lm -o speechlm/assets/lm_default")
    p = add_command(cmds, "shards", "encode a manifest into LM token shards (codec codes + phonemes)", _shards,
                    description="Encode every utterance with the codec once and store codes [K, T] and phoneme "
                    "ids in .npz shards plus index.json (tokenizer id, frames per phone).")
    p.add_argument("--data", action="append", required=True, help="manifest (repeatable)")
    p.add_argument("-o", "--output", required=True, help="shard folder to write")
    p.add_argument("--codec", default="codec_sf",
                   help="codec model NAME|DIR (default: codec_sf, the codec of the shipped LM)")
    p.add_argument("--codebooks", type=int, default=None, help="keep only the first N codebooks (default all)")
    p.add_argument("--split", action="append", default=None, help="only these manifest splits (repeatable)")
    p.add_argument("--max-seconds", type=float, default=None, help="leave out longer utterances")
    p.add_argument("--threads", type=int, default=1, help="torch threads")

    p = add_command(cmds, "train", "train a codec LM (resumable; torchrun for DDP)", _train,
                    description="Train from a YAML preset (configs/lm/tiny|default|large|valle.yaml) on a token "
                    "shard folder (or a manifest, encoded first into OUT/shards). Rerunning with the same --out "
                    "resumes. DDP: torchrun --nproc_per_node=N -m speechlm.lm.train --config ... --data ... "
                    "--out ...")
    p.add_argument("--config", required=True, help="YAML preset")
    p.add_argument("--data", required=True, help="token shard folder or manifest")
    p.add_argument("--out", required=True, help="run folder (checkpoints, metrics.jsonl)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config value, e.g. --set train.max_steps=100 (repeatable)")

    p = add_command(cmds, "export", "copy a trained LM into an inference-only folder (fp16)", _export)
    p.add_argument("run", help="training run or checkpoint folder")
    p.add_argument("-o", "--output", required=True, help="destination (e.g. speechlm/assets/lm_default)")
    p.add_argument("--fp32", action="store_true", help="keep float32 weights")
    p.add_argument("--prompt-audio", default=None, help="default voice: a 3-10 s clip (not a held-out voice)")
    p.add_argument("--prompt-text", default=None, help="transcript of --prompt-audio")
    p.add_argument("--prompt-lang", default="en", help="language of --prompt-text")
    add_force_arg(p)

    p = add_command(cmds, "info", "describe a codec LM (layout, params, codec it needs)", _info)
    p.add_argument("--model", default=None, help="LM: 'default', an asset name, a checkpoint or run folder")


def _shards(args: argparse.Namespace) -> int:
    import torch

    from speechlm.lm.data import build_shards
    from speechlm.tokenizers.codec.api import Codec

    torch.set_num_threads(max(1, args.threads))
    out = build_shards(args.data, args.output, Codec.load(args.codec), n_q=args.codebooks, splits=args.split,
                       max_seconds=args.max_seconds)
    print(out)
    return 0


def _train(args: argparse.Namespace) -> int:
    from speechlm.lm.train import train

    metrics = train(args.config, args.data, args.out, args.set)
    print(" ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in metrics.items()))
    return 0


def _export(args: argparse.Namespace) -> int:
    from speechlm.errors import SpeechLMError

    check_checkpoint_output(args.output, args.force)
    if args.prompt_audio is not None:
        check_input_file(args.prompt_audio, "--prompt-audio")
        if not (args.prompt_text or "").strip():
            raise SpeechLMError("--prompt-audio needs its transcript (--prompt-text)")
    from speechlm.lm.train import export_model

    print(export_model(args.run, args.output, half=not args.fp32, prompt_audio=args.prompt_audio,
                       prompt_text=args.prompt_text, prompt_lang=args.prompt_lang))
    return 0


def _info(args: argparse.Namespace) -> int:
    from speechlm.lm.api import CodecLanguageModel

    lm = CodecLanguageModel.load(args.model)
    c = lm.config
    print(f"path: {lm.path}\nlayout: {c.layout}\nparams: {lm.n_params / 1e6:.2f} M\nlayers: {c.n_layers} x "
          f"{c.dim}\ncodebooks: {c.n_codebooks} x {c.card}\ncodec: {lm.tokenizer}\n"
          f"frames per phone: {lm.frames_per_phone:.2f}\nstep: {lm.meta.get('step')}")
    return 0
