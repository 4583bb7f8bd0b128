"""The manifest contract: JSONL, one utterance a line.

Fields (ARCHITECTURE.md): ``audio`` (path relative to the manifest's folder, or absolute), ``text``, ``lang``,
``speaker``, ``duration`` (seconds), optional ``phonemes``, ``tags`` (dict of style/generation attributes),
``split`` (``train`` / ``valid`` / ``test``). An ``id`` is added when missing (the audio file's stem).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from speechlm.errors import ManifestError
from speechlm.utils.atomic import atomic_path

SPLITS = ("train", "valid", "test")


@dataclass(frozen=True)
class Utterance:
    """One manifest line."""

    id: str
    audio: str
    text: str
    lang: str
    speaker: str
    duration: float
    split: str = "train"
    phonemes: str | None = None
    tags: dict[str, Any] = field(default_factory=dict)

    def audio_path(self, root: str | os.PathLike) -> Path:
        """The audio file's path, resolving a relative ``audio`` against the manifest folder ``root``."""
        p = Path(self.audio)
        return p if p.is_absolute() else Path(root) / p

    def to_json(self) -> str:
        d = asdict(self)
        if d["phonemes"] is None:
            del d["phonemes"]
        return json.dumps(d, ensure_ascii=False, sort_keys=False)

    @classmethod
    def from_dict(cls, d: dict[str, Any], where: str = "") -> Utterance:
        missing = [k for k in ("audio", "text", "lang", "speaker", "duration") if k not in d]
        if missing:
            raise ManifestError(f"{where}missing field(s) {', '.join(missing)}")
        try:
            duration = float(d["duration"])
        except (TypeError, ValueError):
            raise ManifestError(f"{where}duration {d['duration']!r} is not a number") from None
        if not duration > 0:
            raise ManifestError(f"{where}duration must be > 0, got {duration}")
        split = d.get("split", "train")
        if split not in SPLITS:
            raise ManifestError(f"{where}split {split!r} is not one of {', '.join(SPLITS)}")
        tags = d.get("tags") or {}
        if not isinstance(tags, dict):
            raise ManifestError(f"{where}tags must be an object")
        return cls(
            id=str(d.get("id") or Path(str(d["audio"])).stem),
            audio=str(d["audio"]),
            text=str(d["text"]),
            lang=str(d["lang"]),
            speaker=str(d["speaker"]),
            duration=duration,
            split=split,
            phonemes=d.get("phonemes"),
            tags=dict(tags),
        )


def read_manifest(path: str | os.PathLike) -> list[Utterance]:
    """Read a JSONL manifest; a bad line raises :class:`ManifestError` naming the file and line number."""
    return list(iter_manifest(path))


def iter_manifest(path: str | os.PathLike) -> Iterator[Utterance]:
    path = Path(path)
    if not path.is_file():
        raise ManifestError(f"manifest {path} does not exist")
    with path.open(encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            where = f"{path}:{lineno}: "
            try:
                d = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ManifestError(f"{where}not valid JSON ({exc.msg})") from None
            if not isinstance(d, dict):
                raise ManifestError(f"{where}each line must be a JSON object")
            yield Utterance.from_dict(d, where)


def write_manifest(path: str | os.PathLike, utterances: Iterable[Utterance]) -> int:
    """Write utterances as JSONL atomically; returns the number written."""
    n = 0
    with atomic_path(path) as tmp, tmp.open("w", encoding="utf-8") as f:
        for u in utterances:
            f.write(u.to_json() + "\n")
            n += 1
    return n


def manifest_root(path: str | os.PathLike) -> Path:
    """The folder relative ``audio`` paths are resolved against."""
    return Path(path).resolve().parent


def draw_train_utterances(manifests: list[str], max_hours: float | None, seed: int) -> tuple[list[str], float]:
    """Audio paths of the manifests' ``split=train`` utterances in a seeded random order, up to ``max_hours`` (the
    one that crosses it included; None: all), and their total seconds. Raises when there are none."""
    import numpy as np

    from speechlm.errors import SpeechLMError

    utts = []
    for m in manifests:
        root = manifest_root(m)
        utts += [(str(u.audio_path(root)), float(u.duration or 0.0)) for u in read_manifest(m) if u.split == "train"]
    if not utts:
        raise SpeechLMError("no utterances with split=train in " + ", ".join(manifests))
    chosen, total = [], 0.0
    for i in np.random.default_rng(seed).permutation(len(utts)):
        if max_hours is not None and total >= max_hours * 3600:
            break
        chosen.append(utts[i][0])
        total += utts[i][1]
    return chosen, total
