"""The data pipeline end to end on the constructed in-the-wild set (issue 23): quality, speed, memory.

    .venv/bin/python benchmarks/pipeline_bench.py --files 8 --out runs/bench/pipeline --json

1. The constructed set (``speechlm.pipeline.construct``: conversations of synthetic voices and fillets-ng actors
   over music/noise, telephone band and clipping, with ground truth) is reused from ``--constructed`` (the model
   benchmark's folder) or built there; the first ``--files`` files are used.
2. ``speechlm data pipeline`` runs on them with the default settings on Ray with 1 worker and again (fresh OUT)
   with 2 workers, with the default settings but the enhancer trained here (``denoiser: speechlm``) on 1 worker,
   then with the fast settings (Whisper tiny.en, no denoiser) and the fast settings with the enhancer, on 1
   worker each. Throughput
   is hours of raw audio per wall-clock hour per worker (= per core), and per stage (stage seconds as the report
   sums them); "in the workers" divides by the time inside the workers' per-input calls instead of the wall time
   (``worker_s`` of the report: without a run's fixed cost, Ray's start and stop and the final outputs, about 6 s
   here, which a long run spreads over hours of audio).
3. Segmentation against the ground truth, on every utterance the segmenter made (before the quality gates):
   boundary precision/recall/F1 (each utterance start/end against the reference segments' starts/ends, within
   ``--tol`` s, one-to-one); purity (share of an utterance's reference speech time from its main speaker); the
   share of the reference speech that ends up in some utterance. Reference segments are sentences (1-6 s); our
   utterances join one speaker's sentences across pauses up to 1.5 s and must be 3-30 s, so recall of sentence
   boundaries is capped by design.
4. WER of the kept utterances' transcripts: the reference of an utterance is the text of the reference segments
   it contains (at least half of each), in order; normalised by ``speechlm.text.normalize_for_wer``; by language.
5. Peak RSS of one worker on a 1-hour input (the first files looped by ffmpeg into an MP3) and on a 4-minute one,
   with stages 1, 3, 4 (standardise, VAD, diarise, segment) in one process (``--backend inline`` in a child):
   the stages whose memory could grow with the input; the per-utterance stages see one utterance at a time.

Prints a table; writes ``docs/results/pipeline_bench__default.json`` (``--json``), rendered into docs/pipeline.md
by benchmarks/render_tables.py, with the model benchmark's JSON (SI-SDR, DER, tags) beside it when present.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULT = ROOT / "docs" / "results" / "pipeline_bench__default.json"
MODELS_RESULT = ROOT / "docs" / "results" / "pipeline_models__default.json"
FAST = {"asr": "whisper-tiny.en", "denoise": False}
OTHER_DENOISER = {"denoiser": "speechlm"}  # the default's alternative, run beside it (PipelineConfig.denoiser)
FAST_DENOISED = {"asr": "whisper-tiny.en", "denoiser": "speechlm"}
MEMORY = {"denoise": False, "asr": "none", "dnsmos": False, "tag": False}


def _run(inputs: list[Path], out: Path, workers: int, cfg: dict[str, Any] | None, backend: str = "ray",
         reuse: bool = False) -> dict:
    if reuse and (out / "report.json").is_file():
        report = json.loads((out / "report.json").read_text())
        if report["resumed_inputs"] == 0 and report["processed"] == len(inputs) and report["workers"] == workers:
            print(f"reusing {out}")
            return report  # a complete fresh run of an earlier invocation
    if out.exists():
        shutil.rmtree(out)  # a fresh run: nothing resumed
    out.parent.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "speechlm.cli", "data", "pipeline", *map(str, inputs), "-o", str(out),
           "--workers", str(workers), "--backend", backend, "--quiet"]
    if cfg:
        p = out.parent / f"{out.name}.config.json"
        p.write_text(json.dumps(cfg))
        cmd += ["--config", str(p)]
    t = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    wall = time.perf_counter() - t
    if proc.returncode != 0:
        raise SystemExit(f"pipeline failed: {proc.stderr[-2000:]}")
    print(proc.stdout)
    report = json.loads((out / "report.json").read_text())
    report["bench_wall_s"] = wall
    return report


def _boundaries_f1(pred: list[float], ref: list[float], tol: float) -> tuple[float, float, float]:
    """One-to-one matching of sorted boundary times within ``tol`` (greedy by distance)."""
    pairs = sorted((abs(p - r), i, j) for i, p in enumerate(pred) for j, r in enumerate(ref) if abs(p - r) <= tol)
    used_p, used_r, hit = set(), set(), 0
    for _, i, j in pairs:
        if i not in used_p and j not in used_r:
            used_p.add(i)
            used_r.add(j)
            hit += 1
    prec = hit / len(pred) if pred else 0.0
    rec = hit / len(ref) if ref else 0.0
    return prec, rec, (2 * prec * rec / (prec + rec) if prec + rec else 0.0)


def _overlap(a0: float, a1: float, b0: float, b1: float) -> float:
    return max(0.0, min(a1, b1) - max(a0, b0))


def segmentation_and_wer(out: Path, truth: dict[str, Any], tol: float) -> dict[str, Any]:
    import jiwer

    from speechlm.pipeline.runner import input_key
    from speechlm.text.normalize import normalize_for_wer

    root = Path(truth["_root"])
    rows = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
    tp = fp = fn = 0.0
    purity_num = purity_den = covered = ref_speech = 0.0
    refs: dict[str, list[str]] = {}
    hyps: dict[str, list[str]] = {}
    n_utts = 0
    for f in truth["files"]:
        key = input_key(root / f["audio"])
        seg = json.loads((out / "work" / key / "segment.json").read_text())["utterances"]
        n_utts += len(seg)
        ref = f["segments"]
        p, r, _ = _boundaries_f1([t for s, e, _ in seg for t in (s, e)],
                                 [t for g in ref for t in (g["start"], g["end"])], tol)
        npred, nref = 2 * len(seg), 2 * len(ref)
        tp += p * npred
        fp += (1 - p) * npred
        fn += (1 - r) * nref
        for s, e, _ in seg:
            by_spk: dict[str, float] = {}
            for g in ref:
                by_spk[g["speaker"]] = by_spk.get(g["speaker"], 0.0) + _overlap(s, e, g["start"], g["end"])
            tot = sum(by_spk.values())
            if tot > 0:
                purity_num += max(by_spk.values())
                purity_den += tot
        for g in ref:
            ref_speech += g["end"] - g["start"]
            covered += sum(_overlap(s, e, g["start"], g["end"]) for s, e, _ in seg)
        for row in (r for r in rows if r["source"] == str(root / f["audio"])):
            inside = [g for g in ref if _overlap(row["start"], row["end"], g["start"], g["end"])
                      >= 0.5 * (g["end"] - g["start"])]
            if not inside:
                continue
            lang = inside[0]["lang"]
            try:
                rt = normalize_for_wer(" ".join(g["text"] for g in inside), lang)
                ht = normalize_for_wer(row["text"], lang)
            except Exception:  # noqa: BLE001 - a language the normaliser lacks: plain lower case
                rt, ht = " ".join(g["text"] for g in inside).lower(), row["text"].lower()
            refs.setdefault(lang, []).append(rt)
            hyps.setdefault(lang, []).append(ht)
    prec = tp / (tp + fp) if tp + fp else 0.0
    rec = tp / (tp + fn) if tp + fn else 0.0
    wer = {lang: {"wer": jiwer.wer(refs[lang], hyps[lang]), "utterances": len(refs[lang])} for lang in refs}
    all_r = [x for v in refs.values() for x in v]
    all_h = [x for v in hyps.values() for x in v]
    return {
        "utterances_segmented": n_utts, "utterances_kept": len(rows),
        "boundary_precision": prec, "boundary_recall": rec,
        "boundary_f1": 2 * prec * rec / (prec + rec) if prec + rec else 0.0,
        "purity": purity_num / purity_den if purity_den else 0.0,
        "reference_speech_covered": min(1.0, covered / ref_speech) if ref_speech else 0.0,
        "wer": jiwer.wer(all_r, all_h) if all_r else None, "wer_by_lang": wer,
    }


def peak_rss(inp: Path, out: Path) -> dict[str, Any]:
    """Peak RSS (MB) of a child process running the memory-relevant stages inline on ``inp``."""
    if out.exists():
        shutil.rmtree(out)
    code = (
        "import json,resource,sys,time\n"
        "from speechlm.pipeline.config import PipelineConfig\n"
        "from speechlm.pipeline.runner import run_pipeline\n"
        f"cfg = PipelineConfig.from_dict({MEMORY!r})\n"
        "t = time.perf_counter()\n"
        "r = run_pipeline([sys.argv[1]], sys.argv[2], cfg, backend='inline', progress=False)\n"
        "print(json.dumps({'wall_s': time.perf_counter() - t, 'seconds': r['seconds_per_stage'], "
        "'raw_s': r['raw_hours'] * 3600, 'utterances': r['utterances'],"
        "'maxrss_mb': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code, str(inp), str(out)], capture_output=True, text=True,
                          cwd=ROOT, env={**os.environ, "OMP_NUM_THREADS": "1"})
    if proc.returncode != 0:
        raise SystemExit(f"memory run failed: {proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def make_long(files: list[Path], target_s: float, path: Path) -> Path:
    """Concatenate ``files`` and loop them with ffmpeg into one MP3 of ``target_s`` seconds."""
    if path.exists():
        return path
    lst = path.with_suffix(".txt")
    lst.write_text("".join(f"file '{f.resolve()}'\n" for f in files))
    cat = path.with_suffix(".cat.wav")
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "concat", "-safe", "0", "-i", str(lst), "-c", "copy",
                    str(cat)], check=True)
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-stream_loop", "-1", "-i", str(cat), "-t", str(target_s),
                    "-ac", "1", "-b:a", "48k", str(path)], check=True)
    cat.unlink()
    lst.unlink()
    return path


def stage_rates(report: dict[str, Any]) -> dict[str, float]:
    raw = report["raw_hours"] * 3600
    return {k: (raw / v if v > 0 else None) for k, v in report["seconds_per_stage"].items()}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--constructed", default="runs/bench/pipeline_models/constructed")
    p.add_argument("--files", type=int, default=8)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="runs/bench/pipeline")
    p.add_argument("--tol", type=float, default=0.5, help="boundary tolerance in seconds")
    p.add_argument("--long-s", type=float, default=3600.0, help="length of the long input for peak RSS")
    p.add_argument("--skip", default="", help="comma-separated parts to skip: w2,enhancer,fast,fast_denoised,memory")
    p.add_argument("--reuse", action="store_true", help="reuse complete fresh runs of an earlier invocation")
    p.add_argument("--json", action="store_true", help=f"write {RESULT.relative_to(ROOT)}")
    p.add_argument("--clean", action="store_true",
                   help="run on each constructed file's clean speech stem (stems/ID.speech.wav) instead of the mixture")
    p.add_argument("--set", default=None, metavar="JSON",
                   help='settings for the default runs, e.g. \'{"denoise_skip_snr_db": 15}\' (not with --json)')
    args = p.parse_args()
    skip = set(filter(None, args.skip.split(",")))
    if (args.set is not None or args.clean) and args.json:
        raise SystemExit("--set and --clean change the benchmark: they do not write the results file (--json)")
    try:
        over = json.loads(args.set) if args.set is not None else None
    except json.JSONDecodeError as exc:
        raise SystemExit(f"--set: not JSON ({exc})") from None
    if over is not None and not isinstance(over, dict):
        raise SystemExit("--set: expected a JSON object of settings")
    out = ROOT / args.out
    cons = ROOT / args.constructed
    if not (cons / "truth.json").is_file():
        from speechlm.pipeline.construct import build_constructed

        build_constructed(cons, max(args.files, 1), args.seed)
    truth = json.loads((cons / "truth.json").read_text())
    truth["files"] = truth["files"][: args.files]
    truth["_root"] = str(cons)
    if args.clean:  # the same conversations without background, telephone band or clipping: the same truth
        for f in truth["files"]:
            f["audio"] = f"stems/{Path(f['audio']).stem}.speech.wav"
    inputs = [cons / f["audio"] for f in truth["files"]]
    raw_s = sum(f["duration"] for f in truth["files"])
    print(f"{len(inputs)} constructed files, {raw_s:.1f} s ({raw_s / 60:.1f} min); load average "
          f"{os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    plan = [("default_w1", "w1", 1, over, "default"), ("default_w2", "w2", 2, over, "default"),
            ("enhancer_w1", "enhancer", 1, {**(over or {}), **OTHER_DENOISER}, "default + denoise_default"),
            ("fast_w1", "fast", 1, FAST, "fast"),
            ("fast_denoised_w1", "fast_denoised", 1, FAST_DENOISED, "fast + denoise_default")]
    runs: dict[str, Any] = {}
    for name, folder, workers, cfg, _ in plan:
        if name == "default_w1" or folder not in skip:
            runs[name] = _run(inputs, out / folder, workers, cfg, reuse=args.reuse)
    result: dict[str, Any] = {
        "kind": "pipeline_bench", "files": len(inputs), "raw_s": raw_s, "seed": truth.get("seed"),
        "command": f"python benchmarks/pipeline_bench.py --files {args.files} --json",
        "load_average": os.getloadavg()[0], "cores": os.cpu_count(), "runs": {},
    }
    for name, rep in runs.items():
        workers = rep["workers"]
        entry = next(e for e in plan if e[0] == name)
        q = segmentation_and_wer(out / entry[1], truth, args.tol)
        slowest = max(rep["seconds_per_stage"], key=rep["seconds_per_stage"].get)
        result["runs"][name] = {
            "workers": workers, "config": entry[4],
            "wall_s": rep["wall_s"], "x_realtime_per_core": raw_s / (rep["wall_s"] * workers),
            "x_realtime_total": raw_s / rep["wall_s"], "worker_s": rep.get("worker_s"),
            "x_realtime_per_core_in_workers": raw_s / rep["worker_s"] if rep.get("worker_s") else None,
            "seconds_per_stage": rep["seconds_per_stage"],
            "x_realtime_per_stage": stage_rates(rep), "dominant_stage": slowest,
            "rejected_utterances": rep["rejected_utterances"], "kept_s": rep["kept_hours"] * 3600, **q,
        }
    if "memory" not in skip:
        points = []
        for secs in (240.0, 1200.0, args.long_s):  # under one 600-s window, two windows, six windows
            inp = make_long(inputs, secs, out / f"long_{int(secs)}s.mp3")
            points.append({**peak_rss(inp, out / f"mem_{int(secs)}"), "input_s": secs})
        result["memory"] = {"points": points,
                            "stages": "standardise, VAD, diarise, segment (denoise, ASR, DNSMOS, tags off)"}
    if MODELS_RESULT.is_file():
        result["models_result"] = MODELS_RESULT.name
    print(render(result))
    if args.json:
        RESULT.write_text(json.dumps(result, indent=1) + "\n")
        print(f"wrote {RESULT.relative_to(ROOT)}")
    return 0


def render(r: dict[str, Any]) -> str:
    """The markdown table (also used by benchmarks/render_tables.py)."""
    lines = [f"{r['files']} constructed files, {r['raw_s'] / 60:.1f} min of raw audio; {r['cores']} cores, load "
             f"average {r['load_average']:.1f} at the end (the machine is shared: speed numbers are pessimistic)", "",
             "| run | workers | wall s | x real time per core | ... in the workers | dominant stage | utterances kept "
             "/ made | boundary P / R / F1 | purity | speech covered | WER (all) |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for name, x in r["runs"].items():
        steady = x.get("x_realtime_per_core_in_workers")
        lines.append(
            f"| {name} | {x['workers']} | {x['wall_s']:.0f} | {x['x_realtime_per_core']:.2f} | "
            f"{'–' if steady is None else f'{steady:.2f}'} | {x['dominant_stage']} "
            f"({x['x_realtime_per_stage'][x['dominant_stage']]:.1f}x) | {x['utterances_kept']} / "
            f"{x['utterances_segmented']} | {x['boundary_precision']:.2f} / {x['boundary_recall']:.2f} / "
            f"{x['boundary_f1']:.2f} | {x['purity']:.3f} | {x['reference_speech_covered']:.2f} | "
            f"{x['wer']:.3f} |")
    lines += ["", "Per stage, x real time (raw audio seconds / stage seconds, one core):", "",
              "| run | " + " | ".join(next(iter(r["runs"].values()))["x_realtime_per_stage"]) + " |",
              "|---|" + "---|" * len(next(iter(r["runs"].values()))["x_realtime_per_stage"])]
    for name, x in r["runs"].items():
        lines.append(f"| {name} | " + " | ".join("–" if v is None else f"{v:.1f}"
                                                 for v in x["x_realtime_per_stage"].values()) + " |")
    langs = sorted({k for x in r["runs"].values() for k in x["wer_by_lang"]})
    lines += ["", "WER by language (kept utterances: WER (count)):", "", "| run | " + " | ".join(langs) + " |",
              "|---|" + "---|" * len(langs)]
    for name, x in r["runs"].items():
        w = x["wer_by_lang"]
        lines.append(f"| {name} | " + " | ".join(f"{w[k]['wer']:.3f} ({w[k]['utterances']})" if k in w else "–"
                                                 for k in langs) + " |")
    if "memory" in r:
        m = r["memory"]
        lines += ["", f"Peak RSS of one worker ({m['stages']}): " + ", ".join(
            f"{p['input_s'] / 60:.0f} min input {p['maxrss_mb']:.0f} MB ({p['wall_s']:.0f} s)" for p in m["points"])
            + "."]
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
