"""A synthetic multi-speaker, multi-language speech corpus from the offline Debian synthesizers.

``synthesize(SynthConfig(...))`` writes::

    DIR/wavs/<id>.wav      16 kHz mono PCM16, leading/trailing silence trimmed, peak-normalised to -1 dBFS
    DIR/manifest.jsonl     the manifest contract (speechlm.data.manifest), audio paths relative to DIR
    DIR/voices.json        the voice inventory used, the split rule, and counts per voice

Plan. Hours are divided evenly between languages. Per language, speakers (voice + prosody setting, see
:mod:`speechlm.data.voices`) are drawn in slots of ``utts_per_speaker`` utterances: slot 0 from the train
pool, slot 1 test, slot 2 valid, then whichever split is furthest below 80/10/10; within a split the engine is
drawn with :data:`~speechlm.data.voices.ENGINE_WEIGHTS`. Sentences come from :mod:`speechlm.data.sentences`. A
first round is sized from a characters-per-second prior; up to two more rounds top up using the measured
rate, so the corpus lands within a few percent of ``hours``. Everything random is seeded by (seed, language,
utterance id), and each utterance is rendered independently, so the output does not depend on ``jobs``.

Per-utterance tags: engine, voice, gender, the prosody settings (espeak-ng pitch/rate/word gap, flite/festival
duration stretch and F0, Piper length scale), the text source, and ``augment`` (the augmentation applied, ``{}``
when clean). The Piper engine (English, in-process, :mod:`speechlm.data.piper`) also records the TTS input tokens
and their durations (``tts_tokens``, ``durations_s``) unless the utterance was augmented, so a synthetic corpus
can train the duration-based TTS model (``speechlm acoustic features``).

Failures: a failed engine call is retried once, then the utterance is skipped and counted per engine; the run
never stops for it. Resumable: rerunning into the same DIR with the same settings reuses finished utterances
(recorded in ``DIR/.synth_progress.jsonl``).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import random
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from speechlm.data import voices as V
from speechlm.data.manifest import SPLITS, Utterance, write_manifest
from speechlm.data.sentences import SentenceSampler
from speechlm.errors import SpeechLMError
from speechlm.utils.atomic import atomic_write_text

SAMPLE_RATE = 16000
PEAK = 10 ** (-1 / 20)  # -1 dBFS
TRIM_DB = -45.0  # silence threshold relative to the peak, for trimming the engines' padding
TRIM_MARGIN_S = 0.1
MIN_SECONDS = 0.3
ENGINE_TIMEOUT_S = 60.0
SPLIT_FRACTIONS = {"train": 0.8, "valid": 0.1, "test": 0.1}
PRIOR_CHARS_PER_SECOND = 13.0
PROGRESS_FILE = ".synth_progress.jsonl"


@dataclass(frozen=True)
class SynthConfig:
    """Settings of one corpus. ``langs`` are ISO 639-1 codes (en, de, fr, es, it, ru, cs, fi, ...)."""

    out: Path
    hours: float
    langs: tuple[str, ...]
    seed: int = 0
    jobs: int = 1
    augment_prob: float = 0.3
    utts_per_speaker: int = 6
    phonemes: bool = False
    text_file: str | None = None


@dataclass(frozen=True)
class UttJob:
    """One utterance to render: everything the worker needs, nothing random left to decide."""

    id: str
    text: str
    text_source: str
    lang: str
    speaker: V.Speaker
    split: str
    seed: int


@dataclass(frozen=True)
class SynthResult:
    """What a run produced."""

    manifest: Path
    utterances: int
    seconds: float
    speakers: int
    voices: int
    failures: dict[str, int] = field(default_factory=dict)
    wall_seconds: float = 0.0
    rendered_seconds: float = 0.0  # audio rendered by this run (the rest was reused from an earlier run)
    seconds_per_split: dict[str, float] = field(default_factory=dict)
    speakers_per_split: dict[str, int] = field(default_factory=dict)

    @property
    def hours_per_wall_hour(self) -> float:
        """Audio rendered by this run per unit of wall-clock time (reused utterances do not count)."""
        return self.rendered_seconds / max(self.wall_seconds, 1e-9)


def _seed_int(*parts: object) -> int:
    return int.from_bytes(hashlib.sha256(":".join(map(str, parts)).encode()).digest()[:8], "big")


# ------------------------------------------------------------------------------------------------- rendering

_ASCII_PUNCT = str.maketrans(
    {
        "“": '"',
        "”": '"',
        "„": '"',
        "«": '"',
        "»": '"',
        "‘": "'",
        "’": "'",
        "–": "-",
        "—": "-",
        "…": "...",
        "¿": "",
        "¡": "",
    }
)


def engine_command(job: UttJob, text_path: Path, wav_path: Path) -> tuple[list[str], bytes, dict[str, Any]]:
    """The engine's argv, the text file's bytes, and the prosody tags of this rendering."""
    v, s = job.speaker.voice, job.speaker.settings()
    if v.engine == "espeak-ng":
        gap = random.Random(job.seed).choice(V.ESPEAK_WORD_GAPS)
        argv = [
            "espeak-ng",
            "-v",
            V.espeak_voice_arg(v.name),
            "-p",
            str(int(s["pitch"])),
            "-s",
            str(int(s["rate"])),
            "-g",
            str(gap),
            "-w",
            str(wav_path),
            "-f",
            str(text_path),
        ]
        tags = {
            "pitch": int(s["pitch"]),
            "rate_wpm": int(s["rate"]),
            "word_gap_ms": 10 * gap,
            "accent": v.name.split("+")[0],
            "variant": v.name.split("+")[1],
        }
        return argv, job.text.encode("utf-8"), tags
    if v.engine == "flite":
        f0 = round(V.FLITE_VOICES[v.name][1] * s["f0x"], 1)
        argv = [
            "flite",
            "-voice",
            v.name,
            "-f",
            str(text_path),
            "-o",
            str(wav_path),
            "--setf",
            f"duration_stretch={s['stretch']}",
            "--setf",
            f"int_f0_target_mean={f0}",
        ]
        text = job.text.translate(_ASCII_PUNCT).encode("ascii", errors="ignore")
        return argv, text, {"duration_stretch": s["stretch"], "f0_mean_hz": f0}
    if v.engine == "festival":
        argv = [
            "text2wave",
            "-eval",
            f"(begin (voice_{v.name}) (Parameter.set 'Duration_Stretch {s['stretch']}))",
            str(text_path),
            "-o",
            str(wav_path),
        ]
        text = job.text.translate(_ASCII_PUNCT).encode(v.encoding, errors="ignore")
        return argv, text, {"duration_stretch": s["stretch"]}
    raise SpeechLMError(f"unknown engine {v.engine!r}")


def render_piper(job: UttJob) -> tuple[np.ndarray, dict[str, Any]]:
    """A Piper voice speaks ``job.text`` in-process -> (16 kHz audio ``[T]``, tags with the TTS input tokens and
    their durations, :meth:`speechlm.data.piper.PiperVoice.synthesize_tokens`)."""
    from speechlm.audio.io import resample
    from speechlm.data.piper import joe
    from speechlm.text.tts_input import readable, tts_tokens

    voice = joe(durations=True)
    length = float(job.speaker.settings()["length"])
    tokens = tts_tokens(job.text, job.speaker.voice.lang, voice.config.espeak_voice)
    if not readable(tokens):
        raise SpeechLMError(f"{job.id}: text has nothing the engine can read")
    audio, secs = voice.synthesize_tokens(tokens, length_scale=length)
    return resample(audio, voice.sample_rate, SAMPLE_RATE), {
        "length_scale": length, "tts_tokens": tokens, "durations_s": [round(float(x), 5) for x in secs]}


def trim_silence(
    wav: np.ndarray, sr: int, threshold_db: float = TRIM_DB, margin_s: float = TRIM_MARGIN_S
) -> np.ndarray:
    """Cut leading/trailing audio quieter than ``threshold_db`` below the peak: [T] -> [T']."""
    peak = float(np.max(np.abs(wav))) if wav.size else 0.0
    if peak <= 0:
        return wav[:0]
    loud = np.flatnonzero(np.abs(wav) > peak * 10 ** (threshold_db / 20))
    margin = int(margin_s * sr)
    return wav[max(0, loud[0] - margin) : loud[-1] + 1 + margin]


def render(job: UttJob, out_wav: Path, augment_prob: float, tmpdir: Path) -> dict[str, Any]:
    """Synthesise one utterance to ``out_wav`` (16 kHz mono PCM16); return its duration and tags.

    Raises on any engine or audio failure (the caller retries and counts).
    """
    from speechlm.audio.io import load_audio, save_audio

    if job.speaker.voice.engine == "piper":  # in-process, with per-token durations (kept untrimmed)
        wav, tags = render_piper(job)
    else:
        text_path = tmpdir / f"{job.id}.txt"
        raw_path = tmpdir / f"{job.id}.raw.wav"
        argv, text_bytes, tags = engine_command(job, text_path, raw_path)
        if not text_bytes.strip():
            raise SpeechLMError(f"{job.id}: text has nothing the engine can read")
        text_path.write_bytes(text_bytes + b"\n")
        proc = subprocess.run(argv, capture_output=True, timeout=ENGINE_TIMEOUT_S, check=False)
        if proc.returncode != 0 or not raw_path.is_file():
            err = proc.stderr.decode(errors="replace").strip().splitlines()
            raise SpeechLMError(f"{argv[0]} exited {proc.returncode}: {err[-1] if err else ''}")
        wav, _ = load_audio(raw_path, sr=SAMPLE_RATE)  # [1, T]
        wav = trim_silence(wav[0], SAMPLE_RATE)
    if wav.size < MIN_SECONDS * SAMPLE_RATE:
        raise SpeechLMError(f"{job.id}: engine produced {wav.size / SAMPLE_RATE:.2f} s of audio")
    wav = wav * (PEAK / float(np.max(np.abs(wav))))
    aug: dict[str, Any] = {}
    rng = np.random.default_rng(_seed_int("augment", job.seed))
    if augment_prob > 0 and rng.random() < augment_prob:
        from speechlm.audio.augment import random_augment

        wav, aug = random_augment(wav.astype(np.float32), SAMPLE_RATE, rng)
        tags.pop("tts_tokens", None)  # the durations no longer describe the augmented audio
        tags.pop("durations_s", None)
        wav = np.asarray(wav, dtype=np.float32).reshape(-1)
        peak = float(np.max(np.abs(wav)))
        if peak > 1.0:  # keep PCM16 from clipping; the augmentation's own gain tag stays as applied
            wav = wav / peak * PEAK
    save_audio(out_wav, wav.astype(np.float32), SAMPLE_RATE)
    v = job.speaker.voice
    tags = {
        "engine": v.engine,
        "voice": v.name,
        "gender": v.gender,
        **tags,
        "text_source": job.text_source,
        "augment": dict(aug),
    }
    return {"duration": round(wav.size / SAMPLE_RATE, 4), "tags": tags}


def render_batch(jobs: list[UttJob], wav_dir: str, augment_prob: float) -> list[dict[str, Any]]:
    """Worker entry point: render a batch, retrying each failure once; never raises."""
    out = []
    with tempfile.TemporaryDirectory(prefix="speechlm-synth-") as tmp:
        for job in jobs:
            err = ""
            for _attempt in range(2):
                try:
                    rec = render(job, Path(wav_dir) / f"{job.id}.wav", augment_prob, Path(tmp))
                    out.append({"id": job.id, "ok": True, "speaker": job.speaker.id, "text": job.text, **rec})
                    break
                except Exception as exc:  # noqa: BLE001 - counted and reported, the run goes on
                    err = f"{type(exc).__name__}: {exc}"
            else:
                out.append(
                    {"id": job.id, "ok": False, "engine": job.speaker.voice.engine, "error": err[:300]}
                )
    return out


# -------------------------------------------------------------------------------------------------- planning


class SpeakerDrawer:
    """Deterministic stream of speakers for one language, keeping the split proportions (module docstring)."""

    def __init__(self, lang: str, seed: int):
        voices = V.voices_for(lang)
        if not voices:
            raise SpeechLMError(f"no installed synthesizer speaks {lang!r} (espeak-ng, flite, festival)")
        self.pools: dict[str, dict[str, list[V.Speaker]]] = {s: defaultdict(list) for s in SPLITS}
        for v in voices:
            for spk in V.speakers_for(v):
                self.pools[V.speaker_split(spk, seed)][v.engine].append(spk)
        self._rng = random.Random(f"speakers:{seed}:{lang}")
        self._queues: dict[tuple[str, str], list[V.Speaker]] = {}
        for _split, by_engine in self.pools.items():
            for _engine, spks in by_engine.items():
                spks.sort(key=lambda s: s.id)
                self._rng.shuffle(spks)
        self.counts = Counter({s: 0 for s in SPLITS})
        self.n = 0

    def _next_split(self) -> str:
        order = ("train", "test", "valid")
        if self.n < 3:
            split = order[self.n]
        else:
            split = max(SPLITS, key=lambda s: SPLIT_FRACTIONS[s] * (self.n + 1) - self.counts[s])
        if not self.pools[split]:
            split = "train"
        return split

    def draw(self) -> tuple[V.Speaker, str]:
        split = self._next_split()
        by_engine = self.pools[split]
        engines = sorted(by_engine)
        weights = [V.ENGINE_WEIGHTS.get(e, 0.1) for e in engines]
        engine = self._rng.choices(engines, weights)[0]
        queue = self._queues.get((split, engine))
        if not queue:  # cycle through the pool again once every speaker was used
            queue = self._queues[(split, engine)] = list(by_engine[engine])
        spk = queue.pop(0)
        self.counts[split] += 1
        self.n += 1
        return spk, split


def _check_langs(langs: tuple[str, ...]) -> None:
    if not langs:
        raise SpeechLMError("--langs is empty: give comma-separated language codes such as en,de,fr")
    bad = [lang for lang in langs if not lang.isalpha() or not V.voices_for(lang)]
    if bad:
        raise SpeechLMError(
            f"no installed synthesizer speaks {', '.join(map(repr, bad))}; "
            "use ISO 639-1 codes that espeak-ng knows (en, de, fr, es, it, ru, cs, fi, ...)"
        )


def _read_progress(path: Path) -> dict[str, dict[str, Any]]:
    done = {}
    if path.is_file():
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                continue  # a torn last line from an interrupted run
            done[rec["id"]] = rec
    return done


def synthesize(cfg: SynthConfig, progress: bool = True) -> SynthResult:
    """Build the corpus described by ``cfg`` (module docstring). Returns counts and timing."""
    t0 = time.time()
    _env_threads()
    langs = tuple(dict.fromkeys(cfg.langs))
    _check_langs(langs)
    if not cfg.hours > 0:
        raise SpeechLMError(f"--hours must be > 0, got {cfg.hours}")
    if not 0 <= cfg.augment_prob <= 1:
        raise SpeechLMError(f"--augment-prob must be in [0, 1], got {cfg.augment_prob}")
    if cfg.utts_per_speaker < 1 or cfg.jobs < 1:
        raise SpeechLMError("--utts-per-speaker and --jobs must be >= 1")
    phonemize = None
    if cfg.phonemes:
        from speechlm.text.g2p import phonemize
    samplers = {lang: SentenceSampler(lang, cfg.seed, cfg.text_file) for lang in langs}
    drawers = {lang: SpeakerDrawer(lang, cfg.seed) for lang in langs}
    out = Path(cfg.out)
    wav_dir = out / "wavs"
    wav_dir.mkdir(parents=True, exist_ok=True)
    progress_path = out / PROGRESS_FILE
    done = _read_progress(progress_path)
    target = cfg.hours * 3600 / len(langs)

    records: dict[str, dict[str, Any]] = {}
    jobs_by_id: dict[str, UttJob] = {}
    failures: Counter[str] = Counter()
    rendered = 0.0
    next_index = dict.fromkeys(langs, 0)
    seconds = dict.fromkeys(langs, 0.0)
    chars = dict.fromkeys(langs, 0)
    with progress_path.open("a", encoding="utf-8") as plog:
        for round_ in range(3):
            batches: list[list[UttJob]] = []
            for lang in langs:
                missing = target - seconds[lang]
                if missing <= 0.03 * target:
                    continue
                cps = chars[lang] / seconds[lang] if seconds[lang] > 0 else PRIOR_CHARS_PER_SECOND
                mean_chars = max(10.0, float(np.mean([len(s.text) for s in samplers[lang].pool])))
                n_utts = max(1, math.ceil(missing * cps / mean_chars * (1.05 if round_ else 1.0)))
                per_spk = (
                    min(cfg.utts_per_speaker, max(1, math.ceil(n_utts / 3)))
                    if round_ == 0
                    else cfg.utts_per_speaker
                )
                sents = samplers[lang].take(n_utts)
                for start in range(0, n_utts, per_spk):
                    speaker, split = drawers[lang].draw()
                    batch = []
                    for s in sents[start : start + per_spk]:
                        uid = f"{lang}_{next_index[lang]:06d}"
                        next_index[lang] += 1
                        batch.append(
                            UttJob(uid, s.text, s.source, lang, speaker, split, _seed_int(cfg.seed, uid))
                        )
                    batches.append(batch)
            if not batches:
                break
            for b in batches:
                for j in b:
                    jobs_by_id[j.id] = j
            todo = []
            for b in batches:
                left = [j for j in b if not _reusable(done.get(j.id), j, wav_dir)]
                left_ids = {j.id for j in left}
                for j in b:
                    if j.id not in left_ids:
                        records[j.id] = done[j.id]
                if left:
                    todo.append(left)
            for rec in _run_batches(todo, wav_dir, cfg, progress, round_):
                if rec["ok"]:
                    records[rec["id"]] = rec
                    rendered += rec["duration"]
                    plog.write(json.dumps(rec, ensure_ascii=False) + "\n")
                    plog.flush()
                else:
                    failures[rec["engine"]] += 1
                    print(
                        f"speechlm: warning: {rec['id']} skipped after a retry: {rec['error']}",
                        file=sys.stderr,
                    )
            for lang in langs:
                recs = [r for r in records.values() if jobs_by_id[r["id"]].lang == lang]
                seconds[lang] = sum(r["duration"] for r in recs)
                chars[lang] = sum(len(r["text"]) for r in recs)

    utts = []
    phones: dict[str, str] = {}
    if phonemize is not None:
        for lang in langs:
            ids = sorted(i for i in records if jobs_by_id[i].lang == lang)
            if ids:
                phones.update(zip(ids, phonemize([jobs_by_id[i].text for i in ids], lang), strict=True))
    for uid in sorted(records):
        job, rec = jobs_by_id[uid], records[uid]
        utts.append(
            Utterance(
                id=uid,
                audio=f"wavs/{uid}.wav",
                text=job.text,
                lang=job.lang,
                speaker=job.speaker.id,
                duration=rec["duration"],
                split=job.split,
                phonemes=phones.get(uid),
                tags={"lang": job.lang, **rec["tags"]},
            )
        )
    if not utts:
        raise SpeechLMError("every engine call failed; nothing was written (see the warnings above)")
    manifest = out / "manifest.jsonl"
    _write_voices_json(out / "voices.json", cfg, langs, utts, drawers)
    write_manifest(manifest, utts)
    per_split_s: dict[str, float] = defaultdict(float)
    per_split_spk: dict[str, set[str]] = defaultdict(set)
    for u in utts:
        per_split_s[u.split] += u.duration
        per_split_spk[u.split].add(u.speaker)
    return SynthResult(
        manifest=manifest,
        utterances=len(utts),
        seconds=sum(u.duration for u in utts),
        speakers=len({u.speaker for u in utts}),
        voices=len({(u.tags["engine"], u.tags["voice"]) for u in utts}),
        failures=dict(failures),
        wall_seconds=time.time() - t0,
        rendered_seconds=rendered,
        seconds_per_split=dict(per_split_s),
        speakers_per_split={k: len(v) for k, v in per_split_spk.items()},
    )


def _reusable(rec: dict[str, Any] | None, job: UttJob, wav_dir: Path) -> bool:
    return (
        rec is not None
        and rec.get("text") == job.text
        and rec.get("speaker") == job.speaker.id
        and (wav_dir / f"{job.id}.wav").is_file()
    )


def _run_batches(
    batches: list[list[UttJob]], wav_dir: Path, cfg: SynthConfig, progress: bool, round_: int
) -> Iterator[dict[str, Any]]:
    from tqdm import tqdm

    total = sum(len(b) for b in batches)
    bar = tqdm(
        total=total,
        unit="utt",
        desc=f"synth round {round_ + 1}",
        disable=not progress or total == 0,
        file=sys.stderr,
        dynamic_ncols=True,
    )
    try:
        if cfg.jobs == 1:
            for b in batches:
                res = render_batch(b, str(wav_dir), cfg.augment_prob)
                bar.update(len(b))
                yield from res
        else:
            with ProcessPoolExecutor(max_workers=cfg.jobs) as pool:
                futs = [pool.submit(render_batch, b, str(wav_dir), cfg.augment_prob) for b in batches]
                for fut in as_completed(futs):
                    res = fut.result()
                    bar.update(len(res))
                    yield from res
    finally:
        bar.close()


def _write_voices_json(
    path: Path,
    cfg: SynthConfig,
    langs: tuple[str, ...],
    utts: list[Utterance],
    drawers: dict[str, SpeakerDrawer],
) -> None:
    used: dict[tuple[str, str, str], dict[str, Any]] = {}
    for u in utts:
        key = (u.tags["engine"], u.tags["voice"], u.lang)
        row = used.setdefault(key, {"utterances": 0, "seconds": 0.0, "speakers": set(), "splits": set()})
        row["utterances"] += 1
        row["seconds"] += u.duration
        row["speakers"].add(u.speaker)
        row["splits"].add(u.split)
    rows = []
    for inv in V.inventory(list(langs)):
        u = used.get((inv["engine"], inv["voice"], inv["lang"]))
        rows.append(
            {
                **inv,
                "speakers_available": inv.pop("speakers"),
                "speakers_used": len(u["speakers"]) if u else 0,
                "utterances": u["utterances"] if u else 0,
                "seconds": round(u["seconds"], 2) if u else 0.0,
                "splits": sorted(u["splits"]) if u else [],
            }
        )
    doc = {
        "seed": cfg.seed,
        "langs": list(langs),
        "sample_rate": SAMPLE_RATE,
        "augment_prob": cfg.augment_prob,
        "split_rule": (V.__doc__ or "").split("Split rule", 1)[-1].strip(),
        "held_out_voices": sorted(f"{e}:{n}" for e, n in V.HELD_OUT_VOICES),
        "held_out_espeak_variants": sorted(V.HELD_OUT_ESPEAK_VARIANTS),
        "voices": rows,
    }
    atomic_write_text(path, json.dumps(doc, indent=1, ensure_ascii=False) + "\n")


def _env_threads() -> None:
    # Workers only run engines and soxr; keep BLAS/torch from spawning a thread per core in each process.
    for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ.setdefault(k, "1")
