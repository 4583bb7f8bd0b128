"""Evaluation of generated speech against a manifest: intelligibility, speaker similarity, quality, prosody.

For each manifest utterance the generated file is ``GENERATED/<id>.wav`` (or .flac/.ogg/.opus/.mp3). Scored:
- WER and CER of an ASR transcript (judge ``whisper-base`` by default; ``whisper-tiny.en``, ``pocketsphinx``,
  ``ctc`` or ``whisper``, see :mod:`speechlm.eval.asr`) against the manifest text, normalised per language
  (:mod:`speechlm.text.wer`); summarised as corpus-level rates;
- speaker similarity of the generated audio to the voice prompt — ``PROMPTS/<id>.*`` if ``prompts_dir`` is
  given, else ``tags["prompt"]`` / ``tags["prompt_audio"]`` (relative to the manifest), else the reference
  audio;
- DNSMOS of the generated audio;
- MCD and F0 RMSE / voicing error against the reference audio, after DTW on MFCCs (the timing of generated
  speech differs from the reference, so no sample-aligned metric is used here).
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from speechlm.errors import SpeechLMError
from speechlm.eval.pairs import find_audio
from speechlm.eval.report import Report, UtteranceResult, summarize
from speechlm.eval.runner import run_jobs

TTS_GROUPS = ("asr", "speaker", "mos", "cepstral")
EVAL_SR = 16000


@dataclass(frozen=True)
class TTSJob:
    id: str
    generated: str
    text: str
    lang: str
    reference: str | None
    prompt: str | None
    groups: tuple[str, ...]
    asr: str
    asr_model: str | None
    speaker_model: str | None


def _score_tts_safe(job: TTSJob) -> UtteranceResult:
    """:func:`_score_tts`, with an unexpected failure on one utterance made an error row."""
    try:
        return _score_tts(job)
    except SpeechLMError:
        raise
    except Exception as exc:  # noqa: BLE001 - reported in the row and counted in meta["failed"]
        return UtteranceResult(job.id, error=f"{type(exc).__name__}: {exc}")


def _score_tts(job: TTSJob) -> UtteranceResult:
    from speechlm.audio.io import load_audio
    from speechlm.eval import metrics as M

    audio = {"generated": job.generated}
    if job.reference:
        audio["reference"] = job.reference
    try:
        gen = load_audio(job.generated, sr=EVAL_SR)[0][0]
        ref = load_audio(job.reference, sr=EVAL_SR)[0][0] if job.reference else None
        prompt = (
            load_audio(job.prompt, sr=EVAL_SR)[0][0] if job.prompt and job.prompt != job.reference else ref
        )
    except SpeechLMError as exc:
        return UtteranceResult(job.id, audio=audio, ref_text=job.text, error=str(exc))
    m: dict[str, float] = {}
    counts: dict[str, tuple[int, int]] = {}
    hyp = None
    if "asr" in job.groups:
        from speechlm.eval.asr import transcribe
        from speechlm.text.wer import char_errors, word_errors

        hyp = transcribe(gen, EVAL_SR, job.asr, job.asr_model, job.lang)
        w, c = word_errors(job.text, hyp, job.lang), char_errors(job.text, hyp, job.lang)
        counts = {"wer": (w.errors, w.ref_len), "cer": (c.errors, c.ref_len)}
    if "speaker" in job.groups and prompt is not None:
        from speechlm.eval.speaker import load_embedder, speaker_similarity

        m["spk_sim"] = speaker_similarity(prompt, gen, EVAL_SR, load_embedder(job.speaker_model))
    if "mos" in job.groups:
        from speechlm.eval.mos import dnsmos

        s = dnsmos(gen, EVAL_SR)
        m.update(dnsmos_ovrl=s.ovrl, dnsmos_sig=s.sig, dnsmos_bak=s.bak, dnsmos_p808=s.p808)
    if "cepstral" in job.groups and ref is not None:
        al, _, _ = M.mfcc_dtw(ref, gen, EVAL_SR)
        m["mcd"] = M.mcd(ref, gen, EVAL_SR, alignment=al)
        f = M.f0_metrics(ref, gen, EVAL_SR, use_dtw=True, alignment=al)
        m.update(f0_rmse_cents=f.rmse_cents, f0_rmse_hz=f.rmse_hz, vde=f.voicing_error)
    return UtteranceResult(job.id, metrics=m, counts=counts, ref_text=job.text, hyp_text=hyp, audio=audio)


def _prompt_for(u, root: Path, prompts_dir: Path | None) -> str | None:
    if prompts_dir is not None:
        p = find_audio(prompts_dir, u.id)
        return str(p) if p else None
    for key in ("prompt", "prompt_audio"):
        v = u.tags.get(key)
        if isinstance(v, str) and v:
            p = Path(v) if Path(v).is_absolute() else root / v
            if p.is_file():
                return str(p)
    return None


def evaluate_tts(
    manifest: str | os.PathLike,
    generated_dir: str | os.PathLike,
    asr: str = "whisper-base",
    asr_model: str | None = None,
    prompts_dir: str | os.PathLike | None = None,
    groups: Sequence[str] = TTS_GROUPS,
    speaker_model: str | None = None,
    split: str | None = None,
    lang: str | None = None,
    limit: int | None = None,
    workers: int = 1,
    title: str | None = None,
    n_resamples: int = 1000,
    seed: int = 0,
) -> Report:
    """Score ``generated_dir/<id>.wav`` for each manifest utterance (see the module docstring).

    Args:
        split, lang: keep only utterances of that split / language; ``limit``: the first N kept.
        groups: any of ``asr``, ``speaker``, ``mos``, ``cepstral``.
        workers: processes (1 = inline).

    Utterances without a generated file become failed rows (``error = "no generated file"``) and are counted
    in ``meta["missing"]``; if none has one, :class:`SpeechLMError` is raised.
    """
    from speechlm.data.manifest import manifest_root, read_manifest

    bad = [g for g in groups if g not in TTS_GROUPS]
    if bad:
        raise SpeechLMError(f"unknown metric group(s) {', '.join(bad)}; choose from {', '.join(TTS_GROUPS)}")
    gen_dir = Path(generated_dir)
    if not gen_dir.is_dir():
        raise SpeechLMError(f"generated folder {gen_dir} does not exist")
    pdir = Path(prompts_dir) if prompts_dir else None
    if pdir is not None and not pdir.is_dir():
        raise SpeechLMError(f"prompts folder {pdir} does not exist")
    utts = [
        u
        for u in read_manifest(manifest)
        if (split is None or u.split == split) and (lang is None or u.lang == lang)
    ][:limit]
    if not utts:
        raise SpeechLMError(f"no utterances selected from {manifest}")
    if "asr" in groups:  # fail early (one line) on an unusable backend/language, not in every worker
        from speechlm.eval.asr import get_transcriber

        for lg in sorted({u.lang for u in utts}):
            get_transcriber(asr, asr_model, lg)
    root = manifest_root(manifest)
    jobs, missing = [], []
    for u in utts:
        g = find_audio(gen_dir, u.id)
        if g is None:
            missing.append(UtteranceResult(u.id, ref_text=u.text, error="no generated file"))
            continue
        ref = u.audio_path(root)
        jobs.append(
            TTSJob(
                u.id,
                str(g),
                u.text,
                u.lang,
                str(ref) if ref.is_file() else None,
                _prompt_for(u, root, pdir),
                tuple(groups),
                asr,
                asr_model,
                speaker_model,
            )
        )
    if not jobs:
        raise SpeechLMError(
            f"none of the {len(utts)} utterances has a generated file in {gen_dir} (named <id>.wav)"
        )
    t0 = time.perf_counter()
    items = run_jobs(_score_tts_safe, jobs, workers, desc="tts eval")
    elapsed = time.perf_counter() - t0
    from speechlm.text.wer import NORMALIZER

    all_items = tuple(items) + tuple(missing)
    meta = {
        "kind": "tts",
        "manifest": str(manifest),
        "generated": str(gen_dir),
        "utterances": len(all_items),
        "missing": len(missing),
        "failed": sum(it.error is not None for it in items),
        "asr": asr + (f" ({asr_model})" if asr_model else ""),
        "text_normalizer": NORMALIZER,
        "speaker_model": speaker_model or "resemblyzer",
        "metric_groups": ",".join(groups),
        "workers": workers,
        "seconds": round(elapsed, 2),
    }
    return Report(
        title or f"TTS evaluation: {gen_dir.name}",
        "tts",
        summarize(all_items, n_resamples, seed),
        all_items,
        meta,
    )
