"""Evaluation results and their three renderings: JSON (every number), Markdown, and one self-contained HTML
page.

A :class:`Report` holds per-utterance results (:class:`UtteranceResult`) and a summary (:class:`SummaryRow`):
the mean of each metric with a bootstrap 95% CI, and for WER/CER the corpus-level rate (errors / reference
length) with a CI from resampling utterances. :meth:`Report.write` writes ``report.json``, ``report.md`` and
``report.html`` into a folder, each atomically.

The HTML page needs no other file and no network: audio is embedded as base64 Ogg/Opus at 16 kHz (about 2 KB
per second per clip) and spectrograms as base64 PNG (matplotlib, Agg). To keep the page small, media are
embedded for the first ``max_media`` utterances only (default :data:`DEFAULT_MAX_MEDIA` = 40); every utterance
still has its row of numbers.
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from speechlm.eval.bootstrap import DEFAULT_RESAMPLES, DEFAULT_SEED, bootstrap_mean, bootstrap_ratio
from speechlm.utils.atomic import atomic_write_text

DEFAULT_MAX_MEDIA = 40
MEDIA_SR = 16000


@dataclass(frozen=True)
class MetricSpec:
    """How a metric is named, printed and read."""

    key: str
    label: str
    unit: str = ""
    higher_is_better: bool = True
    digits: int = 3


# Order here is the order of the summary table.
METRICS: dict[str, MetricSpec] = {
    m.key: m
    for m in (
        MetricSpec("wer", "WER", "", False, 4),
        MetricSpec("cer", "CER", "", False, 4),
        MetricSpec("spk_sim", "Speaker similarity", "cos", True, 4),
        MetricSpec("dnsmos_ovrl", "DNSMOS OVRL", "1-5", True, 3),
        MetricSpec("dnsmos_sig", "DNSMOS SIG", "1-5", True, 3),
        MetricSpec("dnsmos_bak", "DNSMOS BAK", "1-5", True, 3),
        MetricSpec("dnsmos_p808", "DNSMOS P.808", "1-5", True, 3),
        MetricSpec("pesq", "PESQ", "MOS-LQO", True, 3),
        MetricSpec("stoi", "STOI", "", True, 4),
        MetricSpec("si_sdr", "SI-SDR", "dB", True, 2),
        MetricSpec("mel_dist", "Log-mel L1", "", False, 4),
        MetricSpec("mcd", "MCD (DTW)", "dB", False, 3),
        MetricSpec("f0_rmse_cents", "F0 RMSE", "cents", False, 1),
        MetricSpec("f0_rmse_hz", "F0 RMSE", "Hz", False, 2),
        MetricSpec("vde", "Voicing decision error", "", False, 4),
    )
}
RATE_METRICS = ("wer", "cer")  # corpus-level ratios of edit counts


def _spec(key: str) -> MetricSpec:
    return METRICS.get(key) or MetricSpec(key, key)


@dataclass(frozen=True)
class UtteranceResult:
    """One utterance's numbers. ``counts`` holds ``(errors, reference length)`` for WER/CER."""

    id: str
    metrics: Mapping[str, float] = field(default_factory=dict)
    counts: Mapping[str, tuple[int, int]] = field(default_factory=dict)
    ref_text: str | None = None
    hyp_text: str | None = None
    audio: Mapping[str, str] = field(default_factory=dict)  # label ("reference", "generated"...) -> file path
    error: str | None = None  # why this utterance could not be scored


@dataclass(frozen=True)
class SummaryRow:
    """A metric over the corpus: value with its bootstrap CI; ``kind`` is "mean" or "corpus" (WER/CER)."""

    key: str
    label: str
    unit: str
    value: float
    low: float
    high: float
    n: int
    higher_is_better: bool
    kind: str


def summarize(
    items: Sequence[UtteranceResult], n_resamples: int = DEFAULT_RESAMPLES, seed: int = DEFAULT_SEED
) -> tuple[SummaryRow, ...]:
    """Summary rows for every metric present in ``items`` (NaNs dropped; WER/CER pooled over the corpus)."""
    ok = [it for it in items if it.error is None]
    keys = {k for it in ok for k in it.metrics} | {k for it in ok for k in it.counts}
    ordered = [k for k in METRICS if k in keys] + sorted(keys - set(METRICS))
    rows = []
    for key in ordered:
        spec = _spec(key)
        if key in RATE_METRICS and any(key in it.counts for it in ok):
            pairs = np.array([it.counts[key] for it in ok if key in it.counts], dtype=np.float64)
            ci = bootstrap_ratio(pairs[:, 0], pairs[:, 1], n_resamples=n_resamples, seed=seed)
            kind = "corpus"
        else:
            ci = bootstrap_mean(
                [it.metrics.get(key, float("nan")) for it in ok], n_resamples=n_resamples, seed=seed
            )
            kind = "mean"
        rows.append(
            SummaryRow(
                key, spec.label, spec.unit, ci.value, ci.low, ci.high, ci.n, spec.higher_is_better, kind
            )
        )
    return tuple(rows)


def _num(x: float) -> float | None:
    """JSON has no NaN/inf: write null for them."""
    return None if x is None or not math.isfinite(x) else float(x)


def _fmt(x: float, digits: int) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "–"
    return f"{x:.{digits}f}"


@dataclass(frozen=True)
class Report:
    """A finished evaluation. ``meta`` holds the settings (backends, sample rate, timings, counts)."""

    title: str
    kind: str  # "pairs", "tts", "codec"
    summary: tuple[SummaryRow, ...]
    items: tuple[UtteranceResult, ...]
    meta: Mapping[str, Any] = field(default_factory=dict)

    def metric(self, key: str) -> SummaryRow | None:
        """The summary row of ``key``, or None."""
        return next((r for r in self.summary if r.key == key), None)

    def metric_keys(self) -> list[str]:
        return [r.key for r in self.summary]

    # --- renderings -----------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {
            "title": self.title,
            "kind": self.kind,
            "meta": dict(self.meta),
            "summary": [
                {**asdict(r), "value": _num(r.value), "low": _num(r.low), "high": _num(r.high)}
                for r in self.summary
            ],
            "utterances": [
                {
                    "id": it.id,
                    "metrics": {k: _num(v) for k, v in it.metrics.items()},
                    "counts": {k: list(v) for k, v in it.counts.items()},
                    "ref_text": it.ref_text,
                    "hyp_text": it.hyp_text,
                    "audio": dict(it.audio),
                    "error": it.error,
                }
                for it in self.items
            ],
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, ensure_ascii=False, default=str)

    def _summary_cells(self, r: SummaryRow) -> list[str]:
        d = _spec(r.key).digits
        arrow = "↑" if r.higher_is_better else "↓"
        name = f"{r.label} ({r.unit})" if r.unit else r.label
        return [
            f"{name} {arrow}",
            _fmt(r.value, d),
            f"[{_fmt(r.low, d)}, {_fmt(r.high, d)}]",
            str(r.n),
            "corpus" if r.kind == "corpus" else "mean",
        ]

    def to_markdown(self) -> str:
        lines = [f"# {self.title}", ""]
        for k, v in self.meta.items():
            lines.append(f"- **{k}**: {v}")
        lines += [
            "",
            "## Summary (95% bootstrap CI)",
            "",
            "| metric | value | 95% CI | n | aggregate |",
            "|---|---:|---|---:|---|",
        ]
        lines += ["| " + " | ".join(self._summary_cells(r)) + " |" for r in self.summary]
        keys = self.metric_keys()
        has_text = any(it.hyp_text is not None for it in self.items)
        head = ["id", *keys] + (["reference text", "ASR transcript"] if has_text else []) + ["error"]
        lines += ["", "## Per utterance", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for it in self.items:
            cells = [it.id] + [_fmt(_item_value(it, k), _spec(k).digits) for k in keys]
            if has_text:
                cells += [_md_escape(it.ref_text or ""), _md_escape(it.hyp_text or "")]
            cells.append(_md_escape(it.error or ""))
            lines.append("| " + " | ".join(cells) + " |")
        return "\n".join(lines) + "\n"

    def to_html(self, max_media: int = DEFAULT_MAX_MEDIA, media: bool = True) -> str:
        return _render_html(self, max_media if media else 0)

    def write(
        self,
        out_dir: str | os.PathLike,
        max_media: int = DEFAULT_MAX_MEDIA,
        formats: Sequence[str] = ("json", "md", "html"),
    ) -> dict[str, Path]:
        """Write ``report.{json,md,html}`` into ``out_dir`` atomically; returns format -> path."""
        out = Path(out_dir)
        written: dict[str, Path] = {}
        renderers = {"json": self.to_json, "md": self.to_markdown, "html": lambda: self.to_html(max_media)}
        for fmt in formats:
            text = renderers[
                fmt
            ]()  # render before touching the folder: a failure leaves nothing half-written
            path = out / f"report.{fmt}"
            atomic_write_text(path, text)
            written[fmt] = path
        return written


def _item_value(it: UtteranceResult, key: str) -> float:
    if key in it.counts:
        errors, n = it.counts[key]
        return errors / n if n else float("nan")
    return it.metrics.get(key, float("nan"))


def _md_escape(s: str) -> str:
    return s.replace("|", "\\|").replace("\n", " ")


# ----------------------------------------------------------------------------------------------------
# HTML


def _load_16k(path: str) -> np.ndarray | None:
    from speechlm.audio.io import load_audio

    try:
        wav, _ = load_audio(path, sr=MEDIA_SR)
    except Exception:  # noqa: BLE001 - a missing clip only loses its player, not the report
        return None
    return wav[0]


def audio_data_uri(wav: np.ndarray, sr: int = MEDIA_SR) -> str:
    """``data:audio/ogg`` URI of ``wav [T]`` encoded as Ogg/Opus (falls back to 16-bit WAV)."""
    import soundfile as sf

    x = np.clip(np.asarray(wav, dtype=np.float32).ravel(), -1.0, 1.0)
    buf = io.BytesIO()
    try:
        sf.write(buf, x, sr, format="OGG", subtype="OPUS")
        mime = "audio/ogg"
    except Exception:  # noqa: BLE001 - libsndfile without Opus: plain WAV is bigger but plays everywhere
        buf = io.BytesIO()
        sf.write(buf, x, sr, format="WAV", subtype="PCM_16")
        mime = "audio/wav"
    return f"data:{mime};base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def spectrogram_data_uri(wavs: Mapping[str, np.ndarray], sr: int = MEDIA_SR) -> str:
    """PNG data URI of stacked log-mel spectrograms, one panel per labelled waveform ``[T]``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from speechlm.audio.features import log_mel

    fig, axes = plt.subplots(len(wavs), 1, figsize=(5.0, 1.3 * len(wavs)), dpi=72, squeeze=False)
    for ax, (label, w) in zip(axes[:, 0], wavs.items()):
        m = log_mel(np.asarray(w, dtype=np.float32), sr, n_fft=512, hop_length=160, n_mels=64).numpy()
        ax.imshow(
            m,
            origin="lower",
            aspect="auto",
            cmap="magma",
            vmin=-11.5,
            vmax=max(-11.0, float(m.max())),
            extent=(0, len(w) / sr, 0, m.shape[0]),
        )
        ax.set_ylabel(label, fontsize=7)
        ax.tick_params(labelsize=6)
        ax.set_yticks([])
    axes[-1, 0].set_xlabel("s", fontsize=7)
    fig.tight_layout(pad=0.3)
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    try:  # a 64-colour palette PNG is ~4x smaller than matplotlib's RGBA one and looks the same here
        from PIL import Image

        img = Image.open(io.BytesIO(buf.getvalue())).convert("RGB").quantize(colors=64)
        buf = io.BytesIO()
        img.save(buf, format="PNG", optimize=True)
    except ImportError:  # pragma: no cover - Pillow comes with matplotlib
        pass
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


_CSS = """
body{font-family:system-ui,sans-serif;margin:1.5em;color:#222}
table{border-collapse:collapse;margin:1em 0;font-size:13px}
th,td{border:1px solid #ccc;padding:3px 6px;vertical-align:top}
th{background:#f0f0f0} td.num{text-align:right;font-variant-numeric:tabular-nums}
td.err{color:#b00} audio{width:220px;height:32px;display:block} img{display:block;width:360px;max-width:none}
.media{white-space:nowrap}
"""


def _render_html(report: Report, max_media: int) -> str:
    e = html.escape
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{e(report.title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{e(report.title)}</h1>",
        '<ul class="meta">',
    ]
    parts += [f"<li><b>{e(str(k))}</b>: {e(str(v))}</li>" for k, v in report.meta.items()]
    parts += [
        "</ul>",
        "<h2>Summary (95% bootstrap CI)</h2>",
        '<table id="summary">',
        "<thead><tr><th>metric</th><th>value</th><th>95% CI</th><th>n</th><th>aggregate</th></tr></thead>",
        "<tbody>",
    ]
    for r in report.summary:
        c = report._summary_cells(r)
        parts.append(
            f'<tr data-metric="{e(r.key)}"><td>{e(c[0])}</td><td class="num">{e(c[1])}</td>'
            f'<td class="num">{e(c[2])}</td><td class="num">{e(c[3])}</td><td>{e(c[4])}</td></tr>'
        )
    parts += ["</tbody></table>"]
    keys = report.metric_keys()
    has_text = any(it.hyp_text is not None for it in report.items)
    n_media = min(max_media, len(report.items))
    note = (
        f"Audio and spectrograms are embedded for the first {n_media} of {len(report.items)} utterances."
        if n_media < len(report.items)
        else ""
    )
    parts += [
        "<h2>Per utterance</h2>",
        f"<p>{e(note)}</p>" if note else "",
        '<table id="utterances"><thead><tr>',
        "<th>id</th>",
    ]
    parts += [
        f"<th>{e(_spec(k).label)}{' (' + e(_spec(k).unit) + ')' if _spec(k).unit else ''}</th>" for k in keys
    ]
    if has_text:
        parts += ["<th>reference text</th><th>ASR transcript</th>"]
    parts += ["<th>audio</th><th>spectrogram</th></tr></thead><tbody>"]
    for i, it in enumerate(report.items):
        row = [f'<tr class="utt" data-id="{e(it.id)}"><td>{e(it.id)}</td>']
        row += [f'<td class="num">{_fmt(_item_value(it, k), _spec(k).digits)}</td>' for k in keys]
        if has_text:
            row += [f"<td>{e(it.ref_text or '')}</td><td>{e(it.hyp_text or '')}</td>"]
        players, spec_img = [], ""
        if it.error:
            players.append(f'<span class="err">{e(it.error)}</span>')
        if i < max_media and it.audio:
            clips = {label: _load_16k(path) for label, path in it.audio.items()}
            clips = {k: v for k, v in clips.items() if v is not None and v.size > 0}
            for label, w in clips.items():
                players.append(
                    f'<div>{e(label)}<audio controls preload="none" src="{audio_data_uri(w)}"></audio></div>'
                )
            if clips:
                spec_img = (
                    f'<img alt="log-mel spectrograms of {e(it.id)}" src="{spectrogram_data_uri(clips)}">'
                )
        row += [f'<td class="media">{"".join(players)}</td><td>{spec_img}</td></tr>']
        parts.append("".join(row))
    parts += ["</tbody></table>", "</body></html>"]
    return "\n".join(p for p in parts if p)


__all__ = [
    "DEFAULT_MAX_MEDIA",
    "METRICS",
    "MetricSpec",
    "Report",
    "SummaryRow",
    "UtteranceResult",
    "audio_data_uri",
    "spectrogram_data_uri",
    "summarize",
]
