"""Codec benchmark: our codec at each bitrate vs Opus and Codec2 on the same clips,
plus 1-thread speed next to the published EnCodec 24 kHz architecture (random weights: speed only).

Quality metrics come from :mod:`speechlm.eval.metrics` and :mod:`speechlm.eval.speaker` (``speechlm codec bench``;
measurement code, so it lives in ``eval``, above the tokenizer layer it measures). Writes ``OUT.md`` and ``OUT.json``.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
import types
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from speechlm.errors import MissingDependencyError, SpeechLMError

SR = 16000
OPUS_KBPS = (6, 8, 12)
CODEC2_MODES = ("3200", "1600", "700C")
CODEC2_KBPS = {"3200": 3.2, "1600": 1.6, "700C": 0.7}


def load_clips(
    manifests: Sequence[str], split: str, max_clips: int, max_seconds: float, min_rate: int = 0
) -> list[tuple[str, np.ndarray]]:
    """Evenly spaced clips (``max_clips`` per manifest) of ``split``, mono 16 kHz, <= ``max_seconds``; with
    ``min_rate``, only files recorded at that sample rate or more (16000: wideband only)."""
    from speechlm.audio.io import audio_info, load_audio
    from speechlm.data.manifest import manifest_root, read_manifest

    clips = []
    for m in manifests:
        root = manifest_root(m)
        utts = [u for u in read_manifest(m) if (split == "all" or u.split == split)
                and (not min_rate or audio_info(u.audio_path(root)).sample_rate >= min_rate)]
        if not utts:
            raise SpeechLMError(f"{m}: no utterances with split {split!r}")
        idx = np.unique(np.linspace(0, len(utts) - 1, min(max_clips, len(utts))).round().astype(int))
        for i in idx:
            wav, _ = load_audio(utts[i].audio_path(root), sr=SR)
            clips.append((utts[i].id, wav[0, : int(max_seconds * SR)]))
    return clips


def _run(cmd: list[str]) -> None:
    r = subprocess.run(cmd, capture_output=True)
    if r.returncode != 0:
        raise SpeechLMError(f"{cmd[0]} failed: {r.stderr.decode(errors='replace').strip()[:200]}")


def opus_roundtrip(wav: np.ndarray, kbps: int, tmp: Path) -> tuple[np.ndarray, float]:
    """Opus (opusenc VBR at ``kbps``) -> (decoded 16 kHz wav, actual kbps from the .opus file size)."""
    import soundfile as sf

    sf.write(tmp / "in.wav", wav, SR, subtype="PCM_16")
    _run(["opusenc", "--quiet", "--bitrate", str(kbps), str(tmp / "in.wav"), str(tmp / "x.opus")])
    _run(["opusdec", "--quiet", "--rate", str(SR), str(tmp / "x.opus"), str(tmp / "out.wav")])
    out, _ = sf.read(tmp / "out.wav", dtype="float32")
    return out, _opus_kbps(tmp / "x.opus", len(wav) / SR)


def _opus_kbps(path: Path, seconds: float) -> float:
    """Payload bitrate without Ogg overhead (opusinfo), else from the file size."""
    import re

    if shutil.which("opusinfo"):
        r = subprocess.run(["opusinfo", str(path)], capture_output=True, text=True)
        m = re.search(r"w/o overhead: ([0-9.]+) kbit/s", r.stdout)
        if m:
            return float(m.group(1))
    return path.stat().st_size * 8 / 1000 / seconds


def codec2_roundtrip(wav: np.ndarray, mode: str, tmp: Path) -> tuple[np.ndarray, float]:
    """Codec2 at 8 kHz raw s16 (resampled both ways) -> (16 kHz wav, nominal kbps)."""
    from speechlm.audio.io import resample

    x8 = resample(wav, SR, 8000)
    (tmp / "in.raw").write_bytes((np.clip(x8, -1, 1) * 32767).astype("<i2").tobytes())
    _run(["c2enc", mode, str(tmp / "in.raw"), str(tmp / "x.bit")])
    _run(["c2dec", mode, str(tmp / "x.bit"), str(tmp / "out.raw")])
    y8 = np.frombuffer((tmp / "out.raw").read_bytes(), dtype="<i2").astype(np.float32) / 32768
    return resample(y8, 8000, SR), CODEC2_KBPS[mode]


def _metrics(ref: np.ndarray, deg: np.ndarray, embedder) -> dict[str, float]:
    from speechlm.eval.metrics import f0_metrics, mel_distance, pesq_score, si_sdr, stoi_score
    from speechlm.eval.speaker import speaker_similarity

    n = len(ref)
    deg = np.pad(deg[:n], (0, max(0, n - len(deg))))
    f0 = f0_metrics(ref, deg, SR)
    return {
        "voiced_kept": f0.voiced_kept,
        "voiced_kept_clear": f0.voiced_kept_clear,
        "f0_median_cents": f0.median_cents,
        "pesq_wb": pesq_score(ref, deg, SR),
        "stoi": stoi_score(ref, deg, SR),
        "mel_dist": mel_distance(ref, deg, SR),
        "si_sdr": si_sdr(ref, deg),
        "spk_sim": speaker_similarity(ref, deg, SR, embedder) if embedder is not None else float("nan"),
    }


def _time(fn: Callable[[], object], repeats: int = 1) -> float:
    best = math.inf
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def time_speed(codec, clips: Sequence[np.ndarray], rounds: int = 3) -> dict[str, float]:
    """1-thread real-time factors of our codec (all codebooks) and, when installed, the EnCodec 24 kHz
    architecture (random weights, 6 kbps), timed in interleaved rounds (best of ``rounds``) so both see the
    same machine load."""
    import torch

    from speechlm.audio.io import resample

    total = sum(len(c) for c in clips) / SR
    best: dict[str, float] = {}

    def clock(name: str, fn: Callable[[], object]) -> None:
        best[name] = min(best.get(name, math.inf), _time(fn))

    enc_model = None
    # encodec imports torchaudio at module level only for file I/O we never call; a stub keeps the real torch.
    sys.modules.setdefault("torchaudio", types.ModuleType("torchaudio"))
    try:
        from encodec.model import EncodecModel

        torch.manual_seed(0)
        enc_model = EncodecModel.encodec_model_24khz(pretrained=False).eval()
        enc_model.set_target_bandwidth(6.0)
        xs24 = [torch.from_numpy(resample(c, SR, 24000))[None, None] for c in clips]
    except ImportError:
        pass
    toks = [codec.encode(c, SR) for c in clips]
    with torch.inference_mode():
        frames = [enc_model.encode(x) for x in xs24] if enc_model is not None else []
        for _ in range(rounds):
            clock("ours_encode", lambda: [codec.encode(c, SR) for c in clips])
            clock("ours_decode", lambda: [codec.decode(t) for t in toks])
            if enc_model is not None:
                clock("encodec_encode", lambda: [enc_model.encode(x) for x in xs24])
                clock("encodec_decode", lambda: [enc_model.decode(f) for f in frames])
    out = {k: total / v for k, v in best.items()}
    if enc_model is not None:
        out["encodec_params_m"] = sum(p.numel() for p in enc_model.parameters()) / 1e6
    return out


def run_bench(
    manifests: Sequence[str],
    out: str | os.PathLike,
    model: str | None = None,
    bitrates: Sequence[float] | None = None,
    split: str = "test",
    also: Sequence[str] = (),
    max_clips: int = 40,
    max_seconds: float = 8.0,
    baselines: bool = True,
    speaker: bool = True,
    min_rate: int = 0,
) -> dict:
    """Run the benchmark and write ``out.md`` / ``out.json``; returns the JSON dict."""
    import torch
    from tqdm import tqdm

    from speechlm.tokenizers.codec.api import Codec
    from speechlm.utils.atomic import atomic_write_text

    torch.set_num_threads(1)  # the speed columns are single-thread numbers
    codec = Codec.load(model)
    brs = list(bitrates) if bitrates else codec.bitrates
    clips = load_clips(manifests, split, max_clips, max_seconds, min_rate)
    wavs = [w for _, w in clips]
    total_s = sum(len(w) for w in wavs) / SR
    embedder = None
    if speaker:
        from speechlm.eval.speaker import load_embedder

        embedder = load_embedder(None)
    if baselines:
        missing = [p for p in ("opusenc", "opusdec", "c2enc", "c2dec") if shutil.which(p) is None]
        if missing:
            raise MissingDependencyError(
                f"baselines need {', '.join(missing)} (apt: opus-tools codec2), or pass --no-baselines"
            )

    rows: list[dict] = []
    n_params = codec.num_params
    entropy = entropy_model_or_none(model, codec.tokenizer_id)
    counts = np.zeros((codec.num_codebooks, codec.cardinality))
    codec.encode(wavs[0][:SR], SR)  # warm-up (first-call allocations) before timing
    for other in also:  # other codecs at all their codebooks, in the same run (row RTFs: single passes)
        oc = Codec.load(other)
        oc.encode(wavs[0][:SR], SR)
        rows.append(_roundtrip_row(oc, wavs, None, embedder, oc.name, total_s))
    for br in brs:
        rows.append(_roundtrip_row(codec, wavs, br, embedder, "ours", total_s, counts, entropy))
        if entropy is not None and hasattr(codec, "frame_depth"):
            rows.append(_roundtrip_row(codec, wavs, br, embedder, "ours", total_s, None, entropy, thin=True))

    if baselines:
        with tempfile.TemporaryDirectory() as td:
            tmp = Path(td)
            for name, fn, settings in (
                ("opus", opus_roundtrip, OPUS_KBPS),
                ("codec2", codec2_roundtrip, CODEC2_MODES),
            ):
                for s in settings:
                    per, kbps, t_all = [], [], 0.0
                    for w in tqdm(wavs, desc=f"{name} {s}", file=sys.stderr, leave=False):
                        t = time.perf_counter()
                        y, actual = fn(w, s, tmp)
                        t_all += time.perf_counter() - t
                        kbps.append(actual)
                        per.append(_metrics(w, y, embedder))
                    # External encoders run as processes: one encode+decode time (process start included).
                    rows.append(
                        _row(
                            f"{name} {s}",
                            float(np.mean(kbps)),
                            per,
                            total_s / t_all,
                            float("nan"),
                            float("nan"),
                        )
                    )
    speed = time_speed(codec, wavs) if baselines else {}
    enc = None
    if "encodec_encode" in speed:
        enc = {
            "encode_rtf": speed["encodec_encode"],
            "decode_rtf": speed["encodec_decode"],
            "params_m": speed["encodec_params_m"],
        }

    p = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    ppl = np.exp(-(p * np.log(np.maximum(p, 1e-12))).sum(axis=1))
    result = {
        "clips": len(wavs),
        "seconds": round(total_s, 2),
        "manifests": [str(m) for m in manifests],
        "split": split,
        "model": codec.tokenizer_id,
        "entropy_model": None if entropy is None else entropy.id,
        "params_m": n_params / 1e6,
        "frame_rate": codec.frame_rate,
        "latency_ms": codec.latency_ms,
        "decoder": codec.decoder_name,
        "rows": rows,
        "codebook_perplexity": [round(float(x), 1) for x in ppl] if counts.sum() else None,
        "codebook_size": codec.cardinality,
        "encodec_24k_random": enc,
        "speed_best_of_3": speed,
        "speedup_vs_encodec": None
        if enc is None
        else {
            "encode": speed["ours_encode"] / enc["encode_rtf"],
            "decode": speed["ours_decode"] / enc["decode_rtf"],
        },
        "torch_threads": 1,
    }
    out = Path(out)
    atomic_write_text(out.with_suffix(".json"), json.dumps(result, indent=2) + "\n")
    atomic_write_text(out.with_suffix(".md"), to_markdown(result))
    print(to_markdown(result))
    return result


def entropy_model_or_none(model: str | None, tokenizer_id: str):
    """The token entropy model shipped beside the codec when there is one fitted on its tokens, else None."""
    from speechlm.tokenizers.codec.api import resolve_model_dir
    from speechlm.tokenizers.entropy import EntropyModelError
    from speechlm.tokenizers.packed import entropy_model_for

    try:
        return entropy_model_for(resolve_model_dir(model), tokenizer_id)
    except EntropyModelError:
        return None


def _roundtrip_row(codec, wavs: Sequence[np.ndarray], bitrate: float | None, embedder, label: str,
                   total_s: float, counts: np.ndarray | None = None, entropy=None, thin: bool = False) -> dict:
    """Encode and decode every clip at ``bitrate`` (timed, one pass) -> one table row; with ``counts``
    ``[K, cardinality]``, full-bitrate code usage is added to it; with ``entropy`` (a token entropy model) each
    clip's tokens are also packed, checked to unpack to the same codes, and the payload rate is reported. With
    ``thin``, the tokens are packed as ``codec encode -o X.slc`` does (quiet frames shallower, the codec's
    ``frame_depth``) and what is decoded and measured is what the packed file unpacks to."""
    from tqdm import tqdm

    from speechlm.tokenizers.packed import pack

    per: list[dict[str, float]] = []
    t_enc = t_dec = 0.0
    payload = 0
    for w in tqdm(wavs, desc=f"{label} {bitrate if bitrate is not None else 'all'} kbps", file=sys.stderr,
                  leave=False):
        t = time.perf_counter()
        toks = codec.encode(w, SR, bitrate=bitrate)
        t_enc += time.perf_counter() - t
        if entropy is not None:
            depth = codec.frame_depth(toks.codes) if thin else None
            data, info = pack(toks, entropy, depth)
            want = toks.codes if depth is None else depth.apply(toks.codes)
            if not np.array_equal(entropy.unpack(data[info.header_bytes:], *toks.codes.shape, depth), want):
                raise RuntimeError("packed tokens did not unpack to the codes packed")
            payload += info.payload_bytes
            toks = dataclasses.replace(toks, codes=want)
        t = time.perf_counter()
        y, _ = codec.decode(toks)
        t_dec += time.perf_counter() - t
        per.append(_metrics(w, y, embedder))
        if counts is not None and toks.num_codebooks == codec.num_codebooks:
            for k in range(toks.num_codebooks):
                counts[k] += np.bincount(toks.codes[k].astype(np.int64), minlength=codec.cardinality)
    name = f"{label} {toks.bitrate:g} kbps" + (", quiet frames thinned" if thin else "")
    row = _row(name, toks.bitrate, per, total_s / t_enc, total_s / t_dec, codec.num_params / 1e6)
    if entropy is not None:
        row["packed_kbps"] = round(payload * 8 / total_s / 1000, 3)
    return row


def _row(
    system: str, kbps: float, per: list[dict[str, float]], enc_rtf: float, dec_rtf: float, params_m: float
) -> dict:
    row: dict = {"system": system, "bitrate_kbps": round(float(kbps), 3)}
    for k in per[0]:
        vals = np.array([d[k] for d in per], dtype=float)
        row[k] = float(np.nanmean(vals)) if np.isfinite(vals).any() else float("nan")
    row.update({"encode_rtf": enc_rtf, "decode_rtf": dec_rtf, "params_m": params_m})
    return row


def _f(x: float, nd: int = 2) -> str:
    return "–" if x is None or (isinstance(x, float) and not math.isfinite(x)) else f"{x:.{nd}f}"


def _latency(ms: float | None) -> str:
    return "offline encoder (level-1 units need the whole input)" if ms is None else f"algorithmic latency {ms:g} ms"


TARGETS = ((1.5, "codec2 3200"), (3.0, "opus 6"))  # issue 18: at <= kbps, at least this anchor's PESQ-WB and STOI


def _targets_md(r: dict) -> list[str]:
    """Issue 18's quality targets read on the packed rates: for each bound, our best row (by PESQ-WB) whose packed
    rate is within it, against the anchor of the same run. Nothing when the run has no packed rates or anchor."""
    rows = {x["system"]: x for x in r["rows"]}
    out = []
    for kbps, anchor in TARGETS:
        ours = [x for x in r["rows"] if x["system"].startswith("ours") and x.get("packed_kbps") is not None
                and x["packed_kbps"] <= kbps]
        if not ours or anchor not in rows:
            continue
        best, a = max(ours, key=lambda x: x["pesq_wb"]), rows[anchor]
        ok = [best["pesq_wb"] >= a["pesq_wb"], best["stoi"] >= a["stoi"]]
        verdict = "met" if all(ok) else "STOI met, PESQ-WB not" if ok[1] else "PESQ-WB met, STOI not" if ok[0] \
            else "not met"
        out.append(f"- at ≤ {kbps:g} kbps: {best['system']} packed to {best['packed_kbps']:.2f} kbps, PESQ-WB "
                   f"{best['pesq_wb']:.2f} / STOI {best['stoi']:.3f} against {anchor}'s {a['pesq_wb']:.2f} / "
                   f"{a['stoi']:.3f}: **{verdict}**")
    return ["", "Issue 18's quality targets, on the packed rates:", *out] if out else []


def to_markdown(r: dict) -> str:
    lines = [
        f"# Codec benchmark ({r['clips']} clips, {r['seconds']} s; split {r['split']})",
        "",
        f"model `{r['model']}`: {r['params_m']:.2f} M params, {r['frame_rate']:g} Hz frames, "
        f"{r['decoder']} decoder, {_latency(r['latency_ms'])}; speed on 1 thread "
        "(RTF = seconds of audio per second of compute; for Opus/Codec2 the encode column is one "
        "encode+decode round trip through the command-line tools).",
        "",
        "| system | kbps (Opus: payload) | packed kbps | PESQ-WB | STOI | voiced kept | clearly voiced kept "
        "| F0 err ¢ (median) | mel dist | SI-SDR dB | spk sim | enc ×RT | dec ×RT | params M |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in r["rows"]:
        lines.append(
            f"| {row['system']} | {row['bitrate_kbps']:.2f} | {_f(row.get('packed_kbps'))} "
            f"| {_f(row['pesq_wb'])} | {_f(row['stoi'], 3)} "
            f"| {_f(row.get('voiced_kept', float('nan')), 3)} | {_f(row.get('voiced_kept_clear', float('nan')), 3)} "
            f"| {_f(row.get('f0_median_cents', float('nan')), 1)} "
            f"| {_f(row['mel_dist'], 3)} | {_f(row['si_sdr'], 1)} | {_f(row['spk_sim'], 3)} "
            f"| {_f(row['encode_rtf'], 1)} | {_f(row['decode_rtf'], 1)} | {_f(row['params_m'])} |"
        )
    enc = r.get("encodec_24k_random")
    if enc:
        lines.append(
            f"| EnCodec 24 kHz arch (random weights, 6 kbps) | – | – | – | – | – | – | – | – | – | – "
            f"| {enc['encode_rtf']:.1f} | {enc['decode_rtf']:.1f} | {enc['params_m']:.2f} |"
        )
        s, sp = r["speedup_vs_encodec"], r["speed_best_of_3"]
        lines += [
            "",
            f"Speed, 1 thread, best of 3 interleaved rounds over these clips: ours (all codebooks) encode "
            f"{sp['ours_encode']:.1f}× / decode {sp['ours_decode']:.1f}× real time; EnCodec 24 kHz encode "
            f"{sp['encodec_encode']:.1f}× / decode {sp['encodec_decode']:.1f}×: "
            f"ratio encode {s['encode']:.1f}×, decode {s['decode']:.1f}×. "
            "(Row RTFs are single passes, noisier.)",
        ]
    if r.get("entropy_model"):
        lines += [
            "",
            f"Packed kbps: the same tokens range-coded with the codec's token entropy model "
            f"(`entropy@{r['entropy_model']}`, `speechlm codec encode -o X.slc`), payload bits of every clip "
            "packed on its own over the clips' seconds; each clip's packed tokens were checked to unpack to the "
            "same codes, so the quality columns hold for both rates. Rows with quiet frames thinned: packed as "
            "`codec encode -o X.slc` packs by default (frames 29 / 44 / 58 dB under the clip's 95th-percentile "
            "gain keep 4 / 2 / 1 envelope stages), their quality measured on what the packed file decodes to.",
        ]
    lines += _targets_md(r)
    if r.get("codebook_perplexity"):
        lines += [
            "",
            f"Codebook perplexity on these clips (of {r['codebook_size']}): "
            + ", ".join(f"{p:g}" for p in r["codebook_perplexity"]),
        ]
    return "\n".join(lines) + "\n"
