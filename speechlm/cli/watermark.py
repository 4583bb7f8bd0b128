"""``speechlm watermark embed|detect``: the 16-bit mark on generated audio (:mod:`speechlm.safety.watermark`)."""

from __future__ import annotations

import argparse
import json
import sys

from speechlm.cli._common import add_command, add_group


def register(sub: argparse._SubParsersAction) -> None:
    _, cmds = add_group(
        sub, "watermark", help="embed or detect the audio watermark (16-bit payload: model family + user id)",
        description="Every output of `speechlm tts`, `speechlm edit`, `speechlm semantic decode` and the server "
        "carries the mark unless --no-watermark is given. The payload: 4 bits model family, 12 bits a user id "
        "($SPEECHLM_WATERMARK_ID, 0-4095).\n\n"
        "  speechlm watermark detect out.wav --json      # {\"detected\": ..., \"score\": ..., \"payload\": ...}\n"
        "  speechlm watermark embed in.wav -o marked.wav --payload 4660")
    p = add_command(cmds, "embed", "mark an audio file", _embed)
    p.add_argument("input", help="audio file (mixed to mono)")
    p.add_argument("-o", "--output", required=True, help="marked audio file to write (at the input's rate)")
    p.add_argument("--payload", type=int, default=None,
                   help="16-bit payload 0-65535 (default: family 'manual' + $SPEECHLM_WATERMARK_ID)")
    p = add_command(cmds, "detect", "look for the mark: decision, score, p-value, payload, marked regions", _detect)
    p.add_argument("input", help="audio file")
    p.add_argument("--json", action="store_true",
                   help="print {detected, score, payload, p_value, family, user_id, bit_confidence, regions, speed}")


def _embed(args: argparse.Namespace) -> int:
    from speechlm.cli._common import check_input_file, check_output_file
    from speechlm.safety.watermark import check_payload, embed_file, make_payload

    check_input_file(args.input)
    check_output_file(args.output, "audio")
    payload = make_payload("manual") if args.payload is None else check_payload(args.payload)
    dur = embed_file(args.input, args.output, payload)
    print(f"{args.output}: {dur:.2f} s marked, payload {payload} (0x{payload:04x})", file=sys.stderr)
    return 0


def _detect(args: argparse.Namespace) -> int:
    from speechlm.cli._common import check_input_file
    from speechlm.safety.watermark import detect_file

    check_input_file(args.input)
    d = detect_file(args.input)
    if args.json:
        print(json.dumps(d.to_json()))
    elif d.detected:
        j = d.to_json()
        regions = ", ".join(f"{a:.2f}-{b:.2f} s" for a, b in d.regions)
        print(f"{args.input}: watermark detected (score {d.score:.2f}, p {d.p_value:.2g}); payload {d.payload} "
              f"(family {j['family']}, user id {j['user_id']}); marked: {regions}")
    else:
        print(f"{args.input}: no watermark found (score {d.score:.2f}, p {d.p_value:.2g})")
    return 0
