"""``speechlm text ...``: normalisation, grapheme-to-phoneme, symbol tables."""

from __future__ import annotations

import argparse
import sys

from speechlm.cli._common import add_command, add_group

_TEXT_HELP = "the text; '-' reads stdin, one text a line"


def _read_texts(text: str) -> list[str]:
    if text == "-":
        return [line.rstrip("\n") for line in sys.stdin]
    return [text]


def _normalize(args: argparse.Namespace) -> int:
    from speechlm.text.normalize import normalize_for_wer, normalize_text

    fn = normalize_for_wer if args.wer else normalize_text
    for t in _read_texts(args.text):
        print(fn(t, args.lang))
    return 0


def _g2p(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from speechlm.text.g2p import phonemize, resolve_lang
    from speechlm.text.normalize import normalize_text

    lang = resolve_lang(args.lang)
    texts = _read_texts(args.text)
    if not args.no_normalize:
        texts = [normalize_text(t, lang) for t in texts]
    step = 256
    with tqdm(
        total=len(texts), desc="g2p", unit="line", file=sys.stderr, disable=len(texts) < 2 * step
    ) as bar:
        for i in range(0, len(texts), step):
            chunk = texts[i : i + step]
            for ph in phonemize(chunk, lang, stress=args.stress):
                print(ph)
            bar.update(len(chunk))
    return 0


def _symbols(args: argparse.Namespace) -> int:
    from speechlm.text.symbols import char_symbols, default_symbols

    table = default_symbols() if args.kind == "phoneme" else char_symbols(args.lang or None)
    if args.output:
        table.save(args.output)
        print(f"wrote {args.output} ({len(table)} symbols, hash {table.hash})", file=sys.stderr)
    else:
        sys.stdout.write(table.to_json())
    return 0


def _zh_messages(limit: int) -> list[str]:
    """Short Chinese program messages from the installed gettext catalogues (dev-time Mandarin sample)."""
    import gettext
    import re
    from pathlib import Path

    out: list[str] = []
    for mo in sorted(Path("/usr/share/locale/zh_CN/LC_MESSAGES").glob("*.mo")):
        try:
            with open(mo, "rb") as f:
                cat = gettext.GNUTranslations(f)._catalog  # noqa: SLF001 - the only way to list a catalogue
        except Exception:  # noqa: BLE001 - a broken catalogue is skipped
            continue
        for v in sorted(x for x in cat.values() if isinstance(x, str)):
            v = re.sub(r"%\w|[_&]|\s+", " ", v).strip()
            if re.fullmatch(r"[\u4e00-\u9fff，。？！、 ]{4,40}", v):
                out.append(v)
        if len(out) >= limit:
            break
    return out[:limit]


def _build_inventory(args: argparse.Namespace) -> int:
    import json

    from speechlm.data.sentences import sentence_pool
    from speechlm.text.g2p import espeak_version, supported_languages
    from speechlm.text.inventory import SEED_SENTENCES, derive_inventory
    from speechlm.utils.atomic import atomic_write_text

    samples: dict[str, list[str]] = {}
    for lang in supported_languages():
        if lang == "en-us":  # same voice as "en"
            continue
        pool = (
            [s.text for s in sentence_pool("en" if lang.startswith("en") else lang)] if lang != "cmn" else []
        )
        # Every k-th sentence of the sorted, de-duplicated pool: deterministic and spread over the sources.
        k = max(1, len(pool) // args.per_lang)
        picked = pool[::k][: args.per_lang]
        if lang == "cmn":
            picked = _zh_messages(args.per_lang)
        samples[lang] = [*SEED_SENTENCES.get(lang, []), *picked]
        print(f"{lang}: {len(samples[lang])} sentences", file=sys.stderr)
    counts = derive_inventory(samples)
    phones = sorted(p for p in counts if counts[p] >= args.min_count or p in ("ˈ", "ˌ"))
    asset = {
        "format": "speechlm-phonemes",
        "version": args.version,
        "espeak_ng": espeak_version(),
        "languages": sorted({*samples, "en-us"}),
        "description": "IPA phones (plus stress marks and Mandarin tone letters) produced by speechlm.text.g2p "
        "(espeak-ng through espeakng-loader) on sample text of each language; sorted; frozen.",
        "phones": phones,
    }
    atomic_write_text(args.output, json.dumps(asset, ensure_ascii=False, indent=1) + "\n")
    print(f"wrote {args.output}: {len(phones)} phones from {sum(counts.values())} tokens", file=sys.stderr)
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    _, cmds = add_group(
        sub,
        "text",
        "text normalisation, grapheme-to-phoneme, symbol tables",
        description="Text front end: normalise text for reading, convert it to phonemes with "
        "espeak-ng, and print the phoneme/character symbol tables.",
    )

    p = add_command(
        cmds,
        "normalize",
        "write numbers and abbreviations out in words",
        _normalize,
        description="Normalise text for reading aloud: Unicode, quotes, whitespace, abbreviations, "
        "numbers (cardinals, ordinals, years, decimals, currency, percentages, times).\n"
        "Example: speechlm text normalize 'Dr. Smith paid $3.50 in 1984.'",
    )
    p.add_argument("text", help=_TEXT_HELP)
    p.add_argument("--lang", default="en", help="language code (default: en)")
    p.add_argument(
        "--wer",
        action="store_true",
        help="print the WER comparison form instead (lower case, no punctuation)",
    )

    p = add_command(
        cmds,
        "g2p",
        "print the phonemes of a text",
        _g2p,
        description="Phonemes through espeak-ng 1.52: phones separated by spaces, words by ' | '.\n"
        "Languages: en en-us en-gb de fr es it ru cmn ja cs nl fi pt pl.\n"
        "Example: speechlm text g2p 'Guten Tag' --lang de",
    )
    p.add_argument("text", help=_TEXT_HELP)
    p.add_argument("--lang", default="en", help="language code (default: en)")
    p.add_argument("--stress", action="store_true", help="keep stress marks (ˈ ˌ) as separate tokens")
    p.add_argument("--no-normalize", action="store_true", help="skip text normalisation before G2P")

    p = add_command(
        cmds,
        "symbols",
        "print or save a symbol table as JSON",
        _symbols,
        description="The default phoneme table (phonemes_v1) or a character table.",
    )
    p.add_argument("--kind", choices=["phoneme", "char"], default="phoneme")
    p.add_argument(
        "--lang",
        action="append",
        help="char table: a language whose alphabet to include (repeatable; default all)",
    )
    p.add_argument("-o", "--output", help="write to this file instead of stdout")

    p = add_command(
        cmds,
        "build-inventory",
        "derive the phoneme inventory asset (development tool)",
        _build_inventory,
        description="Phonemize sample sentences of every language and write the sorted phone list. "
        "Used once to make speechlm/assets/phonemes_v1.json; a new inventory must get a "
        "new version and file name.",
    )
    p.add_argument("-o", "--output", required=True)
    p.add_argument("--per-lang", type=int, default=400, help="sentences per language from the offline pools")
    p.add_argument("--min-count", type=int, default=1, help="drop phones seen fewer times")
    p.add_argument("--version", type=int, default=1)
