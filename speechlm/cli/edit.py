"""``speechlm edit IN.wav --transcript "..." --target "..." -o OUT.wav``: change words of a recording."""

from __future__ import annotations

import argparse
import sys

from speechlm.cli._common import add_command


def register(sub: argparse._SubParsersAction) -> None:
    from speechlm.cli.tts import add_sampling_args

    p = add_command(
        sub, "edit", "replace/insert/delete words of a recording", _edit,
        description="Word diff between --transcript (what IN.wav says) and --target -> forced alignment -> "
        "the changed words are made again in the recording's voice (default: the duration-based model speaks "
        "the target in that voice and its stretch of the changed words, with up to two joined neighbours on "
        "each side (up to a pause), is used; --model lm_default: codec LM "
        "infilling) -> spliced into the original with 10 ms crossfades. Audio outside the edited spans is copied "
        "unchanged. The sampling options apply to codec LMs only.\n\n"
        "  speechlm edit in.wav --transcript \"the cat sat\" --target \"the dog sat\" -o out.wav")
    p.add_argument("input", help="audio file to edit (0.3-60 s)")
    p.add_argument("--transcript", required=True, help="what the input says")
    p.add_argument("--target", required=True, help="what the output should say")
    p.add_argument("-o", "--output", required=True, help="audio file to write")
    p.add_argument("--lang", default="en",
                   help="language (espeak-ng code): en with the default model; cs, es, fr, it, nl with the shipped "
                        "tts_multilingual (taken when --model is not given)")
    p.add_argument("--no-sign", action="store_true", help="do not add the signed provenance manifest to the output")
    p.add_argument("--no-watermark", action="store_true",
                   help="research only: do not watermark the regenerated spans (recorded in the signed manifest)")
    add_sampling_args(p)
    p.add_argument("--draws", type=int, default=4,
                   help="candidates sampled in one batch; the one that stops nearest the expected length is kept")


def _edit(args: argparse.Namespace) -> int:
    from speechlm.cli._common import check_output_file, check_sampling_args

    # Everything that can be checked is checked before the model loads.
    check_sampling_args(args)
    check_output_file(args.output, "audio")
    from speechlm.errors import SpeechLMError
    from speechlm.tasks.tts import TTS, tts_kind
    from speechlm.tasks.tts_duration import default_model_for

    args.model = default_model_for(args.model, args.lang)  # other languages: the shipped multilingual model
    kind = tts_kind(args.model)
    if kind == "aligned":
        raise SpeechLMError("an aligned codec LM does not edit yet: use the default model or a codec LM "
                            "(--model lm_default)")
    if args.temperature is None:
        args.temperature = 1.0

    import torch

    from speechlm.audio.io import save_audio
    from speechlm.tasks.edit import edit, edit_duration, load_edit_audio

    wav, sr = load_edit_audio(args.input)
    torch.set_num_threads(args.threads)
    tts = TTS.load(args.model, args.codec)
    if kind == "acoustic":
        res = edit_duration(tts, wav, sr, args.transcript, args.target, lang=args.lang)
    else:
        res = edit(tts, wav, sr, args.transcript, args.target, lang=args.lang, seed=args.seed,
                   temperature=args.temperature, top_k=args.top_k, top_p=args.top_p, retries=args.retries,
                   draws=args.draws)
    from speechlm.cli.tts import mark_output, sign_output

    # Only the regenerated spans carry the mark, so detection localises the edit; each span is widened to at
    # least MIN_MARK_S (the detector looks at ~1 s windows), centred on it.
    from speechlm.safety.watermark import MIN_MARK_S, widen

    spans = widen([(a / res.sample_rate, b / res.sample_rate) for a, b in res.out_spans], MIN_MARK_S,
                  len(res.wav) / res.sample_rate)
    wav, payload = mark_output(res.wav, res.sample_rate, tts, args.no_watermark, "edit", spans)
    save_audio(args.output, wav, res.sample_rate)
    if not args.no_sign:
        sign_output(args.output, tts, args.target, args.input, payload)
    changes = "; ".join(f"{a or '∅'} -> {b or '∅'}" for a, b in res.changes)
    print(f"{args.output}: {changes}; {len(res.in_spans)} span(s) regenerated in {res.seconds:.1f} s",
          file=sys.stderr)
    return 0
