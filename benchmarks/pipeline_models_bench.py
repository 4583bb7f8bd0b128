"""The model stages of the data pipeline on the constructed in-the-wild set (issue 23), beside anchors.

    .venv/bin/python benchmarks/pipeline_models_bench.py --files 30 --out runs/bench/pipeline_models

1. Builds (or reuses) the constructed set: ``speechlm.pipeline.construct.build_constructed(OUT/constructed,
   --files, --seed)``: conversations of synthetic voices and fillets-ng actors over music/noise, with ground truth.
2. Denoising: SI-SDR of the clean speech stem against the input and the outputs, by input SNR: each file's first
   ``--sisdr-seconds`` of speech stem re-mixed with its own background stem at every SNR of ``--snr`` (no
   telephone band or clipping, so the clean stem is the reference). The pipeline's denoisers
   (``speechlm.pipeline.denoise.DENOISERS``: DeepFilterNet3 and the enhancer trained here) and a spectral-gating
   anchor, with each one's speed on one thread. Part ``denoise_heldout``: the same on ``--heldout-clips`` clips of
   the held-out human recordings (``--real``) under the constructed set's backgrounds.
3. Diarisation: DER (0.25 s collar, overlaps scored, optimal speaker mapping) of ``diarise`` on every whole
   file: on the mixture with Silero VAD, on the denoised mixture, and with the reference speech regions (oracle
   VAD: clustering alone); anchor: every speech region labelled one speaker.
4. Tags: on every non-overlapping reference segment of the mixtures: gender (synthetic voices: gender known),
   pitch bin (gender-relative, ground truth from the clean utterance), rate bin (ground truth from the clean
   utterance; the estimate from the noisy segment and the reference text), pitch error; on segments cut from the
   mixture and from the denoised mixture (the audio the pipeline's tag stage reads when its denoiser runs).
   Anchor for gender: an F0 rule (median F0 > :data:`F0_RULE_HZ` -> female).
5. Gender on held-out real recordings (never trained on): ``--heldout-n`` random prompts of each
   asterisk-core-sounds voice (``en_US_f_Allison``, ``fr_CA_f_June``, ``es_MX_f_Allison``, ``it_IT_m_Carlo``:
   the folder names give the gender), ours beside the F0 rule.

Each part's result is kept in ``OUT/<part>.json`` and reused by the next run (``--redo PART`` recomputes it,
``--only PART`` runs just that part and writes no table).

OUT/listen/index.html (once, ``--listen`` clips): the held-out clips at 0, 5 and 10 dB, the mixture, every
denoiser's output and the clean speech side by side.

Prints a table; writes ``docs/results/pipeline_models__default.json`` (``--json``) that docs/pipeline_models.md
renders (benchmarks/render_tables.py).
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SR = 16000
F0_RULE_HZ = 165.0


def _load(path: Path) -> np.ndarray:
    from speechlm.audio.io import load_audio

    return load_audio(path, sr=SR)[0][0]


def _pipeline_denoiser() -> Callable[[np.ndarray, int], np.ndarray]:
    """The denoiser the pipeline uses by default (``PipelineConfig().denoiser``)."""
    from speechlm.pipeline import denoise as D
    from speechlm.pipeline.config import PipelineConfig

    return D.denoiser(PipelineConfig().denoiser)


def _denoisers() -> dict[str, Callable[[np.ndarray], np.ndarray]]:
    """The pipeline's denoisers (``PipelineConfig.denoiser``) and the spectral-gating anchor, by name."""
    from speechlm.pipeline import denoise as D

    return {name: (lambda x, name=name: D.denoiser(name)(x, SR)) for name in D.DENOISERS} | {
        "spectral_gate": lambda x: D.spectral_gate(x, SR)}


def _si_sdr_table(clips: list[tuple[np.ndarray, np.ndarray]], snrs: list[float],
                  kinds: list[str] | None = None) -> dict[str, Any]:
    """Every (speech, background) pair re-mixed at every SNR (speech power over background power, whole clip),
    each denoiser's SI-SDR against the speech, mean per SNR, and each denoiser's wall-clock RTF (one thread);
    with ``kinds`` (each clip's background kind) also each denoiser's mean SI-SDR gain per kind and SNR."""
    from speechlm.pipeline import denoise as D

    systems = _denoisers()
    rows: dict[str, dict[str, list[float]]] = {f"{s:g}": {k: [] for k in ["input", *systems]} for s in snrs}
    gains: dict[str, dict[str, dict[str, list[float]]]] = {}
    t_model = dict.fromkeys(systems, 0.0)
    t_audio = 0.0
    for i, (s, n) in enumerate(clips):
        n = n / (np.sqrt(np.mean(n ** 2)) + 1e-12)
        for snr in snrs:
            mix = s + n * np.float32(np.sqrt(np.mean(s ** 2) / 10 ** (snr / 10)))
            g = max(1.0, float(np.max(np.abs(mix))) / 0.99)
            mix, ref = mix / g, s / g
            r = rows[f"{snr:g}"]
            r["input"].append(D.si_sdr(mix, ref))
            t_audio += mix.size / SR
            for name, fn in systems.items():
                t0 = time.perf_counter()
                out = fn(mix)
                t_model[name] += time.perf_counter() - t0
                r[name].append(D.si_sdr(out, ref))
                if kinds is not None:
                    (gains.setdefault(kinds[i], {}).setdefault(f"{snr:g}", {}).setdefault(name, [])
                     .append(r[name][-1] - r["input"][-1]))
    table = {k: {m: round(float(np.mean(v)), 2) for m, v in r.items()} | {"clips": len(r["input"])}
             for k, r in rows.items()}
    res = {"by_snr_db": table, "rtf": {k: round(v / max(t_audio, 1e-9), 4) for k, v in t_model.items()}}
    if kinds is not None:
        res["gain_by_background"] = {k: {snr: {m: round(float(np.mean(v)), 2) for m, v in per.items()}
                                         for snr, per in by.items()} for k, by in gains.items()}
    return res


def bench_denoise(truth: dict, root: Path, snrs: list[float], seconds: float) -> dict[str, Any]:
    """SI-SDR on the constructed set: each file's first ``seconds`` of speech stem with its own background stem."""
    from speechlm.pipeline import denoise as D

    clips = []
    for f in truth["files"]:
        speech, bg = _load(root / f["speech_stem"]), _load(root / f["background_stem"])
        first = int(f["segments"][0]["start"] * SR)
        a, b = first, min(speech.size, first + int(seconds * SR))
        clips.append((speech[a:b], bg[a:b]))
    return {"backend": D.backend(), **_si_sdr_table(clips, snrs), "seconds_per_clip": seconds}


HELDOUT_SPEECH = ("asterisk_core_en", "asterisk_core_fr", "asterisk_core_es", "asterisk_core_it",
                  "pocketsphinx_testdata", "codec2_examples")


def heldout_clips(real: Path, n: int, seconds: float, seed: int
                  ) -> tuple[list[tuple[np.ndarray, np.ndarray]], list[str], list[str]]:
    """``n`` (speech, background) clips of ``seconds``: held-out human recordings (never trained on; the 8-kHz
    asterisk voices as they are), each clip one source's utterances joined with 0.3 s gaps, under the constructed
    set's backgrounds (fillets-ng music and effects, synthetic noise: never in the enhancer's training); each
    clip's source and background kind."""
    from speechlm.data.manifest import manifest_root, read_manifest
    from speechlm.pipeline.construct import background

    rng = random.Random(seed)
    by_src = {}
    for name in HELDOUT_SPEECH:
        m = real / name / "manifest.jsonl"
        if m.is_file():
            by_src[name] = [str(u.audio_path(manifest_root(m))) for u in read_manifest(m)]
    if not by_src:
        raise SystemExit(f"no held-out recordings under {real}: run scripts/get_real_speech.sh")
    clips, sources, kinds = [], [], []
    nrng = np.random.default_rng(seed)
    names = sorted(by_src)
    for i in range(n):
        src = names[i % len(names)]
        parts, total = [], 0
        while total < seconds * SR:
            x = _load(Path(rng.choice(by_src[src])))
            parts += [x, np.zeros(int(0.3 * SR), np.float32)]
            total += x.size + int(0.3 * SR)
        s = np.concatenate(parts)[: int(seconds * SR)]
        kind = ("music", "effects", "pink", "babble-like", "white")[i % 5]
        clips.append((s, background(kind, s.size, nrng).astype(np.float32)))
        sources.append(src)
        kinds.append(kind)
    return clips, sources, kinds


def bench_denoise_heldout(real: Path, n: int, seconds: float, snrs: list[float], seed: int) -> dict[str, Any]:
    """SI-SDR of every denoiser on :func:`heldout_clips`."""
    clips, sources, kinds = heldout_clips(real, n, seconds, seed)
    return {**_si_sdr_table(clips, snrs, kinds), "seconds_per_clip": seconds, "sources": sorted(set(sources))}


def listening_page(out: Path, real: Path, n: int, seconds: float, snrs: list[float], seed: int) -> Path:
    """OUT/index.html: the first ``n`` held-out clips at each SNR of ``snrs``, the mixture, every denoiser's output
    and the clean speech side by side (the clips of :func:`bench_denoise_heldout`, mixed the same way)."""
    import html

    import soundfile as sf

    clips, sources, _ = heldout_clips(real, n, seconds, seed)
    systems = _denoisers()
    out.mkdir(parents=True, exist_ok=True)
    cols = ["mixture", *systems, "clean"]
    rows = []
    for i, ((s, bg), src) in enumerate(zip(clips, sources, strict=True)):
        bg = bg / (np.sqrt(np.mean(bg ** 2)) + 1e-12)
        for snr in snrs:
            mix = s + bg * np.float32(np.sqrt(np.mean(s ** 2) / 10 ** (snr / 10)))
            g = max(1.0, float(np.max(np.abs(mix))) / 0.99)
            audio = {"mixture": mix / g, **{k: fn(mix / g) for k, fn in systems.items()}, "clean": s / g}
            cells = []
            for k in cols:
                name = f"{i:02d}_{snr:g}dB_{k}.wav"
                sf.write(out / name, np.clip(audio[k], -1, 1), SR)
                cells.append(f'<td><audio controls preload="none" src="{name}"></audio></td>')
            rows.append(f"<tr><td>{html.escape(src)}, {snr:g} dB</td>{''.join(cells)}</tr>")
    head = "".join(f"<th>{html.escape(DENOISER_NAMES.get(c, c))}</th>" for c in cols)
    (out / "index.html").write_text(
        "<!doctype html><meta charset='utf-8'><title>speechlm denoisers, held-out speech</title>"
        "<style>body{font-family:sans-serif}td,th{border:1px solid #ccc;padding:4px;font-size:13px}"
        "audio{width:150px}</style><h1>Denoisers on held-out human recordings</h1>"
        f"<table><tr><th>clip</th>{head}</tr>{''.join(rows)}</table>")
    return out / "index.html"


def bench_der(truth: dict, root: Path) -> dict[str, Any]:
    """DER over the whole files: mixture, denoised mixture, oracle speech regions, one-speaker anchor."""
    from speechlm.pipeline import diarise as Z

    der: dict[str, list[dict[str, float]]] = {"mixture": [], "denoised": [], "oracle_vad": [], "one_speaker": []}
    n_spk = {"right": 0, "files": 0}
    t_dia, t_den, t_audio = 0.0, 0.0, 0.0
    for f in truth["files"]:
        mix = _load(root / f["audio"])
        ref = [(s["start"], s["end"], s["speaker"]) for s in f["segments"]]
        t_audio += mix.size / SR
        t0 = time.perf_counter()
        den = _pipeline_denoiser()(mix, SR)
        t_den += time.perf_counter() - t0
        t0 = time.perf_counter()
        hyp = Z.diarise(mix, SR)
        t_dia += time.perf_counter() - t0
        der["mixture"].append(Z.der(ref, hyp))
        der["denoised"].append(Z.der(ref, Z.diarise(den, SR)))
        oracle = [(s, e) for s, e, _ in ref]
        der["oracle_vad"].append(Z.der(ref, Z.diarise(mix, SR, speech=oracle)))
        der["one_speaker"].append(Z.der(ref, [(s, e, "spk0") for s, e in Z.speech_regions(mix, SR)]))
        n_spk["files"] += 1
        n_spk["right"] += int(len({k for _, _, k in hyp}) == f["n_speakers"])
    table = {k: {m: round(float(np.mean([r[m] for r in v])), 4) for m in ("der", "miss", "false_alarm", "confusion")}
             for k, v in der.items()}
    return {"der": table, "speaker_count_right": n_spk,
            "rtf": {"diarise": round(t_dia / t_audio, 4), "denoise": round(t_den / t_audio, 4)}}


def bench_tags(truth: dict, root: Path) -> dict[str, Any]:
    """Tag accuracies on the non-overlapping reference segments (at least 1 s): cut from the mixtures, and (key
    ``denoised``) from the denoised mixtures, which is what the pipeline tags when its denoiser runs (the
    default)."""
    out = tag_accuracies(truth, root, None)
    out["denoised"] = tag_accuracies(truth, root, lambda mix: _pipeline_denoiser()(mix, SR))
    return out


def tag_accuracies(truth: dict, root: Path, clean: Callable[[np.ndarray], np.ndarray] | None) -> dict[str, Any]:
    """:func:`bench_tags` on one kind of audio: the mixtures, or ``clean(mixture)`` (whole files)."""
    from speechlm.pipeline import tags as T

    rows: list[dict[str, Any]] = []
    t_tag, t_audio = 0.0, 0.0
    for f in truth["files"]:
        mix = _load(root / f["audio"])
        if clean is not None:
            mix = clean(mix)
        for s in f["segments"]:
            if s["overlap"] or s["end"] - s["start"] < 1.0:
                continue
            seg = mix[int(s["start"] * SR): int(s["end"] * SR)]
            t0 = time.perf_counter()
            t = T.tag(seg, SR, text=s["text"], lang=s["lang"])
            t_tag += time.perf_counter() - t0
            t_audio += seg.size / SR
            track = T.pitch_track(seg, SR)
            known = T.bins({"gender": s["gender"], "pitch_mean_hz": s["pitch_mean_hz"],
                            "speaking_rate": s["speaking_rate"]})
            rows.append({
                "file": f["id"], "voice": s["voice"], "gender": s["gender"], "snr_db": f["snr_db"],
                "telephone": f["telephone"], "clipped": f["clipped"], "pred_gender": t["gender"],
                "rule_gender": ("female" if track.size and np.median(track) > F0_RULE_HZ else "male"),
                "pitch_bin": known["pitch_bin"], "pred_pitch_bin": t["pitch_bin"],
                "rate_bin": known["rate_bin"], "pred_rate_bin": t["rate_bin"],
                "pitch_hz": s["pitch_mean_hz"], "pred_pitch_hz": t["pitch_mean_hz"],
                "rate": s["speaking_rate"], "pred_rate": t["speaking_rate"],
            })
    known_g = [r for r in rows if r["gender"] in ("female", "male")]
    known_p = [r for r in known_g if r["pitch_bin"] is not None and r["pitch_hz"] > 0]
    known_r = [r for r in rows if r["rate_bin"] is not None and r["rate"] > 0]

    def acc(rs: list[dict[str, Any]], a: str, b: str) -> float | None:
        return round(float(np.mean([r[a] == r[b] for r in rs])), 4) if rs else None

    pitch_err = [abs(r["pred_pitch_hz"] - r["pitch_hz"]) / r["pitch_hz"] for r in known_p if r["pred_pitch_hz"]]
    return {
        "segments": len(rows), "segments_known_gender": len(known_g),
        "gender_accuracy": acc(known_g, "gender", "pred_gender"),
        "gender_accuracy_f0_rule": acc(known_g, "gender", "rule_gender"),
        "pitch_bin_accuracy": acc(known_p, "pitch_bin", "pred_pitch_bin"), "pitch_bin_segments": len(known_p),
        "rate_bin_accuracy": acc(known_r, "rate_bin", "pred_rate_bin"), "rate_bin_segments": len(known_r),
        "pitch_median_rel_error": round(float(np.median(pitch_err)), 4) if pitch_err else None,
        "by_snr_db": {f"{snr:g}": {"segments": len(rs), "gender": acc(rs, "gender", "pred_gender"),
                                   "pitch_bin": acc([r for r in rs if r in known_p], "pitch_bin", "pred_pitch_bin"),
                                   "rate_bin": acc(rs, "rate_bin", "pred_rate_bin")}
                      for snr in sorted({r["snr_db"] for r in known_g})
                      for rs in [[r for r in known_g if r["snr_db"] == snr]]},
        "rtf": round(t_tag / max(t_audio, 1e-9), 4),
        "errors": [r for r in known_g if r["gender"] != r["pred_gender"] or r["pitch_bin"] != r["pred_pitch_bin"]
                   or r["rate_bin"] != r["pred_rate_bin"]][:40],
    }


def bench_heldout_gender(n: int, seed: int) -> dict[str, Any]:
    from speechlm.pipeline.gender import ASTERISK, HELDOUT_VOICES, load_classifier
    from speechlm.pipeline.tags import pitch_track

    clf = load_classifier()
    out: dict[str, Any] = {}
    for voice, gender in HELDOUT_VOICES.items():
        files = sorted((ASTERISK / voice).glob("*.wav"))
        if not files:
            continue
        ok = rule = used = 0
        for p in random.Random(f"{seed}:{voice}").sample(files, min(n, len(files))):
            x = _load(p)
            if x.size < SR // 2:
                continue
            track = pitch_track(x, SR)
            pred = "female" if clf.predict_proba(x, SR, track=track) >= 0.5 else "male"
            ok += pred == gender
            rule += ("female" if track.size and np.median(track) > F0_RULE_HZ else "male") == gender
            used += 1
        out[voice] = {"gender": gender, "clips": used, "accuracy": round(ok / max(used, 1), 4),
                      "accuracy_f0_rule": round(rule / max(used, 1), 4)}
    total = sum(v["clips"] for v in out.values())
    overall = {"clips": total,
               "accuracy": round(sum(v["accuracy"] * v["clips"] for v in out.values()) / max(total, 1), 4),
               "accuracy_f0_rule": round(sum(v["accuracy_f0_rule"] * v["clips"] for v in out.values())
                                         / max(total, 1), 4)}
    return {"voices": out, "overall": overall}


def to_markdown(r: dict[str, Any]) -> str:
    """The docs' tables (benchmarks/render_tables.py renders them into docs/pipeline_models.md)."""
    c = r["constructed"]
    lines = [f"Constructed set: {c['files']} files, {c['hours'] * 60:.1f} min, {c['segments']} segments, seed "
             f"{c['seed']} (`speechlm.pipeline.construct`).",
             *_denoise_lines(r["denoise"], "constructed set: each file's first {sec:g} s of speech with its own "
                             "background stem, {clips} clips per SNR"),
             *_denoise_lines(r.get("denoise_heldout"), "held-out human recordings ({src}), never trained on, "
                             "under the constructed set's backgrounds, {clips} clips of {sec:g} s per SNR")]
    z = r["diarise"]["der"]
    sc = r["diarise"]["speaker_count_right"]
    lines += ["", f"**Diarisation** (DER, 0.25 s collar, overlapped speech scored; speaker count right in "
              f"{sc['right']}/{sc['files']} files; diarisation wall-clock RTF "
              f"{r['diarise']['rtf']['diarise']:.3f})", "",
              "| condition | DER | miss | false alarm | confusion |", "|---|---|---|---|---|"]
    names = {"mixture": "ours, Silero VAD on the mixture", "denoised": "ours, on the denoised mixture",
             "oracle_vad": "ours, reference speech regions (clustering only)",
             "one_speaker": "anchor: one speaker, Silero VAD"}
    for k, v in z.items():
        lines.append(f"| {names.get(k, k)} | {v['der']:.3f} | {v['miss']:.3f} | {v['false_alarm']:.3f} "
                     f"| {v['confusion']:.3f} |")
    t = r["tags"]
    h = r["heldout_gender"]
    dn = t.get("denoised")
    lines += ["", f"**Tags** on {t['segments']} non-overlapping segments of the mixtures ({t['segments_known_gender']} "
              "with a known gender; reference text for the rate), cut from the mixture and from the denoised "
              "mixture (what the pipeline tags: its tag stage reads the denoised audio when the denoiser runs, "
              "the default)", "",
              "| tag | ours, denoised mixture (the pipeline) | ours, mixture | anchor (F0 > 165 Hz rule, mixture) "
              "| target |", "|---|---|---|---|---|",
              f"| gender accuracy | {_f3(dn, 'gender_accuracy')} | {t['gender_accuracy']:.3f} "
              f"| {t['gender_accuracy_f0_rule']:.3f} | >= 0.95 |",
              f"| pitch bin accuracy ({t['pitch_bin_segments']} segments) | {_f3(dn, 'pitch_bin_accuracy')} "
              f"| {t['pitch_bin_accuracy']:.3f} | | >= 0.90 |",
              f"| rate bin accuracy ({t['rate_bin_segments']} segments) | {_f3(dn, 'rate_bin_accuracy')} "
              f"| {t['rate_bin_accuracy']:.3f} | | >= 0.90 |",
              f"| median relative pitch error | {_f3(dn, 'pitch_median_rel_error')} "
              f"| {t['pitch_median_rel_error']:.3f} | | |",
              f"| gender, held-out real recordings ({h['overall']['clips']} clean clips) | – "
              f"| {h['overall']['accuracy']:.3f} | {h['overall']['accuracy_f0_rule']:.3f} | >= 0.95 |", "",
              "| held-out voice | gender | clips | ours | F0 rule |", "|---|---|---|---|---|"]
    for k, v in h["voices"].items():
        lines.append(f"| {k} | {v['gender']} | {v['clips']} | {v['accuracy']:.3f} | {v['accuracy_f0_rule']:.3f} |")
    lines += ["", "By input SNR (segments with a known gender; denoised mixture / mixture):", "",
              "| SNR dB | segments | gender | pitch bin | rate bin |", "|---|---|---|---|---|"]
    for k, v in t["by_snr_db"].items():
        d = (dn or {}).get("by_snr_db", {}).get(k, {})
        lines.append(f"| {k} | {v['segments']} | {_f3(d, 'gender')} / {_f3(v, 'gender')} "
                     f"| {_f3(d, 'pitch_bin')} / {_f3(v, 'pitch_bin')} | {_f3(d, 'rate_bin')} / {_f3(v, 'rate_bin')} |")
    return "\n".join(lines)


DENOISER_NAMES = {"deepfilternet3": "DeepFilterNet3", "speechlm": "denoise_default (ours)",
                  "spectral_gate": "spectral gate (anchor)"}


def _denoise_lines(d: dict[str, Any] | None, what: str) -> list[str]:
    """The SI-SDR table of one denoising part (none when the part was not run)."""
    if not d:
        return []
    first = d["by_snr_db"][next(iter(d["by_snr_db"]))]
    systems = [k for k in first if k not in ("input", "clips")]
    what = what.format(sec=d["seconds_per_clip"], clips=first["clips"], src=", ".join(d.get("sources", [])))
    lines = ["", f"**Denoising, {what}** (SI-SDR dB of the clean speech; in brackets the improvement over the input)",
             "", "| input SNR dB | input | " + " | ".join(DENOISER_NAMES.get(k, k) for k in systems) + " |",
             "|---|---|" + "---|" * len(systems)]
    for k, v in d["by_snr_db"].items():
        lines.append(f"| {k} | {v['input']:.2f} | "
                     + " | ".join(f"{v[m]:.2f} ({v[m] - v['input']:+.2f})" for m in systems) + " |")
    lines.append("| x real time, one thread | | " + " | ".join(
        f"{1 / max(d['rtf'][m], 1e-9):.0f}x" for m in systems) + " |")
    by = d.get("gain_by_background")
    if by:
        snrs = list(next(iter(by.values())))
        lines += ["", "SI-SDR gain by background (dB; " + " / ".join(DENOISER_NAMES.get(m, m) for m in systems)
                  + "):", "", "| background | " + " | ".join(f"{k} dB" for k in snrs) + " |",
                  "|---|" + "---|" * len(snrs)]
        for kind, per in by.items():
            lines.append(f"| {kind} | " + " | ".join(" / ".join(f"{per[k][m]:+.1f}" for m in systems)
                                                     for k in snrs) + " |")
    return lines


def _f3(d: dict[str, Any] | None, key: str) -> str:
    x = (d or {}).get(key)
    return "–" if x is None else f"{x:.3f}"


def main() -> int:
    import torch

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="runs/bench/pipeline_models")
    p.add_argument("--files", type=int, default=30)
    p.add_argument("--seconds", type=float, default=40.0, help="length of each constructed file")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--snr", type=float, action="append", help="denoising input SNRs (default 0 5 10 20)")
    p.add_argument("--sisdr-seconds", type=float, default=8.0)
    p.add_argument("--heldout-n", type=int, default=40)
    parts_names = ["denoise", "denoise_heldout", "diarise", "tags", "heldout_gender"]
    p.add_argument("--only", action="append", choices=parts_names)
    p.add_argument("--redo", action="append", choices=parts_names)
    p.add_argument("--real", default="data/real", help="scripts/get_real_speech.sh's folder (held-out recordings)")
    p.add_argument("--heldout-clips", type=int, default=30, help="held-out human clips for denoising")
    p.add_argument("--listen", type=int, default=6, help="held-out clips on the listening page OUT/listen/ (0: none)")
    p.add_argument("--json", default=str(ROOT / "docs" / "results" / "pipeline_models__default.json"))
    a = p.parse_args()
    torch.set_num_threads(1)
    from speechlm.pipeline.construct import build_constructed

    out = Path(a.out)
    root = out / "constructed"
    tpath = root / "truth.json"
    params = {"files": a.files, "seconds": a.seconds, "seed": a.seed}
    stamp = root / "params.json"
    if not (tpath.is_file() and stamp.is_file() and json.loads(stamp.read_text()) == params):
        t0 = time.time()
        build_constructed(root, a.files, a.seed, a.seconds)
        stamp.write_text(json.dumps(params))
        print(f"constructed {a.files} files in {time.time() - t0:.0f} s", file=sys.stderr)
    truth = json.loads(tpath.read_text())
    t0 = time.time()
    res: dict[str, Any] = {
        "kind": "pipeline_models",
        "constructed": {"files": len(truth["files"]), "seed": a.seed,
                        "hours": round(sum(f["duration"] for f in truth["files"]) / 3600, 4),
                        "segments": sum(len(f["segments"]) for f in truth["files"])},
    }
    parts = {
        "denoise": lambda: bench_denoise(truth, root, a.snr or [0.0, 5.0, 10.0, 20.0], a.sisdr_seconds),
        "denoise_heldout": lambda: bench_denoise_heldout(Path(a.real), a.heldout_clips, a.sisdr_seconds,
                                                         a.snr or [0.0, 5.0, 10.0, 20.0], a.seed),
        "diarise": lambda: bench_der(truth, root),
        "tags": lambda: bench_tags(truth, root),
        "heldout_gender": lambda: bench_heldout_gender(a.heldout_n, a.seed),
    }
    computed = False
    for name, fn in parts.items():  # each part's result is kept in OUT/<part>.json; --redo PART recomputes it
        if a.only and name not in a.only:
            continue
        cache = out / f"{name}.json"
        if cache.is_file() and name not in (a.redo or []):
            res[name] = json.loads(cache.read_text())
        else:
            res[name] = fn()
            computed = True
            cache.write_text(json.dumps(res[name], indent=1))
        print(f"{name} done ({time.time() - t0:.0f} s)", file=sys.stderr)
    if a.listen and not (out / "listen" / "index.html").is_file():
        page = listening_page(out / "listen", Path(a.real), a.listen, a.sisdr_seconds, [0.0, 5.0, 10.0], a.seed)
        print(f"listening page: {page}", file=sys.stderr)
    if a.only:
        return 0
    res["wall_s"] = round(time.time() - t0, 1) if computed else None  # None: every part reused from OUT
    res["command"] = ".venv/bin/python benchmarks/pipeline_models_bench.py " + " ".join(sys.argv[1:])
    print(to_markdown(res))
    if a.json:
        from speechlm.utils.atomic import atomic_write_text

        atomic_write_text(a.json, json.dumps(res, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
