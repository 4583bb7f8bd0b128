"""``OUT/index.html``: a page to look at and listen to what the data pipeline kept.

One self-contained HTML file beside the manifest (no script, no network): the run's counts (inputs, utterances
kept and rejected by reason, hours, speed per stage) and a table of the kept utterances with a player for each
segment file (``audio/<key>/<id>.flac``, referenced by its relative path, so the page stays small and plays
from the output folder), its source and time span, speaker, language, transcript, description and main tags.
The first :data:`MAX_ROWS` utterances are listed (the manifest has all of them). An ``index.html`` in OUT that the
pipeline did not write is never replaced: the run refuses to start (:func:`foreign_page`).
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

MAX_ROWS = 1000
MARK = '<meta name="generator" content="speechlm data pipeline">'  # an index.html without it is not ours
TAGS = (("gender", "gender", ""), ("pitch_bin", "pitch", ""), ("rate_bin", "rate", ""), ("snr_db", "SNR", " dB"),
        ("dnsmos_ovrl", "DNSMOS", ""))  # (tag, column, unit)


def _e(x: Any) -> str:
    return html.escape(str(x), quote=True)


def _tag(tags: dict[str, Any], key: str, unit: str) -> str:
    v = tags.get(key)
    if v is None:
        return "–"
    return f"{v:.1f}{unit}" if isinstance(v, float) else f"{v}{unit}"


def render(rows: list[dict[str, Any]], report: dict[str, Any]) -> str:
    """The page for manifest ``rows`` (audio paths relative to the page) and the run's ``report``."""
    raw_s, kept_s = report["raw_hours"] * 3600, report["kept_hours"] * 3600
    rejected = report["rejected_utterances"]
    stages = report["seconds_per_stage"]
    out = ["<!doctype html>", '<html lang="en"><head><meta charset="utf-8">', MARK,
           "<title>speechlm data pipeline: what was kept</title>",
           "<style>body{font-family:sans-serif;margin:1.5em;max-width:110em}table{border-collapse:collapse}"
           "td,th{border:1px solid #ccc;padding:.25em .5em;vertical-align:top;text-align:left}"
           "td.n{text-align:right;white-space:nowrap}audio{width:16em}.d{color:#555;font-size:90%}</style>",
           "</head><body>", "<h1>What the data pipeline kept</h1>",
           f"<p>{report['processed']} of {report['inputs']} inputs processed, {raw_s / 60:.1f} min of raw audio; "
           f"<b>{report['utterances']} utterances kept</b> ({kept_s / 60:.1f} min), "
           f"{sum(rejected.values())} rejected"
           + (" (" + ", ".join(f"{_e(k)}: {v}" for k, v in sorted(rejected.items())) + ")" if rejected else "")
           + ".</p>"]
    bad = {**report.get("rejected_input_files", {}), **report.get("failed_inputs", {})}
    if bad:
        out.append("<p>Inputs not processed:</p><ul>"
                   + "".join(f"<li>{_e(Path(k).name)}: {_e(v)}</li>" for k, v in bad.items()) + "</ul>")
    if raw_s > 0:
        out.append("<table><tr><th>stage</th><th>seconds</th><th>x real time</th></tr>"
                   + "".join(f'<tr><td>{_e(k)}</td><td class="n">{v:.1f}</td><td class="n">'
                             f"{(f'{raw_s / v:.0f}' if v > 0 else '–')}</td></tr>" for k, v in stages.items())
                   + "</table>")
    shown = rows[:MAX_ROWS]
    if len(rows) > len(shown):
        out.append(f"<p>The first {len(shown)} of {len(rows)} utterances (all of them are in manifest.jsonl).</p>")
    out.append("<h2>Utterances</h2><table><tr><th>listen</th><th>source</th><th>speaker</th><th>lang</th>"
               "<th>transcript and description</th>" + "".join(f"<th>{_e(h)}</th>" for _, h, _ in TAGS) + "</tr>")
    for r in shown:
        tags = r.get("tags") or {}
        out.append(
            f'<tr id="{_e(r["id"])}"><td><audio controls preload="none" src="{_e(r["audio"])}"></audio></td>'
            f'<td>{_e(Path(r["source"]).name)}<br><span class="d">{r["start"]:.1f}-{r["end"]:.1f} s</span></td>'
            f'<td>{_e(r["speaker"])}</td><td>{_e(r["lang"])}</td>'
            f'<td>{_e(r["text"])}<br><span class="d">{_e(r.get("description", ""))}</span></td>'
            + "".join(f'<td{" class=n" if isinstance(tags.get(k), float) else ""}>{_e(_tag(tags, k, u))}</td>'
                      for k, _, u in TAGS) + "</tr>")
    out += ["</table>", "</body></html>"]
    return "\n".join(out) + "\n"


def foreign_page(out: Path) -> bool:
    """Whether ``out/index.html`` exists and was not written by the pipeline (then it must not be replaced)."""
    path = Path(out) / "index.html"
    if not path.exists():
        return False
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return MARK not in f.read(4096)
    except OSError:
        return True


def write_page(out: Path, rows: list[dict[str, Any]], report: dict[str, Any]) -> Path:
    """Write ``out/index.html`` atomically and return its path."""
    from speechlm.utils.atomic import atomic_write_text

    path = Path(out) / "index.html"
    atomic_write_text(path, render(rows, report))
    return path
