"""Real sentences that install offline, for the synthetic corpus.

Sources, in order of preference per language (all are Debian packages, see ``scripts/setup.sh``):

1. Debian's fortune cookies (``fortunes``, ``fortunes-de``, ``-es``, ``-it``, ``-ru``, ``-cs``): quotations,
   proverbs and jokes. The offensive sections (``off/``) are never read.
2. The dialogue translations of the game *Fish Fillets NG* (``fillets-ng-data``): conversational prose in
   bg, cs, de, en, es, fr, it, nl, pl, ru, sv. French has no fortune package, so this is its main source.
3. Gettext message catalogues (``/usr/share/locale/<lang>/LC_MESSAGES/*.mo``): program messages, the fallback
   for languages with neither of the above (e.g. Finnish). Short and technical, but real text.

A user's own file (``--text-file``, one sentence a line) replaces all of them.

Cleaning keeps sentence-like pieces of 3–25 words made of letters and ordinary punctuation: no digits, URLs,
e-mail addresses, code, markup or ASCII art. Sampling is a seeded shuffle of the de-duplicated, sorted pool,
so the same seed always gives the same sentences.
"""

from __future__ import annotations

import functools
import gettext
import os
import random
import re
import unicodedata
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from speechlm.errors import SpeechLMError


def norm_text(text: str) -> str:
    """Lower case, words of letters and digits (anything else separates them): how two sentences are compared
    (held-out exclusion, repeats); "Held-out sentence." and "held out sentence" are the same."""
    return " ".join("".join(c if c.isalnum() else " " for c in text.lower()).split())

FORTUNES_DIR = Path("/usr/share/games/fortunes")
FILLETS_DIR = Path("/usr/share/games/fillets-ng/script")
LOCALE_DIR = Path("/usr/share/locale")

MIN_WORDS = 3
MAX_WORDS = 25

# Fortune folders per language; "" is the English top level. Files that are art or lists rather than prose.
_FORTUNE_DIRS = {"en": "", "de": "de", "es": "es", "it": "it", "ru": "ru", "cs": "cs"}
_FORTUNE_SKIP = {
    "asciiart",
    "ascii-art",
    "art",
    "banner",
    "translate-me",
    "linux",
    "perl",
    "debian",
    "computers",
    "kernelnewbies",
    "zippy",
    "riddles",
    "songs-poems",
    "woerterbuch",
    "quiz",
    "lkml",
    "pocitace",
    "M$",
    "programming",
    "computer",
    "fortunes-o",
    "definizioni",
    # stereotype jokes: real text, but not what a demo or a voice corpus should say
    "ethnic",
    "men-women",
}
# Fish Fillets NG spells some languages differently from ISO 639-1.
_FILLETS_LANG = {
    "en": "en",
    "de": "de",
    "fr": "fr",
    "es": "es",
    "it": "it",
    "ru": "ru",
    "cs": "cs",
    "nl": "nl",
    "pl": "pl",
    "sv": "sv",
    "bg": "bg",
    "sl": "sl",
}

_BAD = re.compile(r"(https?:|www\.|ftp:|@|\\|[<>{}\[\]|_=#$%^*~`/+&]|\d|\w\.\w{2,4}\b|\.\.\.\.)")
_SENTENCE_END = re.compile(r"(?<=[.!?…])\s+(?=[\"'«„“¿¡]?[^\W\d_])", re.UNICODE)
_ALLOWED_PUNCT = set(" .,;:!?'\"-–—«»„“”‘’¿¡…()")


@dataclass(frozen=True)
class Sentence:
    """A cleaned sentence and its source (``fortunes:de/zitate``, ``fillets:fr``, ``file:NAME``...)."""

    text: str
    source: str


def clean_sentence(line: str) -> str | None:
    """Normalise one candidate; return it, or ``None`` if it is not a plain 3–25 word sentence."""
    s = unicodedata.normalize("NFC", line)
    s = s.replace("\u00a0", " ").replace("\t", " ")
    s = " ".join(s.split())
    s = re.sub(r"(?<!\.)\.\.(?!\.)", ".", s)  # a doubled full stop is a typo, an ellipsis has three
    s = s.strip(" -–—\"'“”«»„()")
    if not s or _BAD.search(s) or "--" in s:
        return None
    first = next((ch for ch in s if ch.isalpha()), "")
    if first.lower() == first and first.upper() != first:
        return None  # starts in lower case: a fragment, not a sentence
    if s.count("(") != s.count(")"):
        s = s.replace("(", "").replace(")", "")
    for ch in s:
        if not (ch.isalpha() or ch in _ALLOWED_PUNCT or unicodedata.category(ch) == "Mn"):
            return None
    words = s.split()
    if not MIN_WORDS <= len(words) <= MAX_WORDS:
        return None
    letters = sum(ch.isalpha() for ch in s)
    if letters < 0.6 * len(s.replace(" ", "")):
        return None
    # Shouting, acronyms-only lines and title-case headings read badly and are rarely prose.
    upper = sum(ch.isupper() for ch in s)
    if upper > 0.3 * letters:
        return None
    if s[-1] not in ".!?…":
        s += "."
    return s


def split_sentences(text: str) -> list[str]:
    """Split a paragraph into sentences at ., ! or ? followed by a capital-ish letter."""
    return [p for p in _SENTENCE_END.split(" ".join(text.split())) if p]


def _read_text(path: Path) -> str:
    raw = path.read_bytes()
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def _fortune_files(lang: str) -> list[Path]:
    sub = _FORTUNE_DIRS.get(lang)
    if sub is None:
        return []
    folder = FORTUNES_DIR / sub if sub else FORTUNES_DIR
    if not folder.is_dir():
        return []
    files = []
    for p in sorted(folder.iterdir()):
        if not p.is_file() or p.suffix in (".dat", ".u8") or p.is_symlink():
            continue
        if p.name.removesuffix(".fortunes") in _FORTUNE_SKIP:
            continue
        # Debian ships a UTF-8 copy (".u8") next to files in legacy encodings.
        u8 = p.with_name(p.name + ".u8")
        files.append(u8 if u8.is_file() else p)
    return files


def _fortune_sentences(lang: str) -> Iterator[Sentence]:
    for path in _fortune_files(lang):
        name = path.name.removesuffix(".u8").removesuffix(".fortunes")
        source = f"fortunes:{_FORTUNE_DIRS[lang] or 'en'}/{name}"
        for cookie in re.split(r"^%\s*$", _read_text(path), flags=re.M):
            # Drop attribution lines ("-- Mark Twain") and indented verse/code blocks.
            lines = [
                ln
                for ln in cookie.splitlines()
                if ln.strip() and not re.match(r"^\s*(--|—|–)", ln) and not ln.startswith("        ")
            ]
            if "\b" in cookie or len(lines) > 12:
                continue
            for sent in split_sentences(" ".join(lines)):
                s = clean_sentence(sent)
                if s:
                    yield Sentence(s, source)


_DIALOG_STR = re.compile(r'dialogStr\(\s*"((?:[^"\\]|\\.)*)"\s*\)')


def _fillets_sentences(lang: str) -> Iterator[Sentence]:
    code = _FILLETS_LANG.get(lang)
    if code is None or not FILLETS_DIR.is_dir():
        return
    for path in sorted(FILLETS_DIR.glob(f"*/dialogs_{code}.lua")):
        for m in _DIALOG_STR.finditer(_read_text(path)):
            for sent in split_sentences(m.group(1).replace('\\"', '"')):
                s = clean_sentence(sent)
                if s:
                    yield Sentence(s, f"fillets:{code}")


def _gettext_sentences(lang: str) -> Iterator[Sentence]:
    folder = LOCALE_DIR / lang / "LC_MESSAGES"
    if not folder.is_dir():
        return
    for path in sorted(folder.glob("*.mo")):
        try:
            with path.open("rb") as f:
                catalog = gettext.GNUTranslations(f)._catalog  # noqa: SLF001 - the only way to list messages
        except Exception:  # noqa: BLE001 - a broken catalogue is just skipped
            continue
        if path.stem.startswith("iso_"):
            continue  # lists of language and country names
        for key, msg in sorted(catalog.items(), key=lambda kv: str(kv[0])):
            # Only whole sentences: UI labels and format strings are not prose.
            if not key or not isinstance(msg, str) or not msg.rstrip().endswith((".", "!", "?")):
                continue
            for sent in split_sentences(msg.replace("\n", " ")):
                s = clean_sentence(sent)
                if s:
                    yield Sentence(s, f"gettext:{path.stem}")


_SOURCES = (_fortune_sentences, _fillets_sentences, _gettext_sentences)
# Below this many sentences a source is topped up from the next one.
_ENOUGH = 500


def sentence_pool(lang: str, text_file: str | os.PathLike | None = None) -> list[Sentence]:
    """All cleaned sentences for ``lang``, de-duplicated and sorted (the order sampling starts from)."""
    if text_file is not None:
        path = Path(text_file)
        if not path.is_file():
            raise SpeechLMError(f"text file {path} does not exist")
        sents = (
            Sentence(s, f"file:{path.name}") for s in map(clean_sentence, _read_text(path).splitlines()) if s
        )
        pool = _dedupe(sents)
        if not pool:
            raise SpeechLMError(
                f"text file {path} has no usable sentence ({MIN_WORDS}-{MAX_WORDS} words of plain "
                "text, one a line)"
            )
        return pool
    return list(_builtin_pool(lang))


@functools.lru_cache(maxsize=16)
def _builtin_pool(lang: str) -> tuple[Sentence, ...]:
    pool: list[Sentence] = []
    for source in _SOURCES:
        pool = _dedupe([*pool, *source(lang)])
        if len(pool) >= _ENOUGH:
            break
    return tuple(pool)


def _dedupe(sents: Iterable[Sentence]) -> list[Sentence]:
    seen: dict[str, Sentence] = {}
    for s in sents:
        seen.setdefault(s.text.casefold(), s)
    return sorted(seen.values(), key=lambda s: (s.text, s.source))


class SentenceSampler:
    """Deterministic stream of sentences for one language: a seeded shuffle, cycled when exhausted."""

    def __init__(self, lang: str, seed: int, text_file: str | os.PathLike | None = None):
        self.lang = lang
        self.pool = sentence_pool(lang, text_file)
        if not self.pool:
            raise SpeechLMError(
                f"no offline text for language {lang!r}: install its fortunes package or "
                "fillets-ng-data, or pass --text-file"
            )
        self._rng = random.Random(f"sentences:{seed}:{lang}")
        self._order: list[int] = []

    def take(self, n: int) -> list[Sentence]:
        out = []
        for _ in range(n):
            if not self._order:
                self._order = list(range(len(self.pool)))
                self._rng.shuffle(self._order)
            out.append(self.pool[self._order.pop()])
        return out
