"""Orchestration: every input file through the stage chain, resumable, on Ray or in-process.

The work unit is one input file x the whole stage chain (:func:`process_input`). Each stage's result is written
atomically to ``OUT/work/<key>/<stage>.json`` (``key`` = the first 16 hex digits of the input's SHA-256, so the
same content under two names is one input) together with the digest of the settings it depends on
(:meth:`PipelineConfig.digest`). A re-run loads every finished stage whose digest still matches and computes only
the rest: killing the run, or one worker, and starting it again redoes at most the stages that were in flight.
An input is finished when ``rows.json`` (its manifest lines) exists; its segment audio is written before that.

:func:`run_pipeline` dispatches unfinished inputs to Ray tasks (``ray.init(num_cpus=workers)`` locally, or
``ray.init(address=...)`` to join a cluster whose nodes see the same paths), to a pool of ``workers`` local
processes without Ray (``backend="local"``) or runs them one by one in this process (``"inline"``, for tests);
all three call the same :func:`process_input`, with one OpenMP thread per worker; then
:mod:`speechlm.pipeline.export` assembles ``OUT/manifest.jsonl`` and the other outputs from the per-input
results, in input order.

Per input, audio flows: source -> ``std.wav`` (stage 1) -> ``den.wav`` (stage 2, when it runs) -> VAD
probabilities and regions (``vad.npy``/``vad.json``) -> diarisation turns -> utterance spans -> audio quality
gates (DNSMOS, SNR, clipping, duration) -> transcripts of the utterances that pass them, then the text gates
(confidence, characters per second) -> tags and descriptions -> segment files under ``OUT/audio/``. A changed
threshold reruns the gates, not ASR: the transcribe stage reuses the transcripts of an earlier run whose
recogniser settings and utterances were the same (:func:`_earlier_transcripts`). Denoising and diarisation see at
most ``window_s`` of audio at once (windows end in a pause), so memory is bounded for hours-long inputs.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import time
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from speechlm.errors import CheckpointError, MissingDependencyError, SpeechLMError
from speechlm.pipeline.config import PIPELINE_SR, PipelineConfig

log = logging.getLogger(__name__)

STAGES = ("standardise", "denoise", "vad", "diarise", "segment", "filter", "transcribe", "tag")
ROWS = "rows.json"
BLOCK_S = 30.0
ONE_THREAD = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}


def input_key(path: str | os.PathLike) -> str:
    """First 16 hex digits of the file's SHA-256 (read in 4 MiB blocks)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 22):
            h.update(block)
    return h.hexdigest()[:16]


def _write_json(path: Path, data: Any) -> None:
    from speechlm.utils.atomic import atomic_write_text

    atomic_write_text(path, json.dumps(data, ensure_ascii=False, indent=None, allow_nan=True))


class WorkDir:
    """``OUT/work/<key>/``: one JSON per finished stage, each stamped with the digest of its settings."""

    def __init__(self, out: str | os.PathLike, key: str) -> None:
        self.root = Path(out) / "work" / key
        self.key = key

    def load(self, stage: str, cfg: PipelineConfig) -> dict[str, Any] | None:
        p = self.root / f"{stage}.json"
        if not p.is_file():
            return None
        try:
            d = json.loads(p.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            return None
        return d if d.get("digest") == cfg.digest(stage) else None

    def save(self, stage: str, cfg: PipelineConfig, data: dict[str, Any]) -> dict[str, Any]:
        data = {**data, "digest": cfg.digest(stage)}
        _write_json(self.root / f"{stage}.json", data)
        return data


def _optional(module: str, name: str) -> Callable[..., Any] | None:
    """A stage function whose third-party package may be missing or whose model cannot run; None (and a log
    line) then. A broken speechlm module is an error, not a stage turned off."""
    import importlib

    try:
        return getattr(importlib.import_module(f"speechlm.pipeline.{module}"), name)
    except ImportError as exc:
        if (exc.name or "speechlm").split(".")[0] == "speechlm":
            raise
        log.warning("stage %s.%s unavailable: %s", module, name, exc)
        return None
    except SpeechLMError as exc:
        log.warning("stage %s.%s unavailable: %s", module, name, exc)
        return None


def _windows(regions: Sequence[Sequence[float]], duration: float, window_s: float) -> list[tuple[float, float]]:
    """Cut ``[0, duration]`` into windows of at most ``window_s`` (when possible), each ending in a pause."""
    out: list[tuple[float, float]] = []
    start = 0.0
    while duration - start > window_s:
        limit = start + window_s
        gaps = [(regions[i][1] + regions[i + 1][0]) / 2 for i in range(len(regions) - 1)
                if start + window_s / 2 < (regions[i][1] + regions[i + 1][0]) / 2 <= limit]
        cut = gaps[-1] if gaps else limit
        out.append((start, cut))
        start = cut
    out.append((start, duration))
    return out


def _file_blocks(path: Path, start_s: float = 0.0, end_s: float | None = None):
    import soundfile as sf

    with sf.SoundFile(str(path)) as f:
        a = int(round(start_s * f.samplerate))
        b = f.frames if end_s is None else min(f.frames, int(round(end_s * f.samplerate)))
        f.seek(a)
        step = int(BLOCK_S * f.samplerate)
        while a < b:
            n = min(step, b - a)
            yield f.read(n, dtype="float32")
            a += n


def _stage_standardise(wd: WorkDir, src: str, cfg: PipelineConfig) -> dict[str, Any]:
    from speechlm.pipeline.standardise import InputRejected, standardise

    try:
        r = standardise(src, wd.root / "std.wav", target_lufs=cfg.target_lufs, max_gain_db=cfg.max_gain_db,
                        min_input_s=cfg.min_input_s)
    except InputRejected as exc:
        log.warning("rejected %s: %s", src, exc)
        return {"rejected": exc.reason, "message": str(exc)}
    return {"duration": r.duration_s, "input_lufs": round(r.input_lufs, 2), "gain_db": round(r.gain_db, 2),
            "peak_limited": r.peak_limited}


def _stage_denoise(wd: WorkDir, cfg: PipelineConfig, duration: float) -> dict[str, Any]:
    if not cfg.denoise:
        return {"applied": False, "reason": "off in the config"}
    pick = _optional("denoise", "denoiser")
    if pick is None:
        return {"applied": False, "reason": "speechlm.pipeline.denoise unavailable"}
    fn = pick(cfg.denoiser)
    import soundfile as sf

    from speechlm.pipeline.denoise import speech_snr_db
    from speechlm.utils.atomic import atomic_path

    skip_db = cfg.denoise_skip_snr_db
    windows, skipped_s, snrs = 0, 0.0, []
    with atomic_path(wd.root / "den.wav") as tmp, sf.SoundFile(str(tmp), "w", PIPELINE_SR, 1, subtype="PCM_16",
                                                                format="WAV") as out:
        start = 0.0
        while start < duration:
            end = min(duration, start + cfg.window_s)
            x = np.concatenate(list(_file_blocks(wd.root / "std.wav", start, end)) or [np.zeros(0, np.float32)])
            snr = speech_snr_db(x, PIPELINE_SR) if skip_db is not None else float("nan")
            snrs.append(None if math.isnan(snr) else round(snr, 1))
            windows += 1
            if skip_db is not None and snr >= skip_db:  # quiet (NaN: unknown, denoise): it would only cost speech
                y = x
                skipped_s += end - start
            else:
                y = np.asarray(fn(x, PIPELINE_SR), np.float32)
                if y.shape != x.shape:
                    raise SpeechLMError(f"denoise returned {y.shape} samples for {x.shape}")
            out.write(np.clip(y, -1.0, 1.0))
            start = end
    return {"applied": True, "denoiser": cfg.denoiser, "windows": windows, "skipped_s": round(skipped_s, 3),
            "snr_db": snrs}


def _stage_vad(wd: WorkDir, cfg: PipelineConfig, audio: Path) -> dict[str, Any]:
    from speechlm.pipeline.segment import speech_probs, speech_regions
    from speechlm.utils.atomic import atomic_path

    probs = speech_probs(_file_blocks(audio))
    with atomic_path(wd.root / "vad.npy") as tmp:
        np.save(tmp, np.round(probs * 255).astype(np.uint8))
    regions = speech_regions(probs, cfg.vad_threshold, cfg.min_speech_s, cfg.min_pause_s)
    return {"regions": regions, "speech_s": round(sum(e - s for s, e in regions), 3)}


def _stage_diarise(wd: WorkDir, cfg: PipelineConfig, audio: Path, regions: list, duration: float) -> dict[str, Any]:
    if not cfg.diarise:
        return {"applied": False, "reason": "off in the config", "turns": None}
    fn = _optional("diarise", "diarise")
    if fn is None:
        return {"applied": False, "reason": "speechlm.pipeline.diarise unavailable", "turns": None}
    wins = _windows(regions, duration, cfg.window_s)
    turns: list[list[Any]] = []
    for k, (a, b) in enumerate(wins):
        speech = [(max(s, a) - a, min(e, b) - a) for s, e in regions if e > a and s < b]
        if not speech:
            continue
        x = np.concatenate(list(_file_blocks(audio, a, b)))
        for s, e, spk in fn(x, PIPELINE_SR, speech):
            label = f"w{k}-{spk}" if len(wins) > 1 else str(spk)  # labels are local to a window
            turns.append([round(float(s) + a, 3), round(float(e) + a, 3), label])
    return {"applied": True, "turns": turns, "windows": len(wins)}


def _read(path: Path, start: float, end: float) -> np.ndarray:
    from speechlm.pipeline.standardise import read_span

    return read_span(path, start, end)


def process_input(src: str, out: str, cfg_dict: dict[str, Any], key: str | None = None) -> dict[str, Any]:
    """Run (or resume) the stage chain for one input; return its summary (also stored as ``rows.json``).

    Returns a dict: ``key``, ``source``, ``status`` (``done`` | ``rejected``), ``reason`` (rejected inputs),
    ``duration``, ``rows`` (manifest lines), ``rejects`` (utterances dropped, by reason), ``seconds`` (per stage,
    when it was computed), ``resumed`` (stages loaded from an earlier run), ``worker_s`` (this call's time).
    """
    t_start = time.perf_counter()
    import torch

    torch.set_num_threads(1)
    cfg = PipelineConfig.from_dict(cfg_dict)
    key = key or input_key(src)
    wd = WorkDir(out, key)
    done = wd.root / ROWS
    if done.is_file():
        d = json.loads(done.read_text(encoding="utf-8"))
        if d.get("digest") == cfg.digest("tag"):
            return {**d, "resumed": list(STAGES), "worker_s": 0.0}
    wd.root.mkdir(parents=True, exist_ok=True)
    _remove_temporaries(wd.root, Path(out) / "audio" / key)
    seconds: dict[str, float] = {}
    resumed: list[str] = []
    results: dict[str, dict[str, Any]] = {}

    def stage(name: str, fn: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        got = wd.load(name, cfg)
        if got is not None:
            resumed.append(name)
            seconds[name] = float(got.get("seconds", 0.0))
            results[name] = got
            return got
        t = time.perf_counter()
        data = fn()
        data["seconds"] = round(time.perf_counter() - t, 4)
        seconds[name] = data["seconds"]
        results[name] = wd.save(name, cfg, data)
        return results[name]

    base = {"key": key, "source": str(src), "seconds": seconds, "resumed": resumed}
    std = stage("standardise", lambda: _stage_standardise(wd, str(src), cfg))
    if "rejected" in std:
        summary = {**base, "status": "rejected", "reason": std["rejected"], "message": std["message"],
                   "duration": 0.0, "rows": [], "rejects": {}}
        _write_json(done, {**summary, "digest": cfg.digest("tag")})
        return {**summary, "worker_s": round(time.perf_counter() - t_start, 3)}
    duration = float(std["duration"])
    den = stage("denoise", lambda: _stage_denoise(wd, cfg, duration))
    audio = wd.root / ("den.wav" if den.get("applied") else "std.wav")
    vad = stage("vad", lambda: _stage_vad(wd, cfg, audio))
    regions = [tuple(r) for r in vad["regions"]]
    dia = stage("diarise", lambda: _stage_diarise(wd, cfg, audio, regions, duration))

    def do_segment() -> dict[str, Any]:
        from speechlm.pipeline.segment import make_utterances

        probs = np.load(wd.root / "vad.npy").astype(np.float32) / 255.0
        turns = [tuple(t) for t in dia["turns"]] if dia.get("turns") is not None else None
        utts, rej = make_utterances(regions, turns, probs, duration=duration, min_utt_s=cfg.min_utt_s,
                                    max_utt_s=cfg.max_utt_s, pad_s=cfg.pad_s, min_speech_s=cfg.min_speech_s)
        return {"utterances": [[u.start, u.end, u.speaker] for u in utts], "rejects": dict(rej)}

    seg = stage("segment", do_segment)
    spans = [tuple(u) for u in seg["utterances"]]

    def do_filter() -> dict[str, Any]:  # the audio gates (duration too): before ASR
        from speechlm.pipeline.filter import assess

        items = []
        for s, e, _ in spans:
            std_audio = _read(wd.root / "std.wav", s, e) if audio.name != "std.wav" else None
            q, why = assess(_read(audio, s, e), std_audio, e - s, cfg)
            items.append({"quality": q, "reasons": why})
        return {"items": items}

    flt = stage("filter", do_filter)["items"]

    def do_transcribe() -> dict[str, Any]:  # the utterances the audio gates kept, then the text gates
        from speechlm.pipeline.filter import gate

        asr_key = _asr_key(cfg)
        earlier = _earlier_transcripts(wd, asr_key, len(spans))
        reasons: list[list[str]] = []
        trs: list[dict[str, Any] | None] = [None] * len(spans)
        todo: list[int] = []  # utterances the audio gates kept and no earlier run transcribed
        for i, f in enumerate(flt):
            if cfg.asr != "none" and not f["reasons"]:
                trs[i] = earlier[i]
                if trs[i] is None:
                    todo.append(i)
        if todo:
            from speechlm.pipeline.transcribe import pack_windows, transcribe_many

            lang = None if cfg.lang == "auto" else cfg.lang
            windows = pack_windows([spans[i][1] - spans[i][0] for i in todo], [spans[i][2] for i in todo],
                                   cfg.asr_pack_s)
            for window in windows:  # one Whisper window each; the audio of one window read at a time
                idx = [todo[j] for j in window]
                done = transcribe_many([_read(audio, spans[i][0], spans[i][1]) for i in idx], PIPELINE_SR, lang,
                                       asr=cfg.asr, beam_size=cfg.asr_beam)
                for i, tr in zip(idx, done, strict=True):
                    trs[i] = tr.to_dict()
        for (s, e, _), f, tr in zip(spans, flt, trs, strict=True):
            reasons.append(gate(f["quality"], tr, e - s, cfg) if tr is not None else list(f["reasons"]))
        return {"transcripts": trs, "reasons": reasons, "asr_key": asr_key}

    tsc = stage("transcribe", do_transcribe)
    trs, reasons = tsc["transcripts"], tsc["reasons"]

    def do_tag() -> dict[str, Any]:
        tag_fn = _optional("tags", "tag") if cfg.tag else None
        describe_fn = _optional("describe", "describe") if cfg.tag else None
        out_items: list[dict[str, Any] | None] = []
        off = None
        for i, ((s, e, _), tr, why) in enumerate(zip(spans, trs, reasons, strict=True)):
            if why:
                out_items.append(None)
                continue
            tags: dict[str, Any] = {}
            desc = ""
            if tag_fn is not None:
                words = tr.get("words") if tr else None
                try:  # the segment's own language: its phones give the speaking rate
                    tags = dict(tag_fn(_read(audio, s, e), PIPELINE_SR, tr.get("text") if tr else None, words,
                                       lang=_row_lang(tr, cfg)))
                except (ImportError, MissingDependencyError, CheckpointError) as exc:  # a part it needs is missing
                    log.warning("tagging off: %s", exc)
                    tag_fn = describe_fn = None
                    off = str(exc)
                if describe_fn is not None:
                    desc = str(describe_fn(tags, cfg.seed * 1_000_003 + int(key[:8], 16) + i))
            out_items.append({"tags": _plain(tags), "description": desc})
        return {"items": out_items, "tagger": tag_fn is not None, "describer": describe_fn is not None,
                "off_reason": off}

    tagged = stage("tag", do_tag)["items"]
    rows = _write_segments(out, key, str(src), audio, spans, trs, flt, tagged, cfg)
    rejects: Counter = Counter(seg.get("rejects", {}))
    for why in reasons:
        rejects.update(why)
    summary = {**base, "status": "done", "duration": duration, "rows": rows, "rejects": dict(rejects),
               "denoise": den.get("applied", False), "diarise": dia.get("applied", False)}
    _write_json(done, {**summary, "digest": cfg.digest("tag")})
    return {**summary, "worker_s": round(time.perf_counter() - t_start, 3)}


def _asr_key(cfg: PipelineConfig) -> str:
    """What a transcript depends on: the utterance spans (everything up to segmentation) and the recogniser."""
    d = {"segment": cfg.digest("segment"), "asr": cfg.asr, "beam": cfg.asr_beam, "lang": cfg.lang}
    if cfg.asr_pack_s:
        d["pack"] = cfg.asr_pack_s
    return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:16]


def _earlier_transcripts(wd: WorkDir, asr_key: str, n: int) -> list[dict[str, Any] | None]:
    """The transcripts an earlier run of this input stored with the same spans and recogniser (its gate thresholds
    may differ; an utterance it did not transcribe is None); all None when there are none."""
    try:
        d = json.loads((wd.root / "transcribe.json").read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return [None] * n
    old = d.get("transcripts")
    if d.get("asr_key") != asr_key or not isinstance(old, list) or len(old) != n:
        return [None] * n
    return old


def _remove_temporaries(*folders: Path) -> None:
    """Delete half-written files that a killed run left in this input's own folders (our atomic writes name
    their temporaries ``.NAME.XXXX...``; nothing else in these folders starts with a dot)."""
    for folder in folders:
        if folder.is_dir():
            for f in folder.iterdir():
                if f.name.startswith(".") and f.is_file():
                    f.unlink(missing_ok=True)


def _row_lang(tr: dict[str, Any] | None, cfg: PipelineConfig) -> str:
    """An utterance's language: what the recogniser identified (or was told), else the config's, else ``und``."""
    if tr:
        return str(tr["lang"])
    return cfg.lang if cfg.lang != "auto" else "und"


def _plain(d: dict[str, Any]) -> dict[str, Any]:
    """JSON-safe copy (numpy scalars to Python)."""
    out = {}
    for k, v in d.items():
        if isinstance(v, np.generic):
            v = v.item()
        out[str(k)] = v
    return out


def _write_segments(out: str, key: str, src: str, audio: Path, spans: list, trs: list, flt: list, tagged: list,
                    cfg: PipelineConfig) -> list[dict[str, Any]]:
    """Write each kept utterance's audio under ``OUT/audio/<key>/`` (atomically) and return its manifest line."""
    import soundfile as sf

    from speechlm.utils.atomic import atomic_path

    rows = []
    for i, ((s, e, spk), tr, f, tg) in enumerate(zip(spans, trs, flt, tagged, strict=True)):
        if tg is None:
            continue
        uid = f"{key}_{i:05d}"
        rel = f"audio/{key}/{uid}.{cfg.audio_format}"
        path = Path(out) / rel
        x = _read(audio, s, e)
        if not path.is_file():
            with atomic_path(path) as tmp:
                sf.write(str(tmp), x, PIPELINE_SR, subtype="PCM_16", format=cfg.audio_format.upper())
        tags = {**tg["tags"], **{k: v for k, v in f["quality"].items() if k not in tg["tags"]}}
        if tr:
            tags.update(asr_avg_logprob=tr["avg_logprob"], lang_prob=tr["lang_prob"])
        rows.append({
            "id": uid, "audio": rel, "text": tr["text"] if tr else "",
            "lang": _row_lang(tr, cfg),
            "speaker": f"{key}_{spk}", "duration": round(len(x) / PIPELINE_SR, 4), "split": cfg.split,
            "tags": tags, "start": s, "end": e, "source": src, "description": tg["description"],
            "words": tr["words"] if tr else [],
        })
    return rows


def _outcome(get: Callable[[], dict[str, Any]], src: str, key: str) -> dict[str, Any]:
    """A worker's summary, or a ``failed`` one when its task raised: one bad input does not stop the run (it
    has no ``rows.json``, so the next run tries it again)."""
    try:
        return get()
    except Exception as exc:  # noqa: BLE001 - any error of one input, reported in the summary
        msg = (str(exc).strip().splitlines() or [type(exc).__name__])[-1]
        log.error("%s failed: %s", src, msg)
        return {"key": key, "source": src, "status": "failed", "reason": "error", "message": msg, "duration": 0.0,
                "rows": [], "rejects": {}, "seconds": {}, "resumed": []}


def dispatch(jobs: list[tuple[str, str]], out: str, cfg: PipelineConfig, *, backend: str = "ray", workers: int = 1,
             ray_address: str | None = None, progress: bool = True) -> list[dict[str, Any]]:
    """Run :func:`process_input` for each ``(source, key)`` and return the summaries in the same order."""
    from tqdm import tqdm

    bar = tqdm(total=len(jobs), desc="pipeline", unit="file", disable=not progress)
    results: list[dict[str, Any] | None] = [None] * len(jobs)
    if backend == "inline":  # in this process, one by one (tests, debugging)
        for i, (src, key) in enumerate(jobs):
            results[i] = process_input(src, out, cfg.to_dict(), key)
            bar.update(1)
    elif backend == "local":  # a pool of worker processes on this machine, without Ray
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor, as_completed

        # Workers start with one OpenMP thread, as Ray's do: CTranslate2's int8 kernels give (slightly)
        # different transcripts with another thread count, and the backends must agree. The variable must be
        # set before a worker loads libgomp, hence fresh ("spawn") processes that inherit it.
        os.environ.update(ONE_THREAD)
        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
            futs = {pool.submit(process_input, src, out, cfg.to_dict(), key): i for i, (src, key) in enumerate(jobs)}
            for f in as_completed(futs):
                results[futs[f]] = _outcome(f.result, *jobs[futs[f]])
                bar.update(1)
    elif backend == "ray":
        import ray

        if not ray.is_initialized():
            env = {"env_vars": dict(ONE_THREAD)}
            if ray_address:
                ray.init(address=ray_address, runtime_env=env, log_to_driver=False)
            else:
                ray.init(num_cpus=workers, include_dashboard=False, runtime_env=env, log_to_driver=False,
                         logging_level=logging.WARNING)
        task = ray.remote(num_cpus=1, max_retries=2)(process_input)
        refs = {task.remote(src, out, cfg.to_dict(), key): i for i, (src, key) in enumerate(jobs)}
        pending = list(refs)
        while pending:
            ready, pending = ray.wait(pending, num_returns=1)
            for r in ready:
                results[refs[r]] = _outcome(lambda r=r: ray.get(r), *jobs[refs[r]])
                bar.update(1)
    else:
        raise SpeechLMError(f"unknown backend {backend!r} (ray, local or inline)")
    bar.close()
    return [r for r in results if r is not None]


def check_inputs(inputs: Sequence[str | os.PathLike], out: str | os.PathLike) -> None:
    """Refuse bad arguments before any work: no inputs, a missing or non-file input, OUT that is a file, an
    ``index.html`` in OUT that the pipeline did not write (it would be replaced)."""
    if not inputs:
        raise SpeechLMError("give at least one input file")
    for p in inputs:
        pp = Path(p)
        if not pp.exists():
            raise SpeechLMError(f"{p}: no such file")
        if not pp.is_file():
            raise SpeechLMError(f"{p}: not a regular file (give audio files, e.g. DIR/*.mp3)")
    o = Path(out)
    if o.exists() and not o.is_dir():
        raise SpeechLMError(f"{out}: exists and is not a folder")
    if not o.exists() and not o.parent.is_dir():
        raise SpeechLMError(f"{out}: its parent folder {o.parent} does not exist")
    if any(Path(p).resolve().is_relative_to(o.resolve() / "audio") for p in inputs):
        raise SpeechLMError(f"inputs inside {out}/audio are the pipeline's own output")
    from speechlm.pipeline.page import foreign_page

    if foreign_page(o):
        raise SpeechLMError(f"{o / 'index.html'} exists and was not written by the pipeline: choose another OUT")


def run_pipeline(inputs: Sequence[str | os.PathLike], out: str | os.PathLike, cfg: PipelineConfig, *,
                 backend: str = "ray", workers: int = 1, ray_address: str | None = None,
                 progress: bool = True) -> dict[str, Any]:
    """Process ``inputs`` into ``out`` (resuming whatever an earlier run finished) and write every output.

    Returns the report (also ``OUT/report.json``); see :func:`speechlm.pipeline.export.finish`.
    """
    import fcntl

    from speechlm.pipeline import export

    check_inputs(inputs, out)
    if workers < 1:
        raise SpeechLMError(f"--workers must be >= 1, not {workers}")
    out_p = Path(out)
    out_p.mkdir(exist_ok=True)
    t0 = time.perf_counter()
    with open(out_p / ".pipeline.lock", "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise SpeechLMError(f"{out}: another pipeline run is writing there") from None
        seen: dict[str, str] = {}
        jobs: list[tuple[str, str]] = []
        duplicates: list[str] = []
        for p in inputs:
            k = input_key(p)
            if k in seen:
                duplicates.append(str(p))
                log.warning("%s has the same content as %s: processed once", p, seen[k])
                continue
            seen[k] = str(p)
            jobs.append((str(p), k))
        summaries = dispatch(jobs, str(out_p), cfg, backend=backend, workers=workers, ray_address=ray_address,
                             progress=progress)
        return export.finish(out_p, summaries, cfg, wall_s=time.perf_counter() - t0, workers=workers,
                             backend=backend, duplicates=duplicates)
