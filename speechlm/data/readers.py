"""Turn corpora users already own into a validated JSONL manifest.

A *reader* walks a source and yields :class:`Candidate` utterances: what the corpus claims (audio file,
transcript, speaker). :func:`validate_candidates` then opens every audio file's header (``soundfile``) plus
a 1024-frame read, so a broken codec is caught without decoding whole files), measures the duration and keeps
or rejects each candidate with a reason. Readers may pre-reject a candidate (``reason`` set) when the corpus
itself says it is unusable (no transcript file, a non-speech prompt, ...), so every rejection is reported in
one place.

Formats (:data:`FORMATS`): ``folder`` (audio with same-name ``.txt``/``.lab``), the Lhotse recipes
``libritts``, ``ljspeech``, ``vctk``, ``emilia``, a Lhotse manifest (``lhotse``), and the Debian-packaged
real speech in :mod:`speechlm.data.debian_speech`.

Limits (:class:`ValidationLimits`, documented defaults): duration 0.3–30 s, sample rate 8–192 kHz, at most 30
transcript characters per second of audio.
Audio that the manifest's consumers may not open (raw PCM, raw GSM, anything not wav/flac/ogg/mp3/opus) is
converted to 16-bit WAV next to the manifest.
"""

from __future__ import annotations

import os
import shutil
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from speechlm.data.manifest import SPLITS, Utterance, write_manifest
from speechlm.errors import ManifestError, SpeechLMError
from speechlm.utils.atomic import atomic_path

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".mp3", ".opus")
TRANSCRIPT_EXTENSIONS = (".txt", ".lab")
# Containers every consumer of a manifest can open with soundfile; anything else is converted to WAV.
_DIRECT_EXTENSIONS = {".wav", ".flac", ".ogg", ".mp3", ".opus"}

# Skip reasons (the summary groups by these).
MISSING_AUDIO = "missing audio"
UNREADABLE_AUDIO = "unreadable audio"
EMPTY_TRANSCRIPT = "empty transcript"
NO_TRANSCRIPT = "no transcript file"
TOO_SHORT = "too short"
TOO_LONG = "too long"
BAD_SAMPLE_RATE = "sample rate out of range"
DUPLICATE_ID = "duplicate id"
TEXT_TOO_LONG = "transcript too long for the audio"


@dataclass(frozen=True)
class RawPCM:
    """How to read a header-less PCM file (``.raw``): it is converted to WAV on import."""

    sample_rate: int
    channels: int = 1
    subtype: str = "PCM_16"
    endian: str = "LITTLE"


@dataclass(frozen=True)
class Candidate:
    """One utterance as a reader found it, before validation.

    ``audio`` is an absolute path (or a path that does not exist: reported as missing). ``reason``, when set,
    rejects the candidate without opening the audio. ``raw`` says how to read a header-less PCM file.
    """

    id: str
    audio: Path
    text: str
    lang: str
    speaker: str
    split: str = "train"
    tags: dict[str, Any] = field(default_factory=dict)
    phonemes: str | None = None
    reason: str | None = None
    detail: str = ""
    raw: RawPCM | None = None


@dataclass(frozen=True)
class Skipped:
    """A rejected candidate: ``reason`` is one of the fixed categories, ``detail`` says what exactly."""

    id: str
    audio: str
    reason: str
    detail: str = ""

    def to_dict(self) -> dict[str, str]:
        return {"id": self.id, "audio": self.audio, "reason": self.reason, "detail": self.detail}


@dataclass(frozen=True)
class ValidationLimits:
    """What an imported utterance must satisfy. Defaults suit TTS/codec training (0.3–30 s, 8–192 kHz)."""

    min_duration: float = 0.3
    max_duration: float = 30.0
    min_sample_rate: int = 8_000
    max_sample_rate: int = 192_000
    allow_empty_text: bool = False  # codec test sets have no transcripts
    # Above ~30 characters a second no one is speaking the transcript: it describes a sound, or belongs to
    # another file. Letters and syllables are slow, so there is no lower bound.
    max_chars_per_second: float = 30.0

    def __post_init__(self) -> None:
        if not 0 <= self.min_duration < self.max_duration:
            raise SpeechLMError(
                f"need 0 <= min duration < max duration, got {self.min_duration}, {self.max_duration}"
            )
        if not 0 < self.min_sample_rate <= self.max_sample_rate:
            raise SpeechLMError(
                f"need 0 < min sample rate <= max sample rate, got {self.min_sample_rate}, "
                f"{self.max_sample_rate}"
            )


@dataclass(frozen=True)
class ImportResult:
    """What an import kept and what it rejected (and why)."""

    utterances: list[Utterance]
    skipped: list[Skipped]

    @property
    def reasons(self) -> Counter:
        return Counter(s.reason for s in self.skipped)

    @property
    def hours(self) -> float:
        return sum(u.duration for u in self.utterances) / 3600.0

    @property
    def speakers(self) -> int:
        return len({u.speaker for u in self.utterances})

    def summary(self) -> str:
        """One line: ``imported N (H h, S speakers), skipped M: reason (count), ...``."""
        line = f"imported {len(self.utterances)} ({self.hours:.2f} h, {self.speakers} speakers)"
        line += f", skipped {len(self.skipped)}"
        if self.skipped:
            line += ": " + ", ".join(f"{r} ({n})" for r, n in self.reasons.most_common())
        return line


def _probe(path: Path, raw: RawPCM | None) -> tuple[float, int]:
    """(duration s, sample rate) from the header, plus a short read to catch broken streams."""
    import soundfile as sf

    kw: dict[str, Any] = {}
    if raw is not None:
        kw = dict(
            samplerate=raw.sample_rate,
            channels=raw.channels,
            subtype=raw.subtype,
            endian=raw.endian,
            format="RAW",
        )
    with sf.SoundFile(str(path), **kw) as f:
        sr, frames = f.samplerate, f.frames
        f.read(min(frames, 1024), dtype="float32")
    if sr <= 0 or frames <= 0:
        raise ValueError("no audio frames")
    return frames / sr, sr


def _convert_to_wav(src: Path, dst: Path, raw: RawPCM | None) -> None:
    import soundfile as sf

    kw: dict[str, Any] = {}
    if raw is not None:
        kw = dict(
            samplerate=raw.sample_rate,
            channels=raw.channels,
            subtype=raw.subtype,
            endian=raw.endian,
            format="RAW",
        )
    data, sr = sf.read(str(src), dtype="int16", always_2d=True, **kw)
    with atomic_path(dst) as tmp:
        sf.write(str(tmp), data, sr, subtype="PCM_16", format="WAV")


def _manifest_audio_path(path: Path, manifest_dir: Path) -> str:
    """Relative to the manifest when the file lies under its folder, else absolute (the contract allows
    both)."""
    path = path.resolve()
    try:
        return path.relative_to(manifest_dir).as_posix()
    except ValueError:
        return str(path)


def _safe_name(s: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in s) or "utt"


def validate_candidates(
    candidates: Iterable[Candidate],
    manifest_dir: str | os.PathLike,
    limits: ValidationLimits = ValidationLimits(),
    copy_audio_to: str | os.PathLike | None = None,
    convert_dir: str | os.PathLike | None = None,
    progress: bool = False,
) -> ImportResult:
    """Open each candidate's audio, measure it and keep it or reject it with a reason.

    Args:
        candidates: from a reader.
        manifest_dir: the folder the manifest will be written to (audio paths are made relative to it when the
            audio lies under it).
        limits: duration / sample-rate / transcript rules.
        copy_audio_to: copy every kept file there (as ``<id><ext>``) and point the manifest at the copy.
        convert_dir: where audio that needs converting (raw PCM, raw GSM, ...) is written as WAV; defaults to
            ``copy_audio_to`` or ``<manifest_dir>/audio``.
        progress: show a tqdm bar on stderr.
    """
    manifest_dir = Path(manifest_dir).resolve()
    copy_dir = Path(copy_audio_to).resolve() if copy_audio_to is not None else None
    conv_dir = Path(convert_dir).resolve() if convert_dir else (copy_dir or manifest_dir / "audio")
    kept: list[Utterance] = []
    skipped: list[Skipped] = []
    seen: set[str] = set()
    it: Iterable[Candidate] = candidates
    if progress:
        from tqdm import tqdm

        it = tqdm(candidates, desc="validating", unit="utt", mininterval=1.0)
    for c in it:

        def skip(reason: str, detail: str = "", c: Candidate = c) -> None:
            skipped.append(Skipped(c.id, str(c.audio), reason, detail))

        if c.reason is not None:
            skip(c.reason, c.detail)
            continue
        if c.id in seen:
            skip(DUPLICATE_ID, f"id {c.id!r} already imported")
            continue
        text = " ".join(c.text.split())
        if not text and not limits.allow_empty_text:
            skip(EMPTY_TRANSCRIPT)
            continue
        if c.split not in SPLITS:
            raise SpeechLMError(f"split {c.split!r} is not one of {', '.join(SPLITS)}")
        path = Path(c.audio)
        if not path.is_file():
            skip(MISSING_AUDIO, f"{path} does not exist")
            continue
        try:
            duration, sr = _probe(path, c.raw)
        except Exception as exc:  # noqa: BLE001 - any decoder failure means the file is unusable
            skip(UNREADABLE_AUDIO, " ".join(str(exc).split())[:200] or type(exc).__name__)
            continue
        if not limits.min_sample_rate <= sr <= limits.max_sample_rate:
            skip(BAD_SAMPLE_RATE, f"{sr} Hz not in [{limits.min_sample_rate}, {limits.max_sample_rate}]")
            continue
        if duration < limits.min_duration:
            skip(TOO_SHORT, f"{duration:.3f} s < {limits.min_duration} s")
            continue
        if duration > limits.max_duration:
            skip(TOO_LONG, f"{duration:.3f} s > {limits.max_duration} s")
            continue
        if len(text) > limits.max_chars_per_second * duration:
            skip(TEXT_TOO_LONG, f"{len(text)} characters in {duration:.2f} s")
            continue
        out = path
        if c.raw is not None or path.suffix.lower() not in _DIRECT_EXTENSIONS:
            out = conv_dir / f"{_safe_name(c.id)}.wav"
            try:
                _convert_to_wav(path, out, c.raw)
            except Exception as exc:  # noqa: BLE001
                skip(UNREADABLE_AUDIO, f"conversion to WAV failed: {' '.join(str(exc).split())[:200]}")
                continue
        elif copy_dir is not None:
            out = copy_dir / f"{_safe_name(c.id)}{path.suffix.lower()}"
            with atomic_path(out) as tmp:
                shutil.copyfile(path, tmp)
        seen.add(c.id)
        kept.append(
            Utterance(
                id=c.id,
                audio=_manifest_audio_path(out, manifest_dir),
                text=text,
                lang=c.lang,
                speaker=c.speaker,
                duration=round(duration, 4),
                split=c.split,
                phonemes=c.phonemes,
                tags=dict(c.tags),
            )
        )
    return ImportResult(kept, skipped)


def write_import(result: ImportResult, out: str | os.PathLike) -> tuple[Path, Path]:
    """Write the manifest and ``<out>.skipped.jsonl`` atomically; returns both paths.

    Raises :class:`ManifestError` (writing nothing) when no utterance was kept.
    """
    import json

    out = Path(out)
    skipped_path = out.with_name(out.name + ".skipped.jsonl")
    if not result.utterances:
        raise ManifestError(f"nothing imported ({result.summary()}); no manifest written")
    write_manifest(out, result.utterances)
    with atomic_path(skipped_path) as tmp, tmp.open("w", encoding="utf-8") as f:
        for s in result.skipped:
            f.write(json.dumps(s.to_dict(), ensure_ascii=False) + "\n")
    return out, skipped_path


# --------------------------------------------------------------------------------------------------- folder


def read_folder(
    src: str | os.PathLike,
    lang: str = "und",
    split: str = "train",
    speaker_from_dir: bool = False,
    speaker: str | None = None,
) -> Iterator[Candidate]:
    """Audio files (wav/flac/ogg/mp3/opus) under ``src`` with a same-name ``.txt`` or ``.lab`` transcript.

    The id is the path below ``src`` without extension, ``/`` replaced by ``_``. The speaker is the parent
    folder's name with ``speaker_from_dir``, else ``speaker`` (default: the name of ``src``).
    """
    root = Path(src)
    if not root.is_dir():
        raise SpeechLMError(f"--src {root} is not a folder")
    default_speaker = speaker or root.resolve().name
    for path in sorted(p for p in root.rglob("*") if p.suffix.lower() in AUDIO_EXTENSIONS and p.is_file()):
        rel = path.relative_to(root).with_suffix("")
        uid = "_".join(rel.parts)
        spk = path.parent.name if speaker_from_dir and path.parent != root else default_speaker
        transcript = next(
            (path.with_suffix(e) for e in TRANSCRIPT_EXTENSIONS if path.with_suffix(e).is_file()), None
        )
        if transcript is None:
            yield Candidate(
                uid,
                path.resolve(),
                "",
                lang,
                spk,
                split,
                reason=NO_TRANSCRIPT,
                detail=f"no {path.stem}.txt or .lab beside it",
            )
            continue
        try:
            text = transcript.read_text(encoding="utf-8-sig")
        except UnicodeDecodeError:
            yield Candidate(
                uid,
                path.resolve(),
                "",
                lang,
                spk,
                split,
                reason=EMPTY_TRANSCRIPT,
                detail=f"{transcript.name} is not UTF-8",
            )
            continue
        yield Candidate(uid, path.resolve(), text, lang, spk, split, tags={"source": "folder"})


# --------------------------------------------------------------------------------------------------- registry


@dataclass(frozen=True)
class ImportOptions:
    """Options from ``speechlm data import`` that readers may use (each uses what applies to it)."""

    src: Path | None
    lang: str | None = None
    split: str | None = None
    speaker_from_dir: bool = False
    speaker: str | None = None
    transcripts: Path | None = None
    copy_audio_to: Path | None = None  # Lhotse cuts that are segments of a recording are cut out there


def _folder(o: ImportOptions) -> Iterator[Candidate]:
    if o.src is None:
        raise SpeechLMError("--src is required for --format folder")
    return read_folder(
        o.src,
        lang=o.lang or "und",
        split=o.split or "train",
        speaker_from_dir=o.speaker_from_dir,
        speaker=o.speaker,
    )


def _lhotse_format(name: str) -> Callable[[ImportOptions], Iterator[Candidate]]:
    def read(o: ImportOptions) -> Iterator[Candidate]:
        from speechlm.data import lhotse_io

        if o.src is None:
            raise SpeechLMError(f"--src is required for --format {name}")
        if name == "lhotse":
            return lhotse_io.read_lhotse_manifest(
                o.src, lang=o.lang, split=o.split, audio_dir=o.copy_audio_to
            )
        return lhotse_io.read_recipe(name, o.src, lang=o.lang, split=o.split, audio_dir=o.copy_audio_to)

    return read


def _debian_format(name: str) -> Callable[[ImportOptions], Iterator[Candidate]]:
    def read(o: ImportOptions) -> Iterator[Candidate]:
        from speechlm.data import debian_speech

        return debian_speech.read(name, o)

    return read


# format name -> (reader, help line). Held-out formats always write split="test".
FORMATS: dict[str, tuple[Callable[[ImportOptions], Iterator[Candidate]], str]] = {
    "folder": (
        _folder,
        "audio files with same-name .txt/.lab transcripts (--speaker-from-dir: parent folder = speaker)",
    ),
    "libritts": (
        _lhotse_format("libritts"),
        "LibriTTS / LibriTTS-R root (dev-clean/, train-clean-100/, ...) via lhotse.recipes.prepare_libritts",
    ),
    "ljspeech": (_lhotse_format("ljspeech"), "LJSpeech-1.1 root (metadata.csv, wavs/) via prepare_ljspeech"),
    "vctk": (
        _lhotse_format("vctk"),
        "VCTK root (speaker-info.txt, txt/, wav48/ or wav48_silence_trimmed/) via prepare_vctk",
    ),
    "emilia": (
        _lhotse_format("emilia"),
        "Emilia root (raw/EN/*.jsonl + mp3) via prepare_emilia; needs --lang",
    ),
    "lhotse": (
        _lhotse_format("lhotse"),
        "a Lhotse CutSet file, or a folder/prefix with *recordings*.jsonl[.gz] + *supervisions*.jsonl[.gz]",
    ),
    "fillets": (
        _debian_format("fillets"),
        "Debian fillets-ng-data-{cs,nl}: game dialogs (--lang cs|nl; trainable)",
    ),
    "klettres": (
        _debian_format("klettres"),
        "Debian klettres-data: letters and syllables, ~20 languages (trainable)",
    ),
    "asterisk-prompts": (
        _debian_format("asterisk-prompts"),
        "Debian asterisk-prompt-fr-armelle, -es-co, -it-menardi (trainable)",
    ),
    "asterisk-core": (
        _debian_format("asterisk-core"),
        "Debian asterisk-core-sounds-LANG-wav (HELD-OUT: split=test; --lang en|fr|es|it)",
    ),
    "pocketsphinx-testdata": (
        _debian_format("pocketsphinx-testdata"),
        "Debian pocketsphinx-testdata read speech (HELD-OUT: split=test)",
    ),
    "codec2-examples": (
        _debian_format("codec2-examples"),
        "Debian codec2-examples speech samples, no transcripts (HELD-OUT: split=test)",
    ),
}


def read_candidates(fmt: str, options: ImportOptions) -> Iterator[Candidate]:
    """The candidates of source ``options.src`` in format ``fmt`` (a key of :data:`FORMATS`)."""
    if fmt not in FORMATS:
        raise SpeechLMError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
    if options.split is not None and options.split not in SPLITS:
        raise SpeechLMError(f"--split {options.split!r} is not one of {', '.join(SPLITS)}")
    return FORMATS[fmt][0](options)
