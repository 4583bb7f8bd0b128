"""The voice inventory of the offline speech synthesizers, and the speaker/split rule of the synthetic corpus.

A *voice* is what an engine ships (espeak-ng ``en-us+m3``, flite ``slt``, festival ``kal_diphone``).
A *speaker* is a voice plus a prosody setting: espeak-ng pitch (``-p``) × rate (``-s``) buckets, flite
``duration_stretch`` × F0-mean buckets, festival ``Duration_Stretch`` buckets. Its id, e.g.
``espeak-ng:en-us+m3:p30:s165``, is stable across runs and corpus sizes.

Split rule (:func:`speaker_split`), deterministic in (seed, speaker id):

1. Held-out voices go to ``test`` whatever the seed, so the test set measures generalisation to voices never
   heard in training: flite ``rms``; festival ``ked_diphone`` (en), ``lp_diphone`` (it), ``hy_fi_mv_diphone``
   (fi), ``czech_ph`` (cs); every espeak-ng speaker whose variant is one of ``m7``, ``f5``, ``steph``,
   ``travis`` (in every language, so even espeak-only languages have unseen voices in test).
2. Every other speaker is hashed with the seed: ``sha256(f"{seed}:{speaker_id}") mod 100`` < 84 → train,
   < 92 → valid, else test.

So a speaker never occurs in two splits, and valid/test speakers are unseen in train by construction.
"""

from __future__ import annotations

import functools
import hashlib
import re
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

ESPEAK_DATA_DIRS = (
    Path("/usr/lib/x86_64-linux-gnu/espeak-ng-data"),
    Path("/usr/share/espeak-ng-data"),
    Path("/usr/lib/aarch64-linux-gnu/espeak-ng-data"),
)
FESTIVAL_VOICE_DIR = Path("/usr/share/festival/voices")

# espeak-ng regional voices used per language (others: the language code itself, if espeak-ng knows it).
ESPEAK_ACCENTS: dict[str, tuple[str, ...]] = {
    "en": (
        "en-us",
        "en-gb",
        "en-gb-scotland",
        "en-gb-x-rp",
        "en-029",
        "en-us-nyc",
        "en-gb-x-gbclan",
        "en-gb-x-gbcwmd",
    ),
    "fr": ("fr-fr", "fr-be", "fr-ch"),
    "es": ("es", "es-419"),
    "pt": ("pt", "pt-br"),
    "ru": ("ru", "ru-lv"),
}
# Variants with a clear, speech-like character (robots, whisper and joke voices left out).
ESPEAK_VARIANTS = (
    "m1",
    "m2",
    "m3",
    "m4",
    "m5",
    "m6",
    "m7",
    "m8",
    "f1",
    "f2",
    "f3",
    "f4",
    "f5",
    "croak",
    "klatt",
    "klatt2",
    "klatt3",
    "Andy",
    "Annie",
    "anika",
    "aunty",
    "belinda",
    "linda",
    "steph",
    "travis",
    "victor",
    "michel",
    "antonio",
    "Marco",
    "Denis",
)
ESPEAK_PITCHES = (30, 50, 70)  # -p 0..99 maps to roughly 66..170 Hz mean F0
ESPEAK_RATES = (135, 165, 195)  # words per minute
ESPEAK_WORD_GAPS = (0, 1, 2, 4)  # -g, units of 10 ms; drawn per utterance, not part of the speaker

# flite: voice -> (gender, default mean F0 in Hz). kal (8 kHz) is left out for kal16.
FLITE_VOICES = {
    "kal16": ("male", 105.0),
    "awb": ("male", 110.0),
    "rms": ("male", 95.0),
    "slt": ("female", 170.0),
}
PIPER_VOICES = {"en_US-joe-medium": ("male", "en")}  # VITS voices run in-process (speechlm.data.piper)
PIPER_LENGTHS = (0.9, 1.0, 1.1)
FLITE_STRETCHES = (0.85, 1.0, 1.2)
FLITE_F0_FACTORS = (0.85, 1.0, 1.15)

# festival: (voice, lang, gender, input encoding). Encodings per OFFLINE.md: the diphone voices read bytes.
FESTIVAL_VOICES = (
    ("kal_diphone", "en", "male", "latin-1"),
    ("ked_diphone", "en", "male", "latin-1"),
    ("cmu_us_slt_arctic_hts", "en", "female", "latin-1"),
    ("pc_diphone", "it", "male", "latin-1"),
    ("lp_diphone", "it", "female", "latin-1"),
    ("suo_fi_lj_diphone", "fi", "male", "latin-1"),
    ("hy_fi_mv_diphone", "fi", "male", "latin-1"),
    ("czech_dita", "cs", "female", "iso-8859-2"),
    ("czech_krb", "cs", "male", "iso-8859-2"),
    ("czech_machac", "cs", "male", "iso-8859-2"),
    ("czech_ph", "cs", "male", "iso-8859-2"),
    ("msu_ru_nsh_clunits", "ru", "male", "utf-8"),
)
FESTIVAL_STRETCHES = (0.85, 1.0, 1.2)

HELD_OUT_VOICES = {
    ("flite", "rms"),
    ("festival", "ked_diphone"),
    ("festival", "lp_diphone"),
    ("festival", "hy_fi_mv_diphone"),
    ("festival", "czech_ph"),
}
HELD_OUT_ESPEAK_VARIANTS = {"m7", "f5", "steph", "travis"}
SPLIT_CUTS = (84, 92)  # hash mod 100: [0, 84) train, [84, 92) valid, [92, 100) test

# How much each engine's speakers are drawn, when a language has several engines.
ENGINE_WEIGHTS = {"espeak-ng": 0.4, "flite": 0.35, "festival": 0.25, "piper": 0.25}


@dataclass(frozen=True)
class Voice:
    """One voice an engine ships, for one language."""

    engine: str
    name: str  # engine's voice id: "en-us+m3", "slt", "kal_diphone"
    lang: str
    gender: str = "unknown"
    encoding: str = "utf-8"  # text encoding the engine expects

    @property
    def key(self) -> str:
        return f"{self.engine}:{self.name}"


@dataclass(frozen=True)
class Speaker:
    """A voice plus a prosody setting: the unit of the train/valid/test split."""

    voice: Voice
    prosody: tuple[tuple[str, float], ...] = field(default=())

    @property
    def id(self) -> str:
        parts = [self.voice.engine, self.voice.name]
        for k, v in self.prosody:
            parts.append(f"{k}{v:g}")
        return ":".join(parts)

    def settings(self) -> dict[str, float]:
        return dict(self.prosody)


def _espeak_data_dir() -> Path | None:
    return next((d for d in ESPEAK_DATA_DIRS if (d / "voices" / "!v").is_dir()), None)


@functools.cache
def _espeak_voice_files() -> dict[str, str]:
    """espeak-ng voice name -> its voice file (``en-gb`` -> ``gmw/en``; the name itself where the listing has no
    file column), from ``espeak-ng --voices``; empty if espeak-ng is not installed."""
    if not shutil.which("espeak-ng"):
        return {}
    out = subprocess.run(["espeak-ng", "--voices"], capture_output=True, text=True, check=False).stdout
    files = {}
    for line in out.splitlines()[1:]:
        cols = line.split()
        if len(cols) > 1:
            files[cols[1]] = cols[4] if len(cols) >= 5 else cols[1]
    return files


def espeak_languages() -> frozenset[str]:
    """Voice names espeak-ng knows (``en-us``, ``de``, ...); empty if espeak-ng is not installed."""
    return frozenset(_espeak_voice_files())


def espeak_voice_arg(name: str) -> str:
    """The ``-v`` argument that makes espeak-ng speak voice ``name`` (``accent+variant``) as named.

    espeak-ng 1.51 silently ignores a variant appended to some voice *names* (``en-gb+f2`` and ``fr-fr+f2`` speak
    exactly as plain ``en-gb`` / ``fr-fr``: the default male voice), while the same variant on the voice *file*
    (``gmw/en+f2``) applies. So the accent is replaced by its voice file whenever a variant is given.
    """
    accent, plus, variant = name.partition("+")
    if not plus:
        return name
    return f"{_espeak_voice_files().get(accent, accent)}+{variant}"


@functools.cache
def espeak_variants() -> dict[str, str]:
    """Installed variants from :data:`ESPEAK_VARIANTS` -> gender read from the variant file."""
    data = _espeak_data_dir()
    out = {}
    for v in ESPEAK_VARIANTS:
        path = data / "voices" / "!v" / v if data else None
        if path is None or not path.is_file():
            continue
        m = re.search(r"^gender\s+(\w+)", path.read_text(errors="replace"), flags=re.M | re.I)
        out[v] = m.group(1).lower() if m else "unknown"
    return out


@functools.cache
def flite_voices() -> frozenset[str]:
    if not shutil.which("flite"):
        return frozenset()
    out = subprocess.run(["flite", "-lv"], capture_output=True, text=True, check=False).stdout
    return frozenset(out.split(":", 1)[-1].split())


def piper_voices() -> frozenset[str]:
    """The Piper voices whose package (and onnxruntime) is installed."""
    from speechlm.data.piper import joe_available

    return frozenset(PIPER_VOICES) if joe_available() else frozenset()


def festival_installed(name: str) -> bool:
    return shutil.which("text2wave") is not None and any(FESTIVAL_VOICE_DIR.glob(f"*/{name}"))


def espeak_accents(lang: str) -> tuple[str, ...]:
    known = espeak_languages()
    return tuple(a for a in ESPEAK_ACCENTS.get(lang, (lang,)) if a in known)


def voices_for(lang: str) -> list[Voice]:
    """Every installed voice that speaks ``lang``."""
    out = []
    for accent in espeak_accents(lang):
        for variant, gender in espeak_variants().items():
            out.append(Voice("espeak-ng", f"{accent}+{variant}", lang, gender))
    if lang == "en":
        have = flite_voices()
        out += [Voice("flite", v, "en", g) for v, (g, _) in FLITE_VOICES.items() if v in have]
    out += [Voice("piper", v, lang, g) for v, (g, vl) in PIPER_VOICES.items() if vl == lang and v in piper_voices()]
    out += [
        Voice("festival", name, vl, g, enc)
        for name, vl, g, enc in FESTIVAL_VOICES
        if vl == lang and festival_installed(name)
    ]
    return out


def speakers_for(voice: Voice) -> list[Speaker]:
    """The prosody grid of one voice."""
    if voice.engine == "espeak-ng":
        grid = [(("pitch", p), ("rate", r)) for p in ESPEAK_PITCHES for r in ESPEAK_RATES]
    elif voice.engine == "flite":
        grid = [(("stretch", s), ("f0x", f)) for s in FLITE_STRETCHES for f in FLITE_F0_FACTORS]
    elif voice.engine == "festival":
        grid = [(("stretch", s),) for s in FESTIVAL_STRETCHES]
    elif voice.engine == "piper":
        grid = [(("length", s),) for s in PIPER_LENGTHS]
    else:
        grid = [()]
    return [Speaker(voice, g) for g in grid]


def is_held_out(speaker: Speaker) -> bool:
    v = speaker.voice
    if (v.engine, v.name) in HELD_OUT_VOICES:
        return True
    return v.engine == "espeak-ng" and v.name.split("+", 1)[-1] in HELD_OUT_ESPEAK_VARIANTS


def speaker_split(speaker: Speaker, seed: int) -> str:
    """``train`` / ``valid`` / ``test`` for a speaker: see the module docstring for the rule."""
    if is_held_out(speaker):
        return "test"
    h = int.from_bytes(hashlib.sha256(f"{seed}:{speaker.id}".encode()).digest()[:8], "big") % 100
    return "train" if h < SPLIT_CUTS[0] else "valid" if h < SPLIT_CUTS[1] else "test"


def inventory(langs: list[str]) -> list[dict]:
    """Rows (engine, voice, lang, gender, speakers, held_out) for ``data voices`` and ``voices.json``."""
    rows = []
    for lang in langs:
        for v in voices_for(lang):
            spk = speakers_for(v)
            rows.append(
                {
                    "engine": v.engine,
                    "voice": v.name,
                    "lang": lang,
                    "gender": v.gender,
                    "speakers": len(spk),
                    "held_out": is_held_out(spk[0]),
                }
            )
    return rows
