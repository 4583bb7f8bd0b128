"""Real recorded speech that Debian ships in packages, as manifest candidates.

Trainable (split ``train``, a few levels of fillets to ``valid``):
- ``fillets``: fillets-ng-data-cs / -nl (+ fillets-ng-data for the scripts). Each level's
  ``script/<level>/dialogs_<lang>.lua`` pairs a dialog id with a font and the line's text
  (``dialogId("let-m-divna", "font_small", "<English>")`` then ``dialogStr("<translation>")``); the audio is
  ``sound/<level>/<lang>/<id>.ogg``. The font names the character: ``font_small`` is the small fish and
  ``font_big`` the big fish everywhere (one actor each); the other named fonts (parrot, viking1..8,
  robodog, ...) are one character each; the plain colour fonts (white, yellow, cyan, grey, ...) are reused
  for different characters, so they count as a speaker per level.
  ``font_both`` (both fish at once) is rejected.
- ``klettres``: klettres-data, ``<lang>/sounds.xml`` maps letter/syllable names to ogg files; one speaker a
  language (tag ``kind`` = letter | syllable).
- ``asterisk-prompts``: asterisk-prompt-fr-armelle, -es-co (raw GSM, converted to WAV) and -it-menardi. These
  packages ship no transcripts; the texts come from the core-sounds-LANG.txt of the same prompt names recorded
  by another voice (asterisk-core-sounds-LANG), so a prompt is only kept when its duration is within
  ``[0.75, 1.33]`` x that other recording's (a different wording would differ in length). Tagged
  ``transcript: "core-sounds script, duration-checked"``; treat the text as approximate.

HELD-OUT ONLY (split ``test``, tags ``heldout: true``; never train on them):
- ``asterisk-core``: asterisk-core-sounds-LANG-wav with core-sounds-LANG.txt (``name: transcript``); bracketed
  entries such as ``[this is a simple beep tone]`` are rejected as non-speech.
- ``pocketsphinx-testdata``: the ``cards`` and ``librivox`` read speech with their transcription files, and
  ``goforward.raw`` ("go forward ten meters", the pocketsphinx test utterance; 16 kHz raw PCM).
- ``codec2-examples``: codec2's speech samples (8/16 kHz); no transcripts (text empty, for codec evaluation).
"""

from __future__ import annotations

import gzip
import re
import xml.etree.ElementTree as ET
import zlib
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

from speechlm.data.readers import (
    EMPTY_TRANSCRIPT,
    NO_TRANSCRIPT,
    Candidate,
    ImportOptions,
    RawPCM,
    ValidationLimits,
)
from speechlm.errors import SpeechLMError

HELDOUT = ("asterisk-core", "pocketsphinx-testdata", "codec2-examples")
DEFAULT_SRC = {
    "fillets": Path("/usr/share/games/fillets-ng"),
    "klettres": Path("/usr/share/klettres"),
    "asterisk-prompts": Path("/usr/share/asterisk/sounds"),
    "asterisk-core": Path("/usr/share/asterisk/sounds"),
    "pocketsphinx-testdata": Path("/usr/share/pocketsphinx/test/data"),
    "codec2-examples": Path("/usr/share/codec2"),
}
PACKAGES = {
    "fillets": "fillets-ng-data fillets-ng-data-cs fillets-ng-data-nl",
    "klettres": "klettres-data",
    "asterisk-prompts": "asterisk-prompt-fr-armelle asterisk-prompt-es-co asterisk-prompt-it-menardi-wav "
    "asterisk-core-sounds-{fr,es,it}-wav (+ core-sounds-LANG.txt, see --transcripts)",
    "asterisk-core": "asterisk-core-sounds-LANG-wav and asterisk-core-sounds-LANG (for core-sounds-LANG.txt)",
    "pocketsphinx-testdata": "pocketsphinx-testdata",
    "codec2-examples": "codec2-examples",
}
# Per-format validation defaults (the CLI flags override them): letters are short, codec2 samples are long.
DEFAULT_LIMITS = {
    "klettres": ValidationLimits(min_duration=0.2),
    "asterisk-prompts": ValidationLimits(min_duration=0.2),
    "asterisk-core": ValidationLimits(min_duration=0.2),
    "codec2-examples": ValidationLimits(min_duration=0.5, max_duration=120.0, allow_empty_text=True),
}
NON_SPEECH = "non-speech entry"
SEVERAL_SPEAKERS = "several speakers"
TRANSCRIPT_MISMATCH = "transcript may not match the audio"
NO_REFERENCE = "no reference recording to check the transcript"


def read(name: str, o: ImportOptions) -> Iterator[Candidate]:
    """Candidates of the Debian corpus ``name`` (see the module docstring)."""
    src = Path(o.src) if o.src is not None else DEFAULT_SRC[name]
    if not src.is_dir():
        raise SpeechLMError(
            f"{src} not found: install the Debian package(s) {PACKAGES[name]} "
            f"(scripts/get_real_speech.sh does it) or pass --src"
        )
    if name in HELDOUT and o.split not in (None, "test"):
        raise SpeechLMError(f"{name} is reserved for held-out evaluation: its split is always 'test'")
    if name == "fillets":
        return read_fillets(src, _need_lang(o, ("cs", "nl"), name), split=o.split)
    if name == "klettres":
        return read_klettres(src, lang=o.lang, split=o.split or "train")
    if name == "asterisk-prompts":
        return read_asterisk_prompts(
            src,
            langs=(o.lang,) if o.lang else ("fr", "es", "it"),
            transcripts=o.transcripts,
            split=o.split or "train",
        )
    if name == "asterisk-core":
        return read_asterisk_core(src, o.lang or "en", transcripts=o.transcripts)
    if name == "pocketsphinx-testdata":
        return read_pocketsphinx_testdata(src)
    if name == "codec2-examples":
        return read_codec2_examples(src)
    raise SpeechLMError(f"no Debian reader named {name!r}")


def _need_lang(o: ImportOptions, allowed: tuple[str, ...], name: str) -> str:
    if o.lang not in allowed:
        raise SpeechLMError(f"--format {name} needs --lang, one of {', '.join(allowed)}")
    return o.lang


def _heldout_tags(source: str, **extra: object) -> dict[str, object]:
    return {"heldout": True, "source": source, **extra}


# --------------------------------------------------------------------------------------------------- fillets

_CALL = re.compile(r"\b(dialogId|dialogStr)\s*\(")
_COLOUR_FONTS = {
    "white",
    "lightgrey",
    "darkgrey",
    "grey",
    "yellow",
    "cyan",
    "green",
    "magenta",
    "brown",
    "red",
    "blue",
    "orange",
}


def _lua_strings(text: str, pos: int) -> tuple[list[str], int]:
    """Parse the string-literal arguments of a call whose '(' ends at ``pos``: ``"a", "b" .. "c")``."""
    args: list[str] = []
    concat = False
    i, n = pos, len(text)
    while i < n:
        ch = text[i]
        if ch in "\"'":
            i, buf = i + 1, []
            while i < n and text[i] != ch:
                if text[i] == "\\" and i + 1 < n:
                    buf.append({"n": "\n", "t": "\t"}.get(text[i + 1], text[i + 1]))
                    i += 2
                    continue
                buf.append(text[i])
                i += 1
            i += 1
            if concat and args:
                args[-1] += "".join(buf)
            else:
                args.append("".join(buf))
            concat = False
        elif text.startswith("..", i):
            concat = True
            i += 2
        elif ch == ")":
            return args, i + 1
        else:
            i += 1
    return args, n


def parse_fillets_dialogs(text: str) -> list[tuple[str, str, str]]:
    """(dialog id, font, translated text) for each ``dialogId(...)`` in a ``dialogs_<lang>.lua``.

    The translation is the ``dialogStr(...)`` that follows the ``dialogId``; "" when there is none.
    """
    out: list[tuple[str, str, str]] = []
    pending: list[str] | None = None
    for m in _CALL.finditer(text):
        args, _ = _lua_strings(text, m.end())
        if m.group(1) == "dialogId":
            if pending is not None:
                out.append((pending[0], pending[1], ""))
            pending = args if len(args) >= 2 else None
        elif pending is not None:
            out.append((pending[0], pending[1], args[0] if args else ""))
            pending = None
    if pending is not None:
        out.append((pending[0], pending[1], ""))
    return out


def fillets_speaker(lang: str, level: str, font: str) -> str | None:
    """Speaker id for a dialog font (None for ``font_both``, two speakers at once)."""
    name = font.removeprefix("font_")
    if name == "both":
        return None
    if name == "small":
        return f"fillets_{lang}_small_fish"
    if name == "big":
        return f"fillets_{lang}_big_fish"
    if name in _COLOUR_FONTS:
        return f"fillets_{lang}_{name}_{level}"
    return f"fillets_{lang}_{name}"


def _fillets_split(level: str) -> str:
    """About 5% of the levels go to ``valid`` (same speakers, unseen lines); fixed by the level name."""
    return "valid" if zlib.crc32(level.encode()) % 20 == 0 else "train"


def read_fillets(src: Path, lang: str, split: str | None = None) -> Iterator[Candidate]:
    """Every ``sound/**/<lang>/*.ogg`` with its line from the matching ``*dialogs_<lang>.lua``.

    Level scripts are ``script/<level>/[<prefix>_]dialogs_<lang>.lua`` (``demo_``, ``brief_``, ...) with the
    audio in ``sound/<level>/<lang>/``; shared jokes are ``script/share/<name>_dialogs_<lang>.lua`` with the
    audio in ``sound/share/<folder>/<lang>/``. A dialog id is looked up among the ogg files under its top
    folder.
    """
    script, sound = src / "script", src / "sound"
    if not script.is_dir() or not sound.is_dir():
        raise SpeechLMError(f"{src} has no script/ and sound/ folders (fillets-ng-data not installed?)")
    lang_name = {"cs": "Czech", "nl": "Dutch"}.get(lang, lang)
    files = sorted(p for p in sound.rglob("*.ogg") if p.parent.name == lang)
    # (top folder, dialog id) -> audio: a script under script/share/ speaks through sound/share/<any>/<lang>/.
    index: dict[tuple[str, str], Path] = {}
    for audio in files:
        index.setdefault((audio.relative_to(sound).parts[0], audio.stem), audio)
    lines: dict[Path, tuple[str, str, str, str]] = {}  # audio -> (level, font, text, lua file name)
    for lua in sorted(script.rglob(f"*dialogs_{lang}.lua")):
        level = lua.parent.relative_to(script).as_posix()
        prefix = lua.name[: -len(f"dialogs_{lang}.lua")].rstrip("_")
        for dialog_id, font, text in parse_fillets_dialogs(lua.read_text(encoding="utf-8", errors="replace")):
            audio = index.get((level.split("/")[0], dialog_id))
            if audio is not None:
                lines.setdefault(audio, (f"{level}/{prefix}" if prefix else level, font, text, lua.name))
    for audio in files:
        rel = audio.relative_to(sound).parts
        level = "/".join(rel[:-2])
        uid = f"fillets_{lang}_{'_'.join(rel[:-2])}_{audio.stem}"
        if audio not in lines:
            yield Candidate(
                uid,
                audio,
                "",
                lang,
                "unknown",
                "train",
                reason=NO_TRANSCRIPT,
                detail=f"{audio.stem} is in no *dialogs_{lang}.lua",
            )
            continue
        level, font, text, lua_name = lines[audio]
        speaker = fillets_speaker(lang, level.replace("/", "_"), font)
        tags = {"source": f"fillets-ng-data-{lang}", "level": level, "character_font": font}
        c = Candidate(
            uid,
            audio,
            text,
            lang,
            speaker or f"fillets_{lang}_both",
            split or _fillets_split(level.split("/")[0]),
            tags,
        )
        if speaker is None:
            c = replace(c, reason=SEVERAL_SPEAKERS, detail=font)
        elif not font:
            c = replace(
                c, reason=EMPTY_TRANSCRIPT, detail=f"no speaker or text for {audio.stem} in {lua_name}"
            )
        elif not text.strip():
            c = replace(c, reason=EMPTY_TRANSCRIPT, detail=f"no {lang_name} text in {lua_name}")
        yield c


# --------------------------------------------------------------------------------------------------- klettres


def read_klettres(src: Path, lang: str | None = None, split: str = "train") -> Iterator[Candidate]:
    """Letters and syllables of every language folder with a ``sounds.xml`` (or only ``lang``)."""
    folders = sorted(p for p in src.iterdir() if (p / "sounds.xml").is_file())
    if not folders:
        raise SpeechLMError(f"{src} has no <lang>/sounds.xml (klettres-data not installed?)")
    for folder in folders:
        code = folder.name.split("_")[0]
        if lang is not None and code != lang and folder.name != lang:
            continue
        try:
            root = ET.parse(folder / "sounds.xml").getroot()
        except ET.ParseError as exc:
            raise SpeechLMError(f"{folder / 'sounds.xml'}: {exc}") from None
        for section, kind in (("alphabet", "letter"), ("syllables", "syllable")):
            for el in root.iter(section):
                for snd in el.iter("sound"):
                    name, file = snd.get("name", ""), snd.get("file", "")
                    audio = src / file
                    yield Candidate(
                        f"klettres_{folder.name}_{kind}_{Path(file).stem}",
                        audio,
                        name,
                        code,
                        f"klettres_{folder.name}",
                        split,
                        {"source": "klettres-data", "kind": kind, "locale": folder.name},
                    )


# --------------------------------------------------------------------------------------------------- asterisk

CORE_VOICES = {"en": "en_US_f_Allison", "fr": "fr_CA_f_June", "es": "es_MX_f_Allison", "it": "it_IT_m_Carlo"}
PROMPT_VOICES = {
    "fr": ("fr", "armelle", ".gsm"),
    "es": ("es", "es_co", ".gsm"),
    "it": ("it_IT_f_Menardi", "menardi", ".wav"),
}
_TRANSCRIPT_DIRS = [Path("/usr/share/doc/asterisk-core-sounds-{lang}")]


def find_core_transcripts(lang: str, transcripts: Path | None) -> Path:
    """``core-sounds-LANG.txt[.gz]``: in ``transcripts`` (a file or a folder searched recursively), else in
    /usr/share/doc/asterisk-core-sounds-LANG/."""
    names = (f"core-sounds-{lang}.txt", f"core-sounds-{lang}.txt.gz")
    places: list[Path] = []
    if transcripts is not None:
        if transcripts.is_file():
            return transcripts
        places += [p for n in names for p in sorted(transcripts.rglob(n))]
    places += [Path(str(d).format(lang=lang)) / n for d in _TRANSCRIPT_DIRS for n in names]
    for p in places:
        if p.is_file():
            return p
    raise SpeechLMError(
        f"no core-sounds-{lang}.txt found: apt-get install asterisk-core-sounds-{lang} (or "
        f"extract it from that .deb) and pass --transcripts DIR"
    )


def parse_core_sounds(path: Path) -> dict[str, str]:
    """``name: transcript`` lines (``;`` comments) of a core-sounds-LANG.txt, gzip or not."""
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    text = raw.decode("utf-8-sig", errors="replace")
    out: dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith(";") or ":" not in line:
            continue
        name, value = line.split(":", 1)
        name = name.strip()
        if name and " " not in name:
            out[name] = value.strip()
    return out


# Prompt files that are tones, not speech, whatever their transcript line says ("un suono beep").
_TONE_PROMPTS = {
    "beep",
    "beeperr",
    "confbridge-join",
    "confbridge-leave",
    "ascending-2tone",
    "descending-2tone",
    "tt-monkeys",
}


def _is_tone(name: str) -> bool:
    return name in _TONE_PROMPTS or name.startswith("silence/")


def _clean_prompt(text: str) -> str:
    """Drop ``[sound descriptions]``, ``<beep ascending>`` and ``(translator notes)``: the rest is said."""
    return " ".join(re.sub(r"\[[^\]]*\]|<[^>]*>|\([^)]*\)", " ", text).split())


def read_asterisk_core(src: Path, lang: str, transcripts: Path | None = None) -> Iterator[Candidate]:
    if lang not in CORE_VOICES:
        raise SpeechLMError(f"--format asterisk-core: --lang must be one of {', '.join(CORE_VOICES)}")
    voice_dir = src / CORE_VOICES[lang]
    if not voice_dir.is_dir():
        raise SpeechLMError(f"{voice_dir} not found: apt-get install asterisk-core-sounds-{lang}-wav")
    table = parse_core_sounds(find_core_transcripts(lang, transcripts))
    source = f"asterisk-core-sounds-{lang}"
    speaker = f"asterisk_{CORE_VOICES[lang]}"
    seen: set[str] = set()
    for name, text in sorted(table.items()):
        audio = voice_dir / f"{name}.wav"
        if not audio.is_file():
            continue  # the transcript list covers prompts of other releases too
        seen.add(name)
        uid = f"asterisk_core_{lang}_{name.replace('/', '_')}"
        spoken = "" if _is_tone(name) else _clean_prompt(text)
        c = Candidate(uid, audio, spoken, lang, speaker, "test", _heldout_tags(source, prompt=name))
        if not spoken:
            c = replace(c, reason=NON_SPEECH, detail=text[:80])
        yield c
    for audio in sorted(voice_dir.rglob("*.wav")):
        name = audio.relative_to(voice_dir).with_suffix("").as_posix()
        if name not in seen:
            yield Candidate(
                f"asterisk_core_{lang}_{name.replace('/', '_')}",
                audio,
                "",
                lang,
                speaker,
                "test",
                _heldout_tags(source),
                reason=NO_TRANSCRIPT,
                detail=f"{name} not in core-sounds-{lang}.txt",
            )


def _duration(path: Path) -> float | None:
    import soundfile as sf

    try:
        info = sf.info(str(path))
        return info.frames / info.samplerate
    except Exception:  # noqa: BLE001 - a reference we cannot read just means "cannot check"
        return None


def read_asterisk_prompts(
    src: Path,
    langs: tuple[str, ...] = ("fr", "es", "it"),
    transcripts: Path | None = None,
    split: str = "train",
    ratio_band: tuple[float, float] = (0.75, 1.33),
) -> Iterator[Candidate]:
    found = False
    for lang in langs:
        if lang not in PROMPT_VOICES:
            raise SpeechLMError(
                f"--format asterisk-prompts: --lang must be one of {', '.join(PROMPT_VOICES)}"
            )
        folder, voice, ext = PROMPT_VOICES[lang]
        voice_dir = src / folder
        files = sorted(voice_dir.rglob(f"*{ext}")) if voice_dir.is_dir() else []
        if not files:
            continue
        found = True
        table = parse_core_sounds(find_core_transcripts(lang, transcripts))
        ref_dir = src / CORE_VOICES[lang]
        source = {
            "fr": "asterisk-prompt-fr-armelle",
            "es": "asterisk-prompt-es-co",
            "it": "asterisk-prompt-it-menardi",
        }[lang]
        for audio in files:
            name = audio.relative_to(voice_dir).with_suffix("").as_posix()
            uid = f"asterisk_prompt_{lang}_{voice}_{name.replace('/', '_')}"
            tags = {
                "source": source,
                "prompt": name,
                "transcript": f"core-sounds-{lang}.txt, duration-checked",
            }
            c = Candidate(uid, audio, "", lang, f"asterisk_{voice}", split, tags)
            if name not in table:
                yield replace(c, reason=NO_TRANSCRIPT, detail=f"{name} not in core-sounds-{lang}.txt")
                continue
            spoken = "" if _is_tone(name) else _clean_prompt(table[name])
            if not spoken:
                yield replace(c, reason=NON_SPEECH, detail=table[name][:80])
                continue
            c = replace(c, text=spoken)
            ref = ref_dir / f"{name}.wav"
            d, dref = _duration(audio), (_duration(ref) if ref.is_file() else None)
            if dref is None:
                yield replace(c, reason=NO_REFERENCE, detail=f"{ref} missing")
            elif d is not None and not ratio_band[0] <= d / dref <= ratio_band[1]:
                yield replace(
                    c,
                    reason=TRANSCRIPT_MISMATCH,
                    detail=f"{d:.2f} s vs {dref:.2f} s for the reference recording",
                )
            else:
                yield c
    if not found:
        raise SpeechLMError(
            f"no asterisk prompt recordings under {src} (apt-get install "
            f"asterisk-prompt-fr-armelle asterisk-prompt-es-co asterisk-prompt-it-menardi-wav)"
        )


# --------------------------------------------------------------------------------------------------- held-out


def _sphinx_transcription(path: Path) -> dict[str, str]:
    """``<s> words </s> (utt_id)`` lines -> {utt_id: words}."""
    out: dict[str, str] = {}
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        m = re.match(r"^(.*)\(([^()]+)\)\s*$", line.strip())
        if m:
            words = re.sub(r"</?s>", " ", m.group(1))
            out[m.group(2).strip()] = " ".join(words.split())
    return out


def read_pocketsphinx_testdata(src: Path) -> Iterator[Candidate]:
    any_found = False
    for sub, speaker in (("cards", "pocketsphinx_cards"), ("librivox", "pocketsphinx_librivox_austen")):
        tfile = next(
            (p for p in (src / sub / f"{sub}.transcription", src / sub / "transcription") if p.is_file()),
            None,
        )
        if tfile is None:
            continue
        any_found = True
        table = _sphinx_transcription(tfile)
        for audio in sorted((src / sub).glob("*.wav")):
            text = table.get(audio.stem)
            c = Candidate(
                f"pocketsphinx_{sub}_{audio.stem}",
                audio,
                text or "",
                "en",
                speaker,
                "test",
                _heldout_tags("pocketsphinx-testdata", subset=sub),
            )
            if text is None:
                c = replace(c, reason=NO_TRANSCRIPT, detail=f"not in {tfile.name}")
            yield c
    goforward = src / "goforward.raw"
    if goforward.is_file():
        any_found = True
        # The utterance pocketsphinx's own tests decode; its grammar goforward.gram says the same words.
        yield Candidate(
            "pocketsphinx_goforward",
            goforward,
            "go forward ten meters",
            "en",
            "pocketsphinx_goforward",
            "test",
            _heldout_tags("pocketsphinx-testdata", subset="goforward"),
            raw=RawPCM(16000),
        )
    if not any_found:
        raise SpeechLMError(f"{src} holds none of cards/, librivox/, goforward.raw (pocketsphinx-testdata?)")


def read_codec2_examples(src: Path) -> Iterator[Candidate]:
    """codec2's speech samples. ``all.wav`` (a concatenation of the short ones) is left out as a duplicate."""
    files = sorted((src / "wav").glob("*.wav")) + sorted((src / "raw").glob("*.wav"))
    if not files:
        raise SpeechLMError(f"{src} has no wav/*.wav (codec2-examples not installed?)")
    for audio in files:
        if audio.name == "all.wav":
            continue
        yield Candidate(
            f"codec2_{audio.stem}",
            audio,
            "",
            "en",
            f"codec2_{audio.stem}",
            "test",
            _heldout_tags("codec2-examples", transcript="none"),
        )
