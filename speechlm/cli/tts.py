"""``speechlm tts TEXT -o OUT.wav``: zero-shot text-to-speech with the codec LM."""

from __future__ import annotations

import argparse
import sys

from speechlm.cli._common import add_command

LM_HELP = ("TTS model: 'default' (the shipped tts_duration), lm_default (the codec LM), an asset name, a "
           "checkpoint or a training run folder")


def add_sampling_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--seed", type=int, default=0, help="random seed (the same seed gives the same audio)")
    p.add_argument("--temperature", type=float, default=None,
                   help="sampling temperature (0: greedy; default 1.0 for a codec LM, greedy for an aligned LM)")
    p.add_argument("--top-k", type=int, default=50, help="sample among the k most likely codes (0: all)")
    p.add_argument("--top-p", type=float, default=0.9, help="nucleus sampling mass (1: off)")
    p.add_argument("--retries", type=int, default=2,
                   help="draw a chunk again when it runs to the length cap without a stop token (default 2)")
    p.add_argument("--model", default=None, help=LM_HELP)
    p.add_argument("--codec", default=None, help="codec model (default: the shipped codec the LM was trained on)")
    p.add_argument("--threads", type=int, default=1,
                   help="torch threads (default 1: the model is small; on a busy machine more threads mostly add "
                   "synchronisation cost)")


def register(sub: argparse._SubParsersAction) -> None:
    p = add_command(
        sub, "tts", "speak text, in the voice of a 1-20 s prompt (zero-shot) or as a style description says", _tts,
        description="Text to speech. The default model (tts_duration) predicts phone durations, pitch and "
        "source-filter codec frames from phonemes; with --prompt REF.wav it takes the prompt's pitch range and "
        "timbre; with --adapt-steps 100 its decoder also trains a few seconds on the prompt and its transcript "
        "(--prompt-text, else what Whisper base hears): closer to the speaker, less clear. A codec LM "
        "(--model lm_default) continues a prompt instead and needs --prompt-text. "
        "Long text is split into sentences and joined smoothly. The sampling options apply to codec LMs only.\n\n"
        "  speechlm tts \"Hello there.\" -o hello.wav\n"
        "  speechlm tts \"Good morning.\" -o out.wav --prompt ref.wav --prompt-text \"what ref.wav says\"")
    p.add_argument("text", nargs="?", help="the text to speak")
    p.add_argument("-o", "--output", help="audio file to write (.wav, .flac, ...); required with a text")
    p.add_argument("--speaker", default=None, metavar="NAME",
                   help="tts_multilingual: one of its training voices for --lang instead of the language's default "
                        "(a unique part of the name will do); not with --prompt")
    p.add_argument("--list-speakers", action="store_true",
                   help="print the model's voices for --lang (the default marked) and exit")
    p.add_argument("--prompt", default=None, help="voice prompt audio (1-20 s; 3-10 s works best)")
    p.add_argument("--prompt-text", default=None,
                   help="transcript of the prompt (needed by codec LMs; the default model uses it only with "
                   "--adapt-steps, and there hears it with Whisper base when it is not given)")
    p.add_argument("--adapt-steps", type=int, default=None,
                   help="default model with --prompt: also adapt its decoder to the prompt for this many steps "
                   "(100 is the measured setting, ~10 s on a CPU core: speaker similarity up, intelligibility "
                   "down; docs/tts.md). Default 0: only the pitch range and timbre move")
    p.add_argument("--pace", type=float, default=1.0,
                   help="speaking pace of the default (duration-based) model: >1 slower, <1 faster (0.25-4)")
    p.add_argument("--lang", default="en",
                   help="language of the text and the prompt (espeak-ng code): en with the default model; cs, es, "
                        "fr, it, nl with the shipped tts_multilingual (taken when --model is not given)")
    p.add_argument("--via-tokens", action="store_true",
                   help="default (duration-based) model: make the audio from its codec_sf tokens, as a token LM's "
                        "output is heard, instead of from its unquantised parameters (the default: as clear to "
                        "Whisper, smoother to DNSMOS; docs/tts.md#measured)")
    p.add_argument("--description", default=None,
                   help="style description, e.g. \"A woman speaks quickly in a high, lively voice with a little "
                   "room echo.\": sets gender, pitch (low/moderate/high), pitch range (flat/lively), pace, a "
                   "whisper, background noise and room echo, in the words the data pipeline's descriptions use "
                   "(docs/tts.md#style-descriptions); with --prompt or --speaker not gender, pitch or range. "
                   "Duration-based models only")
    p.add_argument("--max-chars", type=int, default=2000, help="refuse longer text (default 2000)")
    p.add_argument("--no-sign", action="store_true",
                   help="do not add the signed provenance manifest (speechlm provenance verify) to the output")
    p.add_argument("--no-watermark", action="store_true",
                   help="research only: do not embed the audio watermark (recorded in the signed manifest)")
    p.add_argument("--no-transcript-check", action="store_true",
                   help="skip the check that --prompt-text matches the prompt audio")
    p.add_argument("--min-length", type=float, default=None,
                   help="no stop before this fraction of the length the text takes at the prompt's pace "
                   "(default 0.8; the model alone tends to stop early, at a pause)")
    add_sampling_args(p)


def _tts(args: argparse.Namespace) -> int:
    from speechlm.cli._common import check_output_file, check_sampling_args
    from speechlm.errors import SpeechLMError

    # Everything that can be checked is checked before the model loads.
    if args.list_speakers:
        return _list_speakers(args)
    if args.text is None or args.output is None:
        raise SpeechLMError("give the text to speak and -o OUTPUT (or --list-speakers)")
    if args.speaker is not None and args.prompt is not None:
        raise SpeechLMError("--speaker chooses one of the model's voices; --prompt sets the voice instead: give one "
                            "or the other")
    check_sampling_args(args)
    check_output_file(args.output, "audio")
    from speechlm.tasks.tts import tts_kind
    from speechlm.tasks.tts_duration import default_model_for

    args.model = default_model_for(args.model, args.lang)  # other languages: the shipped multilingual model
    kind = tts_kind(args.model)
    if kind == "lm" and args.prompt is not None and not (args.prompt_text or "").strip():
        raise SpeechLMError("a prompt needs its transcript (--prompt-text) with a codec LM")
    if kind in ("acoustic", "aligned") and not 0.25 <= args.pace <= 4.0:
        raise SpeechLMError(f"--pace must be between 0.25 and 4, got {args.pace:g}")
    if args.adapt_steps is not None:
        if kind != "acoustic" or args.prompt is None:
            raise SpeechLMError("--adapt-steps adapts the default (duration-based) model to a --prompt")
        if not 0 <= args.adapt_steps <= 2000:
            raise SpeechLMError(f"--adapt-steps must be 0-2000, got {args.adapt_steps}")
    if args.description is not None:
        if kind != "acoustic":
            # Accepting it and speaking in the default style would look like it worked.
            raise SpeechLMError("--description is for the duration-based models (the default): a codec LM has no "
                                "style control")
        from speechlm.tasks.tts_style import check_style

        style = check_style(args.description, "prompt" if args.prompt is not None else "speaker"
                            if args.speaker is not None else None, args.pace)
        print(f"style: {style.summary(unknown=False)}", file=sys.stderr)  # the task warns of the rest
    if kind != "acoustic" and args.speaker is not None:
        raise SpeechLMError("--speaker is for the duration-based models (tts_multilingual's voices)")
    if kind != "acoustic" and args.via_tokens:
        raise SpeechLMError("--via-tokens is for the duration-based model (a codec LM's audio always comes from "
                            "its tokens)")
    if kind == "lm" and args.temperature is None:
        args.temperature = 1.0

    import torch

    from speechlm.audio.io import save_audio
    from speechlm.tasks.tts import MIN_LENGTH, TTS, load_prompt_audio

    min_length = MIN_LENGTH if args.min_length is None else args.min_length
    prompt, prompt_sr = load_prompt_audio(args.prompt) if args.prompt is not None else (None, None)
    torch.set_num_threads(args.threads)
    tts = TTS.load(args.model, args.codec)
    kw = {"pace": args.pace} if kind in ("acoustic", "aligned") else {}
    if args.adapt_steps is not None:
        kw["adapt_steps"] = args.adapt_steps
    if args.description is not None:
        kw["description"] = args.description
    if args.speaker is not None:
        tts.speaker_index(args.speaker, args.lang)  # a one-line error before any synthesis
        kw["speaker"] = args.speaker
    if args.via_tokens:
        tts.via_tokens = True
    if args.adapt_steps and args.prompt is not None and args.prompt_text is None:
        tts.hear = whisper_hearing(args.threads)
    if args.adapt_steps and tts.am.config.n_speakers:
        raise SpeechLMError("--adapt-steps adapts the one-voice English model; this model has several voices (a "
                            "prompt's voice is shifted only)")
    if args.adapt_steps:
        print(f"adapting the voice to {args.prompt} ({args.adapt_steps} steps, about 10 s per 100 on a core)...",
              file=sys.stderr)
    res = tts.generate(args.text, prompt=prompt, prompt_sr=prompt_sr, prompt_text=args.prompt_text, lang=args.lang,
                       **kw, seed=args.seed, temperature=args.temperature, top_k=args.top_k, top_p=args.top_p,
                       max_chars=args.max_chars, check_transcript=not args.no_transcript_check,
                       retries=args.retries, min_length=min_length)
    wav, payload = mark_output(res.wav, res.sample_rate, tts, args.no_watermark)
    save_audio(args.output, wav, res.sample_rate)
    if not args.no_sign:
        sign_output(args.output, tts, args.text, args.prompt, payload)
    capped = sum(res.hit_cap)
    print(f"{args.output}: {res.duration:.2f} s, {len(res.chunks)} chunk(s), RTF {res.rtf:.2f}"
          + (f", {capped} chunk(s) hit the length cap" if capped else ""), file=sys.stderr)
    return 0


def _list_speakers(args: argparse.Namespace) -> int:
    """``speechlm tts --list-speakers --lang L``: the duration model's voices for ``L``, the default first."""
    from speechlm.errors import SpeechLMError
    from speechlm.tasks.tts import TTS, tts_kind
    from speechlm.tasks.tts_duration import default_model_for
    from speechlm.text.g2p import resolve_lang

    model = default_model_for(args.model, args.lang)
    if tts_kind(model) != "acoustic":
        raise SpeechLMError("--list-speakers lists a duration-based model's voices (tts_multilingual)")
    tts = TTS.load(model)
    lang = resolve_lang(args.lang)
    names = tts.speakers(lang)
    if not names:
        print(f"{tts.am.model_id}: one voice (the model's own)")
        return 0
    first = tts.default_speaker(lang)
    for name in sorted(names, key=lambda n: n != first):
        print(f"{name}{'  (default)' if name == first else ''}")
    return 0


def whisper_hearing(threads: int):
    """(wav16 ``[T]``, lang) -> what Whisper base hears: how a prompt without ``--prompt-text`` gets its
    transcript for adaptation. Refuses in one line without faster-whisper."""
    from speechlm.errors import MissingDependencyError, SpeechLMError
    from speechlm.eval.whisper import WhisperJudge

    try:
        judge = WhisperJudge.load("base", threads=threads)
    except MissingDependencyError:
        raise SpeechLMError("--adapt-steps needs the prompt's transcript: give --prompt-text, or install "
                            "'speechlm[eval]' so Whisper base can hear it") from None
    return lambda wav16, lang: judge.transcribe(wav16, 16000, lang)


def mark_output(wav, sr: int, tts, off: bool, family: str | None = None,
                regions: list[tuple[float, float]] | None = None):
    """(audio ``[T]`` with the watermark of :mod:`speechlm.safety.watermark`, payload) or (audio, None) when
    ``off``. ``family``: default the TTS model's kind; ``regions``: mark only these spans (seconds)."""
    import numpy as np

    from speechlm.safety.watermark import embed, make_payload

    if off:
        return wav, None
    payload = make_payload(family or ("tts_duration" if hasattr(tts, "am") else "lm"))
    return embed(np.asarray(wav, np.float32).reshape(-1), sr, payload, regions), payload


def sign_output(path: str, tts, text: str, prompt: str | None, payload: int | None = None) -> None:
    """Add the signed provenance manifest of a generated file (:mod:`speechlm.safety.provenance`); ``payload``:
    the watermark's, None when the audio is not marked."""
    from pathlib import Path

    from speechlm.safety.provenance import sha256_hex, sign_file

    model = tts.am.model_id if hasattr(tts, "am") else tts.lm.model_id
    sign_file(path, {"model": model, "tokenizer": tts.codec.tokenizer_id, "text_sha256": sha256_hex(text),
                     "prompt_audio_sha256": sha256_hex(Path(prompt).read_bytes()) if prompt else None,
                     "watermarked": payload is not None, "watermark_payload": payload})
