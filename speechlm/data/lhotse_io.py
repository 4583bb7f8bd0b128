"""Manifests to and from Lhotse, and corpus import through Lhotse's own recipes.

Lhotse (PyPI ``lhotse``, in the ``train`` extra) already knows how LibriTTS, LJSpeech, VCTK, Emilia and
dozens of other corpora are laid out, so we call its ``lhotse.recipes.prepare_*`` functions (never the
``download_*`` ones: nothing here reaches the network) and convert the result to our utterances.

Our manifest has one whole audio file per line; a Lhotse cut may be a segment of a longer recording. Such
cuts are cut out to WAV files when an ``audio_dir`` is given, else rejected with a reason.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

from speechlm.data.manifest import SPLITS, Utterance
from speechlm.data.readers import AUDIO_EXTENSIONS, UNREADABLE_AUDIO, Candidate
from speechlm.errors import ManifestError, MissingDependencyError, SpeechLMError

# Lhotse recipes write language names ("English"); the manifest uses ISO 639-1 codes.
_LANGUAGE_CODES = {
    "english": "en",
    "german": "de",
    "french": "fr",
    "spanish": "es",
    "italian": "it",
    "dutch": "nl",
    "czech": "cs",
    "polish": "pl",
    "portuguese": "pt",
    "russian": "ru",
    "chinese": "zh",
    "mandarin": "zh",
    "japanese": "ja",
    "korean": "ko",
    "finnish": "fi",
    "swedish": "sv",
    "arabic": "ar",
    "hindi": "hi",
}
SEGMENT_OF_RECORDING = "segment of a longer recording"
MULTI_SUPERVISION = "several supervisions in one cut"
DROPPED_BY_RECIPE = "no transcript (dropped by the Lhotse recipe)"


def require_lhotse() -> Any:
    """Import lhotse or raise :class:`MissingDependencyError` with the pip command."""
    try:
        import lhotse
    except ImportError:
        raise MissingDependencyError(
            "this needs lhotse (the 'train' extra): pip install 'speechlm[train]'  (or: pip install lhotse)"
        ) from None
    return lhotse


def language_code(name: str | None) -> str | None:
    """``"English"`` -> ``"en"``; a code passes through; ``None`` stays ``None``."""
    if name is None:
        return None
    return _LANGUAGE_CODES.get(name.strip().lower(), name.strip())


def to_cutset(utterances: Iterable[Utterance], root: str | os.PathLike) -> Any:
    """A ``lhotse.CutSet`` with one MonoCut per utterance (whole file, one supervision).

    ``root`` is the manifest's folder (relative ``audio`` paths are resolved against it). The split, tags and
    phonemes travel in the supervision's ``custom`` field so :func:`from_cutset` restores them exactly.
    A multi-channel file becomes a cut of its channel 0 (the manifest has no channel field; loaders downmix).
    Opens each file's header (Lhotse records the exact sample count).
    """
    lhotse = require_lhotse()
    from lhotse import MonoCut, Recording, SupervisionSegment

    cuts = []
    for u in utterances:
        path = u.audio_path(root)
        try:
            rec = Recording.from_file(path, recording_id=u.id)
        except Exception as exc:  # noqa: BLE001
            raise ManifestError(f"utterance {u.id}: cannot open {path}: {exc}") from None
        custom: dict[str, Any] = {"split": u.split, "tags": dict(u.tags)}
        if u.phonemes is not None:
            custom["phonemes"] = u.phonemes
        sup = SupervisionSegment(
            id=u.id,
            recording_id=u.id,
            start=0.0,
            duration=rec.duration,
            channel=0,
            text=u.text,
            language=u.lang,
            speaker=u.speaker,
            custom=custom,
        )
        cuts.append(
            MonoCut(id=u.id, start=0.0, duration=rec.duration, channel=0, recording=rec, supervisions=[sup])
        )
    return lhotse.CutSet.from_cuts(cuts)


def _cut_candidate(
    cut: Any,
    lang: str | None,
    split: str | None,
    source: str | None,
    default_speaker: str,
    audio_dir: Path | None,
) -> Candidate:
    """One cut -> one candidate (rejected with a reason when it cannot be one whole-file utterance)."""
    sups = list(cut.supervisions)
    sup = sups[0] if sups else None
    custom = dict(sup.custom or {}) if sup is not None else {}
    tags = dict(custom.pop("tags", {}) or {})
    phonemes = custom.pop("phonemes", None)
    cut_split = custom.pop("split", None)
    for k, v in custom.items():  # recipe metadata (snr, accent, dnsmos, ...) kept as tags
        if isinstance(v, str | int | float | bool) or v is None:
            tags.setdefault(k, v)
    if sup is not None and sup.gender:
        tags.setdefault("gender", sup.gender)
    if source is not None:  # recipes name the corpus; a CutSet of ours round-trips its tags unchanged
        tags.setdefault("source", source)
    rec = cut.recording
    source_path = None
    if rec is not None and len(rec.sources) == 1 and rec.sources[0].type == "file":
        source_path = Path(rec.sources[0].source)
    c = Candidate(
        id=sup.id if sup is not None and len(sups) == 1 else cut.id,  # recipes' cut ids add "-<n>" suffixes
        audio=source_path.resolve() if source_path else Path(f"<{cut.id}>"),
        text=(sup.text or "") if sup is not None else "",
        lang=lang or language_code(sup.language if sup is not None else None) or "und",
        speaker=(sup.speaker if sup is not None and sup.speaker else default_speaker),
        split=split or (cut_split if cut_split in SPLITS else "train"),
        tags=tags,
        phonemes=phonemes,
    )
    whole = (
        rec is not None
        and abs(cut.start) < 1e-3
        and abs(cut.duration - rec.duration) < 1e-2
        and len(rec.channel_ids) >= 1
    )
    if len(sups) > 1:
        return replace(c, reason=MULTI_SUPERVISION, detail=f"{len(sups)} supervisions")
    if whole and source_path is not None:
        return c
    if audio_dir is None:
        return replace(
            c,
            reason=SEGMENT_OF_RECORDING,
            detail=f"start {cut.start:.2f} s, {cut.duration:.2f} s of {rec.duration if rec else 0:.2f} s "
            f"(pass --copy-audio-to to cut it out)",
        )
    out = audio_dir / f"{_safe(c.id)}.wav"
    try:
        _save_cut(cut, out)
    except Exception as exc:  # noqa: BLE001
        return replace(c, reason=UNREADABLE_AUDIO, detail=f"cutting out failed: {exc}")
    return replace(c, audio=out.resolve())


def _safe(s: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in s) or "cut"


def _save_cut(cut: Any, out: Path) -> None:
    import soundfile as sf

    from speechlm.utils.atomic import atomic_path

    wav = cut.load_audio()  # [C, T]
    with atomic_path(out) as tmp:
        sf.write(str(tmp), wav.T, cut.sampling_rate, subtype="PCM_16", format="WAV")


def from_cutset(
    cuts: Iterable[Any],
    manifest_dir: str | os.PathLike,
    *,
    lang: str | None = None,
    split: str | None = None,
    default_speaker: str = "unknown",
    audio_dir: str | os.PathLike | None = None,
) -> list[Utterance]:
    """Utterances from a Lhotse CutSet (the inverse of :func:`to_cutset`).

    Args:
        cuts: a ``CutSet`` or any iterable of cuts.
        manifest_dir: folder of the manifest the utterances will be written to (audio under it is relative).
        lang, split: override the cut's language / split.
        default_speaker: used when a supervision has no speaker.
        audio_dir: where cuts that are segments of a longer recording are cut out to WAV; without it such a
            cut raises :class:`ManifestError`.

    Durations come from the cuts (no file is opened); use ``speechlm data import --format lhotse`` to also
    validate the audio.
    """
    require_lhotse()
    root = Path(manifest_dir).resolve()
    adir = Path(audio_dir) if audio_dir is not None else None
    out: list[Utterance] = []
    for cut in cuts:
        c = _cut_candidate(cut, lang, split, None, default_speaker, adir)
        if c.reason is not None:
            raise ManifestError(f"cut {cut.id}: {c.reason} ({c.detail})")
        try:
            audio = c.audio.relative_to(root).as_posix()
        except ValueError:
            audio = str(c.audio)
        out.append(
            Utterance(
                id=c.id,
                audio=audio,
                text=" ".join(c.text.split()),
                lang=c.lang,
                speaker=c.speaker,
                duration=round(float(cut.duration), 4),
                split=c.split,
                phonemes=c.phonemes,
                tags=c.tags,
            )
        )
    return out


def cuts_to_candidates(
    cuts: Iterable[Any],
    *,
    lang: str | None,
    split: str | None,
    source: str | None,
    default_speaker: str,
    audio_dir: Path | None = None,
) -> Iterator[Candidate]:
    for cut in cuts:
        yield _cut_candidate(cut, lang, split, source, default_speaker, audio_dir)


# --------------------------------------------------------------------------------------------------- recipes

# LibriTTS part name -> our split (a user's --split overrides).
_LIBRITTS_SPLIT = {"dev": "valid", "test": "test", "train": "train"}


def _call_recipe(name: str, fn: Any, *args: Any, **kw: Any) -> Any:
    try:
        return fn(*args, **kw)
    except Exception as exc:  # noqa: BLE001 - a recipe fails with asserts, KeyErrors, decoder errors...
        raise SpeechLMError(
            f"lhotse recipe prepare_{name} failed on this folder: {type(exc).__name__}: {exc}".rstrip(": ")
        ) from None


def read_recipe(
    name: str,
    src: str | os.PathLike,
    lang: str | None = None,
    split: str | None = None,
    audio_dir: Path | None = None,
) -> Iterator[Candidate]:
    """Run ``lhotse.recipes.prepare_<name>`` on a corpus folder and yield candidates.

    Supported: ``libritts`` (every part folder present; dev-* -> valid, test-* -> test), ``ljspeech``,
    ``vctk`` (``wav48/`` layout, or ``wav48_silence_trimmed/`` flac with mic2), ``emilia`` (needs ``lang``).
    Recipes that cannot read a file stop with a one-line error naming the recipe.
    """
    require_lhotse()
    src = Path(src)
    if not src.is_dir():
        raise SpeechLMError(f"--src {src} is not a folder")
    used: set[Path] = set()
    for c in _recipe_candidates(name, src, lang, split, audio_dir):
        used.add(c.audio)
        yield c
    # Recipes silently drop audio they have no transcript for; report those too.
    for path in sorted(p for p in src.rglob("*") if p.suffix.lower() in AUDIO_EXTENSIONS):
        if path.resolve() not in used and not path.name.startswith("._"):
            rel = path.relative_to(src)
            yield Candidate(
                rel.with_suffix("").as_posix().replace("/", "_"),
                path.resolve(),
                "",
                lang or "und",
                "unknown",
                split or "train",
                reason=DROPPED_BY_RECIPE,
                detail=f"prepare_{name} kept no supervision for {rel}",
            )


def _recipe_candidates(
    name: str, src: Path, lang: str | None, split: str | None, audio_dir: Path | None
) -> Iterator[Candidate]:
    from lhotse import CutSet

    if name == "libritts":
        from lhotse.recipes.libritts import LIBRITTS, prepare_libritts

        parts = [p for p in LIBRITTS if (src / p).is_dir()]
        if not parts:
            raise SpeechLMError(f"{src} holds none of the LibriTTS parts ({', '.join(LIBRITTS)})")
        manifests = _call_recipe(name, prepare_libritts, src, dataset_parts=parts)
        for part in parts:
            m = manifests[part]
            part_split = split or _LIBRITTS_SPLIT[part.split("-")[0]]
            cuts = CutSet.from_manifests(recordings=m["recordings"], supervisions=m["supervisions"])
            yield from cuts_to_candidates(
                cuts,
                lang=lang,
                split=part_split,
                source=f"libritts/{part}",
                default_speaker="libritts",
                audio_dir=audio_dir,
            )
        return
    if name == "ljspeech":
        from lhotse.recipes.ljspeech import prepare_ljspeech

        m = _call_recipe(name, prepare_ljspeech, src)
        cuts = CutSet.from_manifests(recordings=m["recordings"], supervisions=m["supervisions"])
        yield from cuts_to_candidates(
            cuts, lang=lang, split=split, source="ljspeech", default_speaker="LJ", audio_dir=audio_dir
        )
        return
    if name == "vctk":
        from lhotse.recipes.vctk import prepare_vctk

        edinburgh = (src / "wav48_silence_trimmed").is_dir() and not (src / "wav48").is_dir()
        m = _call_recipe(name, prepare_vctk, src, use_edinburgh_vctk_url=edinburgh)
        cuts = CutSet.from_manifests(recordings=m["recordings"], supervisions=m["supervisions"])
        yield from cuts_to_candidates(
            cuts, lang=lang, split=split, source="vctk", default_speaker="vctk", audio_dir=audio_dir
        )
        return
    if name == "emilia":
        from lhotse.recipes.emilia import prepare_emilia

        if not lang:
            raise SpeechLMError("--format emilia needs --lang (one of de, en, fr, ja, ko, zh)")
        cuts = _call_recipe(name, prepare_emilia, src, lang=lang, num_jobs=1)
        yield from cuts_to_candidates(
            cuts, lang=lang, split=split, source="emilia", default_speaker="emilia", audio_dir=audio_dir
        )
        return
    raise SpeechLMError(f"no Lhotse recipe wired for {name!r}")


def read_lhotse_manifest(
    src: str | os.PathLike, lang: str | None = None, split: str | None = None, audio_dir: Path | None = None
) -> Iterator[Candidate]:
    """Candidates from a CutSet file, or from a recordings + supervisions pair.

    ``src`` is a ``*cuts*.jsonl[.gz]`` file, or a folder holding exactly one ``*recordings*.jsonl[.gz]`` and
    one ``*supervisions*.jsonl[.gz]``.
    """
    require_lhotse()
    from lhotse import CutSet, RecordingSet, SupervisionSet

    src = Path(src)
    if src.is_file():
        try:
            cuts = CutSet.from_file(src)
        except Exception as exc:  # noqa: BLE001
            raise SpeechLMError(f"{src} is not a Lhotse CutSet: {exc}") from None
    elif src.is_dir():
        recs = sorted(src.glob("*recordings*.jsonl*"))
        sups = sorted(src.glob("*supervisions*.jsonl*"))
        cut_files = sorted(src.glob("*cuts*.jsonl*"))
        if len(cut_files) == 1 and not recs:
            cuts = CutSet.from_file(cut_files[0])
        elif len(recs) == 1 and len(sups) == 1:
            cuts = CutSet.from_manifests(
                recordings=RecordingSet.from_file(recs[0]), supervisions=SupervisionSet.from_file(sups[0])
            )
        else:
            raise SpeechLMError(
                f"{src}: expected one *cuts*.jsonl[.gz], or one *recordings* and one "
                f"*supervisions* manifest; found {len(cut_files)} cuts, {len(recs)} recordings, "
                f"{len(sups)} supervisions files"
            )
    else:
        raise SpeechLMError(f"--src {src} does not exist")
    yield from cuts_to_candidates(
        cuts, lang=lang, split=split, source=None, default_speaker="unknown", audio_dir=audio_dir
    )
