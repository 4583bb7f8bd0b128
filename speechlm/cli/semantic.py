"""``speechlm semantic``: train the semantic tokenizer, encode audio to units, hear units through the bridge."""

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

MODEL_HELP = ("semantic tokenizer: 'default' (shipped), another asset name ('mfcc': the MFCC k-means baseline, "
              "'asr': k-means over the CTC ASR's layer 3), a tokenizer folder, or a 'semantic train' run folder")


def register(sub: argparse._SubParsersAction) -> None:
    _, cmds = add_group(
        sub,
        "semantic",
        help="semantic tokenizer (HuBERT-style k-means units)",
        description="Semantic tokens: k-means units of a masked-prediction encoder, 50 Hz, one codebook.\n\n"
        "  speechlm semantic encode in.wav -o units.npz [--dedup]\n"
        "  speechlm semantic encode in.wav -o units.npz --model asr   # the units the shipped bridge decodes\n"
        "  speechlm semantic decode units.npz --prompt voice.wav -o out.wav",
    )
    p = add_command(
        cmds, "train", "train a semantic tokenizer (MFCC k-means -> masked prediction -> k-means)", _train,
        description="All stages of the HuBERT recipe in one resumable run (configs/semantic/tiny|default.yaml) on "
        "the 'train' split of the manifests: MFCC k-means targets (OUT/mfcc_kmeans, also a tokenizer), the "
        "masked-prediction encoder (OUT/checkpoints), k-means over one of its layers (OUT/tokenizer). "
        "Iteration 2: --set semantic.targets_model=OUT/tokenizer with a new --out.",
    )
    p.add_argument("--config", required=True, help="YAML preset")
    p.add_argument("--data", action="append", required=True, help="manifest (repeatable)")
    p.add_argument("--out", required=True, help="run folder")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config value, e.g. --set train.max_steps=100 (repeatable)")

    p = add_command(cmds, "cluster", "new units: k-means over another layer of a trained run's encoder", _cluster,
                    description="Iteration-2 units without retraining: k-means (--clusters) over the output of "
                    "transformer layer --layer of RUN's newest encoder checkpoint, on the 'train' split of the "
                    "manifests. Writes a tokenizer folder (ship it as speechlm/assets/semantic_NAME).")
    p.add_argument("run", help="'semantic train' run folder")
    p.add_argument("--data", action="append", required=True, help="manifest (repeatable)")
    p.add_argument("-o", "--output", required=True, help="tokenizer folder to write")
    p.add_argument("--layer", type=int, required=True, help="transformer layer (1 = first)")
    p.add_argument("--clusters", type=int, default=500, help="k-means clusters (default 500)")
    p.add_argument("--name", default=None, help="tokenizer name written into tokens files")
    p.add_argument("--max-hours", type=float, default=None, help="train audio to cluster (default: recipe's)")
    add_force_arg(p)

    p = add_command(cmds, "cluster-asr", "supervised units: k-means over a layer of the CTC ASR", _cluster_asr,
                    description="Supervised semantic units (CosyVoice-style): k-means (--clusters) over the output "
                    "of conformer block --layer of a CTC ASR model ('speechlm asr'; default: the shipped one), on "
                    "the 'train' split of the manifests. The tokenizer folder embeds the ASR's blocks up to that "
                    "layer, so its tokens never change with a later ASR.")
    p.add_argument("--data", action="append", required=True, help="manifest (repeatable)")
    p.add_argument("-o", "--output", required=True, help="tokenizer folder to write")
    p.add_argument("--asr", default=None, help="ASR model folder (default: the shipped asr_default)")
    p.add_argument("--layer", type=int, default=3, help="conformer block, 1 = first (default 3)")
    p.add_argument("--clusters", type=int, default=500, help="k-means clusters (default 500)")
    p.add_argument("--name", default="semantic_asr", help="tokenizer name written into tokens files")
    p.add_argument("--max-hours", type=float, default=3.0, help="train audio to cluster (default 3)")
    p.add_argument("--norm", choices=("none", "mean", "utterance"), default="none",
                   help="per-utterance normalisation of the features before k-means: 'mean' removes the "
                   "utterance mean, 'utterance' also scales to unit variance (default none)")
    p.add_argument("--lloyd-iters", type=int, default=0,
                   help="full k-means passes over all clustered frames after the mini-batch ones (default 0)")
    p.add_argument("--adapter-epochs", type=int, default=0,
                   help="first train a small adapter for this many epochs on the same utterances (frame phone loss "
                   "on forced alignments) and cluster its output; the manifests need phonemes or G2P-able text "
                   "(default 0: no adapter)")
    p.add_argument("--adapter-adv", type=float, default=0.0,
                   help="weight of the adapter's speaker-confusion loss, voices told apart within a language "
                   "(default 0: off; 1.0 did not lower the speaker probe in our runs, README)")
    p.add_argument("--adapter-dilations", default="1,2,4,8",
                   help="comma-separated dilation of each of the adapter's kernel-5 convolutions (their number is "
                   "its depth; receptive field 1 + 4 x their sum frames at 50 Hz). Default 1,2,4,8 (61 frames, "
                   "the shipped adapter; 1,1 is the 9-frame one shipped before)")
    p.add_argument("--aligner", default=None, help="ASR model that aligns the adapter's phones (default: shipped)")
    add_force_arg(p)
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")

    p = add_command(cmds, "encode", "encode audio to semantic tokens (.npz)", _encode,
                    description="Encode audio (any format/rate) to a tokens .npz: codes [1, T] at 50 Hz. With "
                    "--dedup, runs of the same unit collapse to one (codes [1, T'], frame_rate = T'/duration).")
    p.add_argument("input", help="audio file")
    p.add_argument("-o", "--output", required=True, help="tokens file to write (.npz)")
    p.add_argument("--model", default=None, help=MODEL_HELP)
    p.add_argument("--dedup", action="store_true", help="run-length deduplicate the units")
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")

    p = add_command(cmds, "decode", "hear semantic tokens: bridge to codec tokens in a prompt's voice", _decode,
                    description="Map semantic tokens (+ a short voice prompt) to codec tokens with the bridge "
                    "model, then decode them with the codec. The shipped bridge takes semantic_asr units "
                    "('speechlm semantic encode --model asr'); deduplicated tokens are refused.")
    p.add_argument("input", help="tokens .npz from 'speechlm semantic encode' (not --dedup)")
    p.add_argument("--prompt", required=True, help="audio of the voice to speak in (a few seconds)")
    p.add_argument("-o", "--output", required=True, help="audio file to write (.wav or .flac)")
    p.add_argument("--bridge", default=None, help="bridge model: 'default' (shipped), asset name or folder")
    p.add_argument("--no-watermark", action="store_true",
                   help="research only: do not embed the audio watermark (speechlm watermark detect)")
    p.add_argument("--seed", type=int, default=0, help="sampling seed")
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")

    p = add_command(cmds, "info", "describe a semantic tokenizer", _info)
    p.add_argument("--model", default=None, help=MODEL_HELP)


def _threads(n: int) -> None:
    import torch

    from speechlm.errors import SpeechLMError

    if n < 1:
        raise SpeechLMError(f"--threads must be at least 1, got {n}")
    torch.set_num_threads(n)


def _train(args: argparse.Namespace) -> int:
    from speechlm.tokenizers.semantic.train import train

    metrics = train(args.config, args.data, args.out, args.set)
    print(" ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in metrics.items()))
    return 0


def _cluster(args: argparse.Namespace) -> int:
    check_checkpoint_output(args.output, args.force)
    from speechlm.tokenizers.semantic.train import cluster

    _threads(1)
    print(cluster(args.run, args.data, args.output, args.layer, args.clusters, args.name, args.max_hours))
    return 0


def _cluster_asr(args: argparse.Namespace) -> int:
    from speechlm.errors import SpeechLMError

    check_checkpoint_output(args.output, args.force)
    from speechlm.tokenizers.semantic.supervised import cluster_asr

    try:
        dilations = tuple(int(d) for d in args.adapter_dilations.split(","))
    except ValueError:
        raise SpeechLMError(f"--adapter-dilations takes comma-separated integers, got {args.adapter_dilations!r}"
                            ) from None
    _threads(args.threads)
    print(cluster_asr(args.data, args.output, asr=args.asr, layer=args.layer, clusters=args.clusters,
                      name=args.name, max_hours=args.max_hours, norm=args.norm,
                      lloyd_iters=args.lloyd_iters, adapter_epochs=args.adapter_epochs,
                      adapter_adv=args.adapter_adv, adapter_dilations=dilations, aligner=args.aligner))
    return 0


def _encode(args: argparse.Namespace) -> int:
    check_input_file(args.input)
    check_output_file(args.output, "tokens")
    _threads(args.threads)
    from speechlm.tokenizers.semantic.api import SemanticTokenizer

    tok = SemanticTokenizer.load(args.model)
    tokens = tok.encode_file(args.input, dedup=args.dedup)
    tokens.save(args.output)
    print(f"{args.output}: {tokens.num_frames} units ({tok.cardinality} clusters), {tokens.frame_rate:.4g} Hz, "
          f"{tokens.bitrate:g} kbps, {tokens.duration:.2f} s, {tokens.tokenizer}", file=sys.stderr)
    return 0


def _decode(args: argparse.Namespace) -> int:
    check_input_file(args.prompt, "--prompt")
    check_output_file(args.output, "pcm16")
    _threads(args.threads)
    from speechlm.tokenizers.semantic.bridge import Bridge
    from speechlm.tokenizers.tokens import load_tokens

    tokens = load_tokens(args.input)
    bridge = Bridge.load(args.bridge)
    bridge.decode_to_file(tokens, args.prompt, args.output, seed=args.seed)
    if not args.no_watermark:  # generated speech in someone's voice: marked like every other generated output
        from speechlm.safety.watermark import embed_file, make_payload

        embed_file(args.output, args.output, make_payload("semantic"))
    print(f"{args.output}: {tokens.duration:.2f} s in the voice of {args.prompt}", file=sys.stderr)
    return 0


def _info(args: argparse.Namespace) -> int:
    from speechlm.tokenizers.semantic.api import SemanticTokenizer

    t = SemanticTokenizer.load(args.model)
    net = t.asr if t.asr is not None else t.encoder
    n = sum(p.numel() for p in net.parameters()) if net is not None else 0
    kind = {"asr": f"CTC ASR layer {t.layer}", "encoder": f"encoder layer {t.layer}"}.get(t.features_kind, "mfcc")
    if t.asr is not None and t.asr.norm != "none":
        kind += {"mean": ", utterance mean removed", "utterance": ", standardised per utterance"}[t.asr.norm]
    if t.asr is not None and t.asr.adapter is not None:
        a = t.asr.adapter.cfg
        kind += (f", phone-supervised adapter ({len(a.dilations)} convolutions, receptive field "
                 f"{2 * a.context + 1} frames)")
    print(f"tokenizer: {t.tokenizer_id}\nfeatures: {kind}\n"
          f"encoder params: {n / 1e6:.2f} M\nclusters: {t.cardinality}\nframe_rate: {t.frame_rate:g} Hz\n"
          f"bitrate: {t.bitrate:g} kbps")
    return 0
