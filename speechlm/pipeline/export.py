"""The pipeline's outputs, assembled from the per-input results (``OUT/work/<key>/rows.json``).

- ``OUT/manifest.jsonl``: the project's manifest (ARCHITECTURE.md) plus ``start``/``end`` (seconds in the
  source), ``source``, ``description`` and ``words`` (``[word, start, end, prob]`` relative to the segment);
  one line per kept utterance, inputs in the order given, utterances in time order. Ids are unique: the
  input's content key plus the utterance's index.
- ``OUT/cuts.jsonl.gz``: a Lhotse CutSet, one MonoCut per utterance (its segment file) with one supervision
  whose ``custom`` holds tags, description, split, source, start and end.
- ``OUT/shards/shard-NNNNNN.tar``: WebDataset shards (``<id>.flac`` + ``<id>.json``), ``shard_utts`` each;
  ``OUT/shards/shard-NNNNNN.parquet``: the same rows with the audio bytes, for dataframe tools (pyarrow).
- ``OUT/report.json``: counts, rejections by reason, seconds per stage, throughput.
- ``OUT/index.html``: a page to listen to the kept utterances beside their texts and tags
  (:mod:`speechlm.pipeline.page`).

Every file is written atomically; re-running rewrites them from the per-input results, so they always match
the finished inputs (no duplicate, no missing line). Shards with our own naming that a smaller re-run no
longer needs are removed; nothing else in OUT is touched.
"""

from __future__ import annotations

import gzip
import io
import json
import logging
import re
import tarfile
from collections import Counter
from pathlib import Path
from typing import Any

from speechlm.errors import SpeechLMError
from speechlm.pipeline.config import PipelineConfig

log = logging.getLogger(__name__)

SHARD_RE = re.compile(r"^shard-\d{6}\.(tar|parquet)$")


def write_manifest(out: Path, rows: list[dict[str, Any]]) -> Path:
    from speechlm.utils.atomic import atomic_write_text

    ids = Counter(r["id"] for r in rows)
    dup = [i for i, n in ids.items() if n > 1]
    if dup:
        raise SpeechLMError(f"duplicate utterance ids {dup[:3]} (a bug: please report it)")
    path = out / "manifest.jsonl"
    atomic_write_text(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    return path


def write_cutset(out: Path, rows: list[dict[str, Any]]) -> Path | None:
    """``OUT/cuts.jsonl.gz`` (None, with a log line, when lhotse is not installed)."""
    try:
        from lhotse import CutSet, MonoCut, Recording, SupervisionSegment
    except ImportError:
        log.warning("lhotse is not installed: no cuts.jsonl.gz (pip install lhotse)")
        return None
    from speechlm.utils.atomic import atomic_path

    cuts = []
    for r in rows:
        rec = Recording.from_file((out / r["audio"]).resolve(), recording_id=r["id"])
        custom = {"tags": r["tags"], "description": r["description"], "split": r["split"], "source": r["source"],
                  "start": r["start"], "end": r["end"]}
        sup = SupervisionSegment(id=r["id"], recording_id=r["id"], start=0.0, duration=rec.duration, channel=0,
                                 text=r["text"], language=r["lang"], speaker=r["speaker"],
                                 gender=r["tags"].get("gender"), custom=custom)
        cuts.append(MonoCut(id=r["id"], start=0.0, duration=rec.duration, channel=0, recording=rec,
                            supervisions=[sup]))
    path = out / "cuts.jsonl.gz"
    with atomic_path(path, suffix=".jsonl.gz") as tmp:
        CutSet.from_cuts(cuts).to_file(tmp)
    return path


def _shard_rows(rows: list[dict[str, Any]], n: int) -> list[list[dict[str, Any]]]:
    return [rows[i:i + n] for i in range(0, len(rows), n)]


def write_shards(out: Path, rows: list[dict[str, Any]], cfg: PipelineConfig) -> dict[str, list[str]]:
    """WebDataset tars and (when pyarrow is installed) Parquet files under ``OUT/shards/``."""
    from speechlm.utils.atomic import atomic_path

    folder = out / "shards"
    folder.mkdir(exist_ok=True)
    written: dict[str, list[str]] = {"webdataset": [], "parquet": []}
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        pa = pq = None
        log.warning("pyarrow is not installed: no Parquet shards (pip install pyarrow)")
    for k, chunk in enumerate(_shard_rows(rows, cfg.shard_utts)):
        tar_path = folder / f"shard-{k:06d}.tar"
        with atomic_path(tar_path) as tmp, tarfile.open(tmp, "w") as tar:
            for r in chunk:
                data = (out / r["audio"]).read_bytes()
                meta = json.dumps({x: v for x, v in r.items() if x != "audio"}, ensure_ascii=False).encode()
                ext = Path(r["audio"]).suffix.lstrip(".")
                for name, payload in ((f"{r['id']}.{ext}", data), (f"{r['id']}.json", meta)):
                    info = tarfile.TarInfo(name)
                    info.size = len(payload)
                    info.mtime = 0  # same content -> same bytes
                    tar.addfile(info, io.BytesIO(payload))
        written["webdataset"].append(str(tar_path.relative_to(out)))
        if pa is not None:
            pq_path = folder / f"shard-{k:06d}.parquet"
            table = pa.table({
                "id": [r["id"] for r in chunk],
                "audio_bytes": [(out / r["audio"]).read_bytes() for r in chunk],
                "audio_format": [Path(r["audio"]).suffix.lstrip(".") for r in chunk],
                "text": [r["text"] for r in chunk],
                "lang": [r["lang"] for r in chunk],
                "speaker": [r["speaker"] for r in chunk],
                "duration": [float(r["duration"]) for r in chunk],
                "start": [float(r["start"]) for r in chunk],
                "end": [float(r["end"]) for r in chunk],
                "source": [r["source"] for r in chunk],
                "split": [r["split"] for r in chunk],
                "description": [r["description"] for r in chunk],
                "tags": [json.dumps(r["tags"], ensure_ascii=False) for r in chunk],
            })
            with atomic_path(pq_path) as tmp:
                pq.write_table(table, tmp)
            written["parquet"].append(str(pq_path.relative_to(out)))
    keep = {Path(p).name for v in written.values() for p in v}
    for f in folder.iterdir():
        if SHARD_RE.match(f.name) and f.name not in keep:
            f.unlink()  # a shard of ours from an earlier, larger run
    return written


def finish(out: Path, summaries: list[dict[str, Any]], cfg: PipelineConfig, *, wall_s: float, workers: int,
           backend: str, duplicates: list[str]) -> dict[str, Any]:
    """Write every output from the per-input ``summaries`` (in input order) and return the report."""
    from speechlm.pipeline.page import write_page
    from speechlm.pipeline.runner import STAGES
    from speechlm.utils.atomic import atomic_write_text

    rows = [r for s in summaries for r in s["rows"]]
    manifest = write_manifest(out, rows)
    cuts = write_cutset(out, rows)
    shards = write_shards(out, rows, cfg)
    rejects: Counter = Counter()
    rejected_inputs: Counter = Counter()
    seconds: Counter = Counter()
    failed: dict[str, str] = {}
    for s in summaries:
        rejects.update(s.get("rejects", {}))
        if s["status"] == "rejected":
            rejected_inputs[s["reason"]] += 1
        elif s["status"] == "failed":
            failed[s["source"]] = s["message"]
        seconds.update(s.get("seconds", {}))
    raw_s = sum(float(s.get("duration", 0.0)) for s in summaries)
    report = {
        "inputs": len(summaries) + len(duplicates),
        "processed": sum(s["status"] == "done" for s in summaries),
        "rejected_inputs": dict(rejected_inputs),
        "rejected_input_files": {s["source"]: s.get("message", "") for s in summaries if s["status"] == "rejected"},
        "failed_inputs": failed,
        "duplicate_inputs": duplicates,
        "resumed_inputs": sum(len(s.get("resumed", [])) == len(STAGES) for s in summaries),
        "utterances": len(rows),
        "rejected_utterances": dict(rejects),
        "raw_hours": raw_s / 3600,
        "kept_hours": sum(float(r["duration"]) for r in rows) / 3600,
        "seconds_per_stage": {k: round(seconds.get(k, 0.0), 3) for k in STAGES},
        "wall_s": round(wall_s, 3),
        # time inside the workers' per-input calls (stages, models loaded on first use, segment files): the wall
        # time less the fixed cost of a run (Ray's start and stop, the final outputs)
        "worker_s": round(sum(float(s.get("worker_s", 0.0)) for s in summaries), 3),
        "workers": workers,
        "backend": backend,
        "denoise_applied": sum(bool(s.get("denoise")) for s in summaries),
        "diarise_applied": sum(bool(s.get("diarise")) for s in summaries),
        "manifest": str(manifest.relative_to(out)),
        "cuts": str(cuts.relative_to(out)) if cuts else None,
        "shards": shards,
        "config": cfg.to_dict(),
        "page": "index.html",
    }
    write_page(out, rows, report)
    atomic_write_text(out / "report.json", json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    return report


def format_report(report: dict[str, Any]) -> str:
    """The printed per-stage report."""
    lines = [f"inputs {report['inputs']}: processed {report['processed']}, rejected "
             f"{sum(report['rejected_inputs'].values())}"
             + (f" ({', '.join(f'{k}: {v}' for k, v in sorted(report['rejected_inputs'].items()))})"
                if report["rejected_inputs"] else "")
             + (f", FAILED {len(report['failed_inputs'])} (re-run to retry)" if report["failed_inputs"] else "")
             + (f", duplicates {len(report['duplicate_inputs'])}" if report["duplicate_inputs"] else "")
             + (f", finished earlier {report['resumed_inputs']}" if report["resumed_inputs"] else ""),
             f"utterances kept {report['utterances']} ({report['kept_hours'] * 3600:.1f} s of "
             f"{report['raw_hours'] * 3600:.1f} s raw); rejected "
             f"{sum(report['rejected_utterances'].values())}"
             + (f" ({', '.join(f'{k}: {v}' for k, v in sorted(report['rejected_utterances'].items()))})"
                if report["rejected_utterances"] else ""),
             "stage          seconds   x real time"]
    raw = report["raw_hours"] * 3600
    for k, v in report["seconds_per_stage"].items():
        lines.append(f"  {k:12s} {v:8.2f}   {raw / v if v > 0 else float('inf'):10.1f}")
    total = sum(report["seconds_per_stage"].values())
    lines.append(f"  {'all':12s} {total:8.2f}   {raw / total if total > 0 else float('inf'):10.1f}"
                 f"   (wall {report['wall_s']:.1f} s, {report['workers']} worker(s), {report['backend']}; "
                 f"{report['worker_s']:.1f} s in the workers)")
    lines.append(f"wrote {report['manifest']}"
                 + (f", {report['cuts']}" if report["cuts"] else "")
                 + f", {len(report['shards']['webdataset'])} WebDataset + {len(report['shards']['parquet'])}"
                 " Parquet shard(s), report.json, index.html (listen to what was kept)")
    return "\n".join(lines)


def read_gz_lines(path: Path) -> list[str]:
    """Lines of a gzipped text file (tests read cuts.jsonl.gz with it)."""
    with gzip.open(path, "rt", encoding="utf-8") as f:
        return f.read().splitlines()
