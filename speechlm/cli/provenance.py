"""``speechlm provenance verify|key``: check the signed manifest of generated audio; export the signing key."""

from __future__ import annotations

import argparse
import json
import sys

from speechlm.cli._common import add_command, add_group


def register(sub: argparse._SubParsersAction) -> None:
    _, cmds = add_group(
        sub, "provenance", help="signed provenance of generated audio (Ed25519 manifests)",
        description="Every file `speechlm tts` and `speechlm edit` write carries a signed manifest (a RIFF chunk in "
        "WAV, FILE.provenance.json beside other formats) unless --no-sign is given.\n\n"
        "  speechlm provenance verify out.wav             # exit 0: valid and matching; 1: the reason\n"
        "  speechlm provenance key --export signer.pem    # your public key, for others to trust")
    p = add_command(cmds, "verify", "check that a file's signed manifest is valid and matches its audio", _verify)
    p.add_argument("file", help="audio file (WAV with its chunk, or any file with FILE.provenance.json)")
    p.add_argument("--key", default=None, help="PEM public key the signature must come from")
    p.add_argument("--json", action="store_true", help="print the manifest as JSON")
    p = add_command(cmds, "key", "print (or export) the public half of your signing key", _key)
    p.add_argument("--export", default=None, metavar="FILE", help="write the PEM public key to FILE")


def _verify(args: argparse.Namespace) -> int:
    from pathlib import Path

    from speechlm.safety.provenance import ProvenanceError, verify_file

    trusted = None
    if args.key is not None:
        if not Path(args.key).is_file():
            print(f"speechlm: error: {args.key}: no such file", file=sys.stderr)
            return 2
        trusted = Path(args.key).read_text()
    try:
        v = verify_file(args.file, trusted)
    except ProvenanceError as exc:
        print(f"{args.file}: NOT verified: {exc}", file=sys.stderr)
        return 1
    m = v.manifest
    if args.json:
        print(json.dumps({**m, "signer": v.signer}, indent=2))
    else:
        print(f"{args.file}: verified; signed by {v.signer} at {m['created']}; generator {m['generator']}, model "
              f"{m['model']}; watermarked: {m['watermarked']}")
    return 0


def _key(args: argparse.Namespace) -> int:
    from pathlib import Path

    from speechlm.errors import SpeechLMError
    from speechlm.safety.provenance import public_key_pem

    if args.export:
        from speechlm.utils.atomic import atomic_path

        if not Path(args.export).resolve().parent.is_dir():
            raise SpeechLMError(f"{args.export}: its folder does not exist")

        with atomic_path(args.export) as tmp:
            tmp.write_text(public_key_pem())
        print(args.export)
    else:
        print(public_key_pem(), end="")
    return 0
