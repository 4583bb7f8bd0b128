"""Grapheme-to-phoneme conversion through espeak-ng (the library bundled by ``espeakng-loader``).

Output format (what :func:`phonemize` returns for one text)::

    "h ə l oʊ | w ɜː l d"

phone symbols separated by single spaces, words separated by ``" | "``; punctuation is dropped; stress marks
are dropped unless ``stress=True`` (then ``ˈ`` / ``ˌ`` are separate tokens placed before the stressed vowel).
The word groups correspond one to one to the words of :func:`split_words` (what :func:`phonemize_words`
returns), so word spans can be recovered for forced alignment and editing.

Why the bundled library: Debian's espeak-ng 1.51 garbles Mandarin; espeakng-loader ships libespeak-ng 1.52 and
its data. We drive it through phonemizer's ctypes wrapper
(:class:`~phonemizer.backend.espeak.wrapper.EspeakWrapper`) rather than
:class:`~phonemizer.backend.EspeakBackend` because the backend's post-processing loses the word structure we
need (it splits Japanese kana into one "word" each) and cannot give Mandarin's full tone contours.

Per-language notes:

* Languages written with spaces: a text is phonemized as one line (cross-word context such as French liaison
  is kept). When espeak merges or splits words (English "of the" comes back as one word, digits become
  several), that text is phonemized again one word per line, so the word groups always match
  :func:`split_words`.
* ``cmn``: espeak's IPA mode truncates tones to one character (tones 1 and 4 both print as ``5``), so each
  line is also run in espeak's mnemonic mode, which gives the full Chao contour; the tone becomes a separate
  token of IPA tone letters (``˥˥`` ``˧˥`` ``˨˩˦`` ``˥˩``, neutral ``˩˩``) after the syllable's vowel.
  Retroflex mnemonics that espeak leaves in its IPA output (``s.``, ``ts.``, ``i.``) are mapped to IPA (``ʂ``,
  ``tʂ``, ``ʅ``). Words are espeak's dictionary words, matched back to the characters by counting syllables
  (one tone per Han character); where that fails (digits, Latin letters) the whole run between punctuation is
  one word.
* ``ja``: espeak reads kana only (kanji come out as "chinese letter" in English), so text is first converted
  to hiragana with pykakasi, which also gives the word segmentation; the topic particles は/へ are read わ/え and
  the long-vowel mark ー repeats the previous vowel.
* Text in another script (Latin inside Japanese, say) is read by espeak's language switch; the ``(en)`` flags are
  removed, the phones kept.

Engines (one loaded library per espeak voice) are cached and guarded by a lock, so calls are thread-safe.
"""

from __future__ import annotations

import ctypes
import functools
import os
import re
import threading
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass

from speechlm.errors import MissingDependencyError, SpeechLMError

# Our language code -> espeak-ng voice. Keep in sync with speechlm/assets/phonemes_v1.json ("languages").
LANGUAGES: dict[str, str] = {
    "en": "en-us",
    "en-us": "en-us",
    "en-gb": "en-gb",
    "de": "de",
    "fr": "fr-fr",
    "es": "es",
    "it": "it",
    "ru": "ru",
    "cmn": "cmn",
    "ja": "ja",
    "cs": "cs",
    "nl": "nl",
    "fi": "fi",
    "pt": "pt",
    "pl": "pl",
}
WORD_SEP = "|"
STRESS_MARKS = ("ˈ", "ˌ")
NO_SPACE_LANGS = frozenset({"cmn", "ja"})
MIN_ESPEAK_VERSION = (1, 52)

# A word: letters/digits/marks, with inner apostrophes (don't, l'homme); hyphens and everything else split.
_WORD_RE = re.compile(r"[\w\u0300-\u036f]+(?:['’][\w\u0300-\u036f]+)*")
_FLAG_RE = re.compile(r"\([a-z]{2,3}(?:-[a-z0-9]+)*\)")
_HAN_RE = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
_TONE_DIGITS = str.maketrans("12345", "˩˨˧˦˥")
# espeak cmn phoneme mnemonics left in its IPA output -> IPA.
_CMN_FIX = {
    "s.": "ʂ",
    "ts.": "tʂ",
    "ts.h": "tʂʰ",
    "z.": "ʐ",
    "i.": "ʅ",
    "i..": "ɿ",
    "tsh": "tsʰ",
    "kh": "kʰ",
    "ph": "pʰ",
    "th": "tʰ",
    "tɕh": "tɕʰ",
}
# Other mnemonics espeak 1.52 leaves in its IPA output (Russian).
_PHONE_FIX = {'u"': "ʉ", "ɪ^": "ɪ"}


def supported_languages() -> list[str]:
    """The language codes :func:`phonemize` accepts."""
    return list(LANGUAGES)


def resolve_lang(lang: str) -> str:
    """Normalise a language code (case, ``_``) and check it is supported; raise SpeechLMError otherwise."""
    code = (lang or "").strip().lower().replace("_", "-")
    if code not in LANGUAGES:
        raise SpeechLMError(f"unsupported language {lang!r} for G2P; supported: {', '.join(LANGUAGES)}")
    return code


# ---------------------------------------------------------------------------------------------------------------
# The espeak engine


def _configure_espeak() -> None:
    """Point phonemizer at espeakng-loader's libespeak-ng 1.52 and its data (once per process)."""
    try:
        import espeakng_loader
        from phonemizer.backend.espeak.wrapper import EspeakWrapper
    except ImportError as exc:  # pragma: no cover - core dependencies
        raise MissingDependencyError(f"G2P needs phonemizer and espeakng-loader: {exc}") from None
    data = espeakng_loader.get_data_path()
    os.environ["ESPEAK_DATA_PATH"] = str(data)
    EspeakWrapper.set_library(str(espeakng_loader.get_library_path()))
    if hasattr(EspeakWrapper, "set_data_path"):
        EspeakWrapper.set_data_path(str(data))


_CONFIGURED = False
_CONFIG_LOCK = threading.Lock()


class _Engine:
    """One espeak voice: a loaded library copy (phonemizer copies the .so per wrapper) plus a lock."""

    def __init__(self, voice: str):
        global _CONFIGURED
        with _CONFIG_LOCK:
            if not _CONFIGURED:
                _configure_espeak()
                _CONFIGURED = True
        from phonemizer.backend.espeak.wrapper import EspeakWrapper

        self.wrapper = EspeakWrapper()
        version = tuple(self.wrapper.version[:2])
        if version < MIN_ESPEAK_VERSION:
            raise MissingDependencyError(
                f"espeak-ng {'.'.join(map(str, version))} loaded, need >= 1.52 (espeakng-loader's library)"
            )
        self.wrapper.set_voice(voice)
        self.voice = voice
        self.lock = threading.Lock()

    def run(self, text: str, ipa: bool = True) -> str:
        """Raw espeak output for one line: words separated by spaces, phones by ``_``."""
        # bit 1: IPA (else espeak's ASCII mnemonics); bits 8-15: the phoneme separator character.
        mode = ord("_") << 8 | (0x02 if ipa else 0x00)
        api = self.wrapper._espeak  # phonemizer's binding of espeak_TextToPhonemes
        out = []
        with self.lock:
            ptr = ctypes.pointer(ctypes.c_char_p(text.encode("utf-8")))
            while ptr.contents.value is not None:
                res = api.text_to_phonemes(ptr, 1, mode)
                if res:
                    out.append(res.decode("utf-8"))
        return " ".join(out)


@functools.cache
def _engine(voice: str) -> _Engine:
    return _Engine(voice)


def espeak_version() -> str:
    """Version of the espeak-ng library used for G2P (``"1.52.0"`` expected)."""
    return ".".join(map(str, _engine("en-us").wrapper.version))


def _parse(raw: str, keep_stress: bool) -> list[list[str]]:
    """Raw espeak output -> words -> phones; flags like ``(en)`` and empty phones removed."""
    words = []
    for w in raw.split():
        phones: list[str] = []
        for p in w.split("_"):
            # espeak marks some unstressed French syllables with "-"; not a phone
            p = unicodedata.normalize("NFC", _FLAG_RE.sub("", p).replace("-", ""))
            marks = [c for c in p if c in STRESS_MARKS]
            p = p.replace("ˈ", "").replace("ˌ", "")
            p = _PHONE_FIX.get(p, p)
            half = len(p) // 2
            if half and len(p) % 2 == 0 and p[:half] == p[half:]:  # "ss", Japanese "ää": a long phone
                p = p[:half] + "ː"
            if keep_stress and marks:
                phones.append(marks[0])
            if p:
                phones.append(p)
        if phones:
            words.append(phones)
    return words


# ---------------------------------------------------------------------------------------------------------------
# Word splitting


@dataclass(frozen=True)
class _Unit:
    """A word of the input and the text espeak reads for it."""

    word: str
    reading: str


def split_words(text: str, lang: str) -> list[str]:
    """The words :func:`phonemize` groups phones by: runs of letters/digits (inner apostrophes kept), hyphens and
    punctuation split. For ``ja`` pykakasi's segmentation; for ``cmn`` see the module notes (this function
    returns the runs between punctuation; phonemize may split them further into dictionary words)."""
    code = resolve_lang(lang)
    return [u.word for u in _units(text, code)]


def _units(text: str, code: str) -> list[_Unit]:
    text = unicodedata.normalize("NFKC" if code in NO_SPACE_LANGS else "NFC", text)
    if code == "ja":
        return _ja_units(text)
    return [_Unit(w, w) for w in _WORD_RE.findall(text)]


@functools.lru_cache(maxsize=1)
def _kakasi():
    try:
        import pykakasi
    except ImportError:
        raise MissingDependencyError("Japanese G2P needs pykakasi: pip install pykakasi") from None
    return pykakasi.kakasi()


_KANA_VOWEL = {"A": "あ", "I": "い", "U": "う", "E": "え", "O": "お"}


def _expand_long_marks(hira: str) -> str:
    """ー repeats the vowel of the kana before it (espeak reads a bare ー as "japanese letter")."""
    out: list[str] = []
    for ch in hira:
        if ch == "ー":
            prev = unicodedata.name(out[-1], "") if out else ""
            vowel = prev.rsplit(" ", 1)[-1][-1:] if prev.startswith(("HIRAGANA", "KATAKANA")) else ""
            if vowel in _KANA_VOWEL:
                out.append(_KANA_VOWEL[vowel])
            continue
        out.append(ch)
    return "".join(out)


def _ja_units(text: str) -> list[_Unit]:
    units = []
    for tok in _kakasi().convert(text):
        orig = tok["orig"]
        for piece in orig.split():
            if not _WORD_RE.search(piece):  # punctuation
                continue
            hira = tok["hira"] if piece == orig else piece
            if hira in ("は", "へ") and piece == hira:  # the topic/direction particles
                hira = {"は": "わ", "へ": "え"}[hira]
            units.append(_Unit(piece.strip(), _expand_long_marks(hira)))
    return units


# ---------------------------------------------------------------------------------------------------------------
# Phonemization


def _cmn_tones(engine: _Engine, line: str) -> list[str] | None:
    """The Chao tone contours of each syllable of ``line`` (espeak mnemonic mode), in order."""
    raw = engine.run(line, ipa=False)
    tones = re.findall(r"(?<![0-9])([1-5]{2,3})(?=_|\s|\||$)", raw)
    return [t.translate(_TONE_DIGITS) for t in tones]


def _cmn_fix(words: list[list[str]], tones: list[str] | None) -> list[list[str]]:
    """Split the truncated tone off each cmn vowel, put the full contour there as its own token, fix mnemonics."""
    n_toned = sum(1 for w in words for p in w if p[-1] in "12345ɜ" and len(p) > 1)
    use_full = tones is not None and len(tones) == n_toned
    fallback = {"5": "˥", "ɜ": "˧˥", "2": "˨˩˦", "1": "˩˩", "3": "˧", "4": "˦"}
    k = 0
    out = []
    for w in words:
        phones: list[str] = []
        for p in w:
            tone = None
            if len(p) > 1 and p[-1] in "12345ɜ":
                tone = tones[k] if use_full else fallback[p[-1]]
                k += 1
                p = p[:-1]
            phones.append(_CMN_FIX.get(p, p))
            if tone:
                phones.append(tone)
        out.append(phones)
    return out


def _n_syllables(phones: list[str]) -> int:
    return sum(1 for p in phones if p and p[0] in "˥˦˧˨˩")


def _phonemize_cmn(text: str, keep_stress: bool) -> list[tuple[str, list[str]]]:
    eng = _engine(LANGUAGES["cmn"])
    result: list[tuple[str, list[str]]] = []
    for unit in _units(text, "cmn"):
        chunk = unit.word
        words = _parse(eng.run(chunk), keep_stress)
        words = _cmn_fix(words, _cmn_tones(eng, chunk))
        # Match espeak's dictionary words back to characters: one tone (syllable) per Han character.
        counts = [_n_syllables(w) for w in words]
        if (
            _HAN_RE.fullmatch(chunk[:1] or " ")
            and all(_HAN_RE.match(c) for c in chunk)
            and sum(counts) == len(chunk)
            and all(counts)
        ):
            pos = 0
            for w, n in zip(words, counts):
                result.append((chunk[pos : pos + n], w))
                pos += n
        else:
            result.append((chunk, [p for w in words for p in w]))
    return result


def _phonemize_spaced(
    texts: Sequence[str], code: str, keep_stress: bool
) -> list[list[tuple[str, list[str]]]]:
    eng = _engine(LANGUAGES[code])
    all_units = [_units(t, code) for t in texts]
    results: list[list[tuple[str, list[str]]] | None] = [None] * len(texts)
    retry: list[int] = []
    if code != "ja":  # whole line first: keeps cross-word context
        for i, units in enumerate(all_units):
            if not units:
                results[i] = []
                continue
            words = _parse(eng.run(" ".join(u.reading for u in units)), keep_stress)
            if len(words) == len(units):
                results[i] = [(u.word, w) for u, w in zip(units, words)]
            else:
                retry.append(i)
    else:
        retry = list(range(len(texts)))
    for i in retry:  # one word a line: espeak's extra or merged words fold into their input word
        results[i] = [
            (u.word, [p for w in _parse(eng.run(u.reading), keep_stress) for p in w]) for u in all_units[i]
        ]
    return [r or [] for r in results]


def phonemize_batch(
    texts: Sequence[str], lang: str, stress: bool = False
) -> list[list[tuple[str, list[str]]]]:
    """Phonemize many texts of one language: per text, a list of (word, its phones).

    A word whose phones came out empty (a lone symbol espeak does not read) keeps an empty list here and is left
    out of :func:`phonemize`'s string.
    """
    if isinstance(texts, str):
        raise TypeError("phonemize_batch takes a list of texts")
    code = resolve_lang(lang)
    if code == "cmn":
        return [_phonemize_cmn(t, stress) for t in texts]
    return _phonemize_spaced(texts, code, stress)


def format_phonemes(pairs: Sequence[tuple[str, Sequence[str]]]) -> str:
    """(word, phones) pairs -> ``"p p | p p"`` (words without phones are skipped)."""
    return f" {WORD_SEP} ".join(" ".join(ph) for _, ph in pairs if ph)


def phonemize(texts: Sequence[str], lang: str, stress: bool = False) -> list[str]:
    """Phonemize a batch of texts of one language (the espeak voice is loaded once and cached).

    Args:
        texts: list of N texts (normalise them first with :func:`speechlm.text.normalize.normalize_text`; espeak
            reads digits itself, but less well).
        lang: one of :func:`supported_languages` (``en``, ``de``, ``fr``, ``es``, ``it``, ``ru``, ``cmn``,
            ``ja``, ...). Unknown codes raise :class:`SpeechLMError`.
        stress: keep espeak's primary/secondary stress marks as separate tokens ``ˈ`` / ``ˌ``.

    Returns:
        N strings: phones separated by one space, words by ``" | "``; ``""`` for a text without words.
    """
    return [format_phonemes(p) for p in phonemize_batch(texts, lang, stress)]


def count_phones(text: str, lang: str) -> int:
    """Phones of ``text`` by :func:`phonemize` (word separators not counted): what a speaking rate counts."""
    return sum(1 for p in phonemize([text], lang)[0].split() if p != "|")


def phonemize_words(text: str, lang: str, stress: bool = False) -> list[tuple[str, list[str]]]:
    """One text -> [(word, [phone, ...]), ...] in reading order (words as :func:`split_words`, cmn: see notes).

    Words espeak reads as nothing keep an empty phone list.
    """
    if not isinstance(text, str):
        raise TypeError("phonemize_words takes one text")
    return phonemize_batch([text], lang, stress)[0]


def split_phonemes(phonemes: str) -> list[list[str]]:
    """``"a b | c"`` -> ``[["a", "b"], ["c"]]`` (the inverse of the string format)."""
    return [w.split() for w in phonemes.split(WORD_SEP) if w.split()]
