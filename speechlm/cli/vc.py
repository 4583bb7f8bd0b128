"""``speechlm vc IN -o OUT --target VOICE | --description "..."``: a recording in another voice or style."""

from __future__ import annotations

import argparse
import sys

from speechlm.cli._common import add_command


def register(sub: argparse._SubParsersAction) -> None:
    p = add_command(
        sub, "vc", "voice conversion: a recording in another voice, or in a described style", _vc,
        description="Analyse the recording into source-filter frames (F0, envelope, aperiodicity), move its voice "
        "towards --target (F0 mean and range, a formant warp, the mean timbre) or as --description says "
        "(gender, pitch, pitch range, a whisper, background noise, room echo; not the pace), and synthesise it "
        "again: the same words, timing and intonation in the new voice. A voice transform, not a clone "
        "(docs/tts.md#voice-conversion). The output is watermarked and signed like every generated file.\n\n"
        "  speechlm vc in.wav --target voice.wav -o out.wav\n"
        "  speechlm vc in.wav --description \"A woman whispers.\" -o out.wav")
    p.add_argument("input", help="recording to convert (0.3-600 s)")
    p.add_argument("-o", "--output", required=True, help="audio file to write")
    p.add_argument("--target", default=None, help="a recording of the voice to convert to (1-20 s)")
    p.add_argument("--description", default=None,
                   help="a style description instead of a target voice (speechlm tts --description's words)")
    p.add_argument("--no-sign", action="store_true", help="do not add the signed provenance manifest to the output")
    p.add_argument("--no-watermark", action="store_true",
                   help="research only: do not watermark the output (recorded in the signed manifest)")
    p.add_argument("--threads", type=int, default=1)


def _vc(args: argparse.Namespace) -> int:
    from speechlm.cli._common import check_input_file, check_output_file
    from speechlm.tasks.vc import check_vc_request

    # Everything that can be checked is checked before anything is decoded or loaded.
    check_input_file(args.input)
    if args.target is not None:
        check_input_file(args.target, "--target")
    check_output_file(args.output, "audio")
    style = check_vc_request(args.target, args.description)
    if style is not None:
        print(f"style: {style.summary()}", file=sys.stderr)

    import torch

    from speechlm.audio.io import save_audio
    from speechlm.cli.tts import mark_output, sign_output
    from speechlm.tasks.tts import TTS, load_prompt_audio
    from speechlm.tasks.vc import as_target, convert_voice, load_vc_audio

    wav, sr = load_vc_audio(args.input)
    with as_target():
        target, target_sr = load_prompt_audio(args.target) if args.target is not None else (None, None)
    torch.set_num_threads(args.threads)
    if len(wav) / sr > 20:  # analysis and synthesis: about 8-12x real time on one core
        print(f"converting {len(wav) / sr:.0f} s of audio (about {len(wav) / sr / 10:.0f} s on one core)...",
              file=sys.stderr)
    tts = TTS.load()
    res = convert_voice(tts, wav, sr, target, target_sr, args.description)
    out, payload = mark_output(res.wav, res.sample_rate, tts, args.no_watermark, "vc")
    save_audio(args.output, out, res.sample_rate)
    if not args.no_sign:
        sign_output(args.output, tts, args.description or "", args.target, payload)
    how = f"in the voice of {args.target}" if args.target else f"as described ({style.summary(unknown=False)})"
    print(f"{args.output}: {len(res.wav) / res.sample_rate:.2f} s {how}, in {res.seconds:.1f} s", file=sys.stderr)
    return 0
