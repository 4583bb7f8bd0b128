"""``speechlm tokens``: the tokenizer trade-off map (content, speaker, predictability, resynthesis, bitrate)."""

from __future__ import annotations

import argparse
import sys

from speechlm.cli._common import add_command, add_group


def register(sub: argparse._SubParsersAction) -> None:
    _, cmds = add_group(sub, "tokens", help="analyse discrete tokens of any tokenizer",
                        description="Analyse tokenizers side by side.\n\n"
                        "  speechlm tokens analyze --tokenizers codec,semantic,semantic:mfcc \\\n"
                        "      --data corpus/manifest.jsonl -o tokens_analysis")
    p = add_command(
        cmds, "analyze", "tokenizer trade-off table (md + JSON + PNG)", _analyze,
        description="For every tokenizer (a codec: every level cumulatively), on the --split utterances of the "
        "manifests: frame rate, bitrate, units seen, utilisation/entropy of the newest codebook, phone purity "
        "(plug-in and held-out) and PNMI against forced-aligned phones (needs 'phonemes' or G2P-able text), "
        "speaker-probe accuracy from pooled tokens (all speakers; within each language) against chance, "
        "bigram unit-LM perplexity (trained on the 'train' split), PESQ/STOI of the resynthesis where a decoder "
        "exists. Writes OUT.md, OUT.json, OUT.png.",
    )
    p.add_argument("--tokenizers", required=True,
                   help="comma-separated: codec[:MODEL], hybrid, semantic[:MODEL] or folders")
    p.add_argument("--data", action="append", required=True, help="manifest (repeatable)")
    p.add_argument("--split", default="test", help="split to analyse ('all' for every line; default test)")
    p.add_argument("--max-utts", type=int, default=None, help="at most this many utterances (evenly spaced)")
    p.add_argument("--lm-train-utts", type=int, default=300, help="train utterances for the unit LM (0: none)")
    p.add_argument("--resynth-utts", type=int, default=30, help="utterances decoded for PESQ/STOI (0: none)")
    p.add_argument("--aligner", default=None, help="ASR/aligner model folder (default: the shipped one)")
    p.add_argument("-o", "--output", default="tokens_analysis", help="output path stem (.md, .json, .png)")
    p.add_argument("--no-plot", action="store_true", help="skip the PNG")
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")


def _analyze(args: argparse.Namespace) -> int:
    import torch

    from speechlm.errors import SpeechLMError
    from speechlm.eval.tokens.run import analyze

    torch.set_num_threads(max(1, args.threads))
    specs = [s.strip() for s in args.tokenizers.split(",") if s.strip()]
    if not specs:
        raise SpeechLMError("--tokenizers is empty")
    from speechlm.eval.tokens.run import markdown_table

    result = analyze(specs, args.data, args.output, split=args.split, max_utts=args.max_utts,
                     lm_train_utts=args.lm_train_utts, resynth_utts=args.resynth_utts, aligner=args.aligner,
                     plot=not args.no_plot)
    print(markdown_table(result))
    print(f"wrote {args.output}.md, .json{'' if args.no_plot else ', .png'}", file=sys.stderr)
    return 0
