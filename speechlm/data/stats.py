"""Summary statistics of a manifest: hours, speakers, languages, engines, split overlap, duration histogram.

``compute_stats(path)`` reads the manifest once; ``format_stats`` renders text; ``plot_duration_histogram``
writes a PNG (matplotlib, Agg backend, written atomically).
"""

from __future__ import annotations

import os
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from itertools import combinations
from pathlib import Path

import numpy as np

from speechlm.data.manifest import SPLITS, iter_manifest
from speechlm.errors import ManifestError
from speechlm.utils.atomic import atomic_path

# Histogram bin edges in seconds; the last bin collects everything longer.
DURATION_BINS = (0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 8.0, 10.0, 15.0, 20.0, 30.0, float("inf"))


@dataclass(frozen=True)
class ManifestStats:
    """Counts over one manifest. ``seconds_by_*`` map a key to total seconds."""

    path: str
    utterances: int
    seconds: float
    durations: tuple[float, ...]
    utterances_by_split: dict[str, int]
    seconds_by_split: dict[str, float]
    speakers_by_split: dict[str, int]
    speakers: int
    voices: int  # distinct (engine, voice) tags; equals speakers when the manifest has no engine tags
    seconds_by_lang: dict[str, float]
    seconds_by_engine: dict[str, float]
    speakers_by_lang: dict[str, int]
    overlap: dict[str, int] = field(default_factory=dict)  # "train/test" -> speakers in both
    augmented: int = 0

    @property
    def hours(self) -> float:
        return self.seconds / 3600

    @property
    def overlap_total(self) -> int:
        return sum(self.overlap.values())

    def histogram(self) -> list[tuple[float, float, int]]:
        """(low, high, count) per duration bin."""
        d = np.asarray(self.durations)
        edges = np.asarray(DURATION_BINS)
        counts = (
            np.histogram(np.clip(d, 0, edges[-2] + 1), bins=np.append(edges[:-1], edges[-2] + 2))[0]
            if d.size
            else np.zeros(len(edges) - 1, int)
        )
        return [(float(edges[i]), float(edges[i + 1]), int(c)) for i, c in enumerate(counts)]


def compute_stats(path: str | os.PathLike) -> ManifestStats:
    """Read a manifest and count; an empty manifest is a :class:`ManifestError`."""
    durations = []
    n_split: Counter[str] = Counter()
    s_split: dict[str, float] = defaultdict(float)
    spk_split: dict[str, set[str]] = defaultdict(set)
    s_lang: dict[str, float] = defaultdict(float)
    s_engine: dict[str, float] = defaultdict(float)
    spk_lang: dict[str, set[str]] = defaultdict(set)
    voices: set[tuple[str, str]] = set()
    augmented = 0
    for u in iter_manifest(path):
        durations.append(u.duration)
        n_split[u.split] += 1
        s_split[u.split] += u.duration
        spk_split[u.split].add(u.speaker)
        s_lang[u.lang] += u.duration
        spk_lang[u.lang].add(u.speaker)
        engine = str(u.tags.get("engine", "unknown"))
        s_engine[engine] += u.duration
        voices.add((engine, str(u.tags["voice"])) if "voice" in u.tags else ("speaker", u.speaker))
        augmented += bool(u.tags.get("augment"))
    if not durations:
        raise ManifestError(f"manifest {path} has no utterances")
    overlap = {f"{a}/{b}": len(spk_split[a] & spk_split[b]) for a, b in combinations(SPLITS, 2)}
    return ManifestStats(
        path=str(path),
        utterances=len(durations),
        seconds=float(sum(durations)),
        durations=tuple(durations),
        utterances_by_split=dict(n_split),
        seconds_by_split=dict(s_split),
        speakers_by_split={k: len(v) for k, v in spk_split.items()},
        speakers=len(set().union(*spk_split.values())),
        voices=len(voices),
        seconds_by_lang=dict(sorted(s_lang.items())),
        seconds_by_engine=dict(sorted(s_engine.items())),
        speakers_by_lang={k: len(v) for k, v in sorted(spk_lang.items())},
        overlap=overlap,
        augmented=augmented,
    )


def format_stats(st: ManifestStats) -> str:
    """A plain-text report (the ``speechlm data stats`` output)."""
    d = np.asarray(st.durations)
    lines = [
        f"manifest: {st.path}",
        f"hours: {st.hours:.3f}   utterances: {st.utterances}   speakers: {st.speakers}   "
        f"voices: {st.voices}   "
        f"augmented: {st.augmented} ({100 * st.augmented / st.utterances:.0f}%)",
        f"duration s: min {d.min():.2f}  median {np.median(d):.2f}  mean {d.mean():.2f}  max {d.max():.2f}",
        "",
        f"{'split':6s} {'hours':>8s} {'utts':>7s} {'speakers':>9s}",
    ]
    for s in SPLITS:
        lines.append(
            f"{s:6s} {st.seconds_by_split.get(s, 0) / 3600:8.3f} {st.utterances_by_split.get(s, 0):7d} "
            f"{st.speakers_by_split.get(s, 0):9d}"
        )
    lines += ["", f"{'lang':6s} {'hours':>8s} {'speakers':>9s}"]
    for lang, sec in st.seconds_by_lang.items():
        lines.append(f"{lang:6s} {sec / 3600:8.3f} {st.speakers_by_lang[lang]:9d}")
    lines += ["", f"{'engine':10s} {'hours':>8s}"]
    for eng, sec in st.seconds_by_engine.items():
        lines.append(f"{eng:10s} {sec / 3600:8.3f}")
    lines.append("")
    for pair, n in st.overlap.items():
        lines.append(f"speaker overlap {pair}: {n}")
    lines += ["", "duration histogram (s):"]
    hist = st.histogram()
    top = max(c for _, _, c in hist) or 1
    for lo, hi, c in hist:
        label = f"{lo:g}-{hi:g}" if np.isfinite(hi) else f">={lo:g}"
        lines.append(f"  {label:>7s} {c:7d} {'#' * round(40 * c / top)}")
    return "\n".join(lines)


def plot_duration_histogram(st: ManifestStats, path: str | os.PathLike) -> Path:
    """Write a PNG histogram of utterance durations per split; returns the path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    fig, ax = plt.subplots(figsize=(7, 4), dpi=100)
    d = np.asarray(st.durations)
    bins = np.linspace(0, max(1.0, float(np.percentile(d, 99.5))), 40)
    ax.hist(d, bins=bins, color="#4477aa")
    ax.set_xlabel("duration (s)")
    ax.set_ylabel("utterances")
    ax.set_title(f"{Path(st.path).name}: {st.utterances} utts, {st.hours:.2f} h, {st.speakers} speakers")
    fig.tight_layout()
    try:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format="png")
    finally:
        plt.close(fig)
    return path
