"""Synthetic-speech detector benchmark: EER on held-out voices, texts and recordings, per generator, on generators
the detector never saw, through random transmission channels, a band-limit shortcut check, and speed.

    .venv/bin/speechlm detector build --real data/real -o runs/detect/corpus
    .venv/bin/python benchmarks/detect_bench.py runs/detect/corpus [--model detector_default]

Human clips are the held-out recordings (asterisk-core en/fr/es/it, pocketsphinx-testdata, codec2-examples less
its two coded samples); synthetic clips are the corpus's ``test`` split (held-out espeak-ng variants and flite
voices, held-out texts for Piper and speechlm's TTS, codec_sf resynthesis of held-out recordings, the never-seen
festival, codec_pitch, Codec 2 resynthesis of held-out recordings and codec2-examples' two coded samples, and,
reported apart, speechlm's TTS with a style description and its voice conversion of held-out
recordings). Anchors in the same run: a logistic regression on each clip's LFB mean and standard deviation
(60 bands whatever the model uses: the classic LFCC + linear back-end, trained here on the same training clips),
and AASIST's published EER on
ASVspoof 2019 LA (0.83 %, a different data set: quoted, not run).

Writes docs/results/detect_bench__default.json (rendered into docs/safety.md by benchmarks/render_tables.py).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
ANCHOR_BANDS = 60  # the anchor's LFB bands (LFCC-style; fixed across models)
AASIST = {"name": "AASIST (Jung et al. 2022), ASVspoof 2019 LA eval, published", "eer": 0.0083}


def _manifest_paths(real: Path) -> dict[str, str]:
    """Clip id -> original audio file, from the real-speech manifests (empty when there are none)."""
    out = {}
    for m in sorted(real.glob("*/manifest.jsonl")):
        for line in m.read_text(encoding="utf-8").splitlines():
            row = json.loads(line)
            out[row["id"]] = row["audio"]
    return out


def _scores(det, clips) -> tuple[np.ndarray, list[np.ndarray], float, float]:
    """File scores of clips, each clip's segment scores, their total audio seconds and the seconds the detector
    took (one thread)."""
    out, segs, audio_s, t = [], [], 0.0, 0.0
    for c in clips:
        t0 = time.perf_counter()
        r = det.score_wav(c.wav, 16000)
        t += time.perf_counter() - t0
        out.append(r.synthetic_score)
        segs.append(np.array([s.synthetic_score for s in r.segments]))
        audio_s += len(c.wav) / 16000
    return np.array(out), segs, audio_s, t


def lfb_lr_anchor(train_clips, cfg) -> callable:
    """Logistic regression on per-clip LFB statistics (std of each band and of its frame-to-frame change)."""
    from speechlm.safety.clip_stats import fit_head, spread
    from speechlm.safety.detector import lfb
    from speechlm.safety.detector_data import channel_augment

    rng = np.random.default_rng(0)
    xs, ys = [], []
    for c in train_clips:
        for wav in (c.wav, channel_augment(c.wav[: 3 * 16000], rng)[0]):
            xs.append(spread(lfb(wav, cfg)))
            ys.append(float(c.label))
    head = fit_head(torch.stack(xs), torch.tensor(ys), l2=1e-3, max_iter=200)

    def score(wav: np.ndarray) -> float:
        with torch.no_grad():
            return float(torch.sigmoid(head(spread(lfb(wav, cfg))[None])[0]))
    return score


def _threshold_rule(model: str | None) -> str:
    """How the model's threshold was set: an ensemble's rule (``speechlm detector combine``), else the valid EER."""
    from speechlm.safety.detector import resolve_model_dir

    meta = json.loads((resolve_model_dir(model) / "config.json").read_text(encoding="utf-8"))
    rule = (meta.get("extra") or {}).get("threshold_rule")
    return rule or "valid EER point"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("corpus")
    p.add_argument("--model", default=None)
    p.add_argument("--out", default=str(ROOT / "docs" / "results" / "detect_bench__default.json"))
    p.add_argument("--no-anchor", action="store_true")
    p.add_argument("--real", default=str(ROOT / "data" / "real"),
                   help="real-speech manifests: the held-out human clips are also scored from their original files")
    args = p.parse_args()
    torch.set_num_threads(1)
    from speechlm.safety.detector import Detector, eer
    from speechlm.safety.detector_data import STYLED, UNSEEN, channel_augment, load_corpus, prepare

    det = Detector.load(args.model)
    test = load_corpus(Path(args.corpus), ["test"])
    human = [c for c in test if c.label == 0]
    synth = [c for c in test if c.label == 1]
    # channel condition: every test clip through one seeded random channel, trimmed again like any input
    rng = np.random.default_rng(123)
    chan = [type(c)(prepare(channel_augment(c.wav, rng)[0], 16000), c.label, c.source, c.voice, c.split, c.id)
            for c in test]
    hs, h_segs, h_audio, h_t = _scores(det, human)
    ss, s_segs, s_audio, s_t = _scores(det, synth)
    speed = (h_audio + s_audio) / (h_t + s_t)
    thr = det.threshold
    seen = np.array([c.source not in UNSEEN + STYLED for c in synth])
    styled = np.array([c.source in STYLED for c in synth])
    overall, _ = eer(hs, ss[seen])
    rows = {}
    for src in sorted({c.source for c in synth}):
        m = np.array([c.source == src for c in synth])
        rows[src] = {"n": int(m.sum()), "eer": eer(hs, ss[m])[0], "miss_at_threshold": float((ss[m] < thr).mean()),
                     "unseen": src in UNSEEN, "styled": src in STYLED}
    humans = {}
    for src in sorted({c.source for c in human}):
        m = np.array([c.source == src for c in human])
        humans[src] = {"n": int(m.sum()), "false_alarm_at_threshold": float((hs[m] >= thr).mean())}
    unseen_m = ~seen & ~styled
    cs, _, _, _ = _scores(det, chan)
    cl = np.array([c.label for c in chan])
    cseen = np.array([c.source not in UNSEEN + STYLED for c in chan])
    cunseen = np.array([c.source in UNSEEN for c in chan])
    # shortcut check: synthetic band-limited to a telephone band vs wideband human recordings only
    from speechlm.audio.io import resample

    wide = [c for c in human if c.source in ("human/pocketsphinx_testdata", "human/codec2_examples")
            and _bandwidth_hz(c.wav) > 5000]
    tel = [type(c)(resample(resample(c.wav, 16000, 8000), 8000, 16000), 1, c.source, c.voice, c.split, c.id)
           for c in synth if c.source not in UNSEEN + STYLED]
    ws, _, _, _ = _scores(det, wide)
    ts, _, _, _ = _scores(det, tel)
    # every 2-s segment judged on its own (what `speechlm detect` prints per segment, to find a generated stretch)
    seg_h = np.concatenate(h_segs)
    seg_seen = np.concatenate([x for x, m in zip(s_segs, seen) if m])
    seg_unseen = np.concatenate([x for x, m in zip(s_segs, unseen_m) if m] or [np.zeros(0)])
    # the human clips as a user would score them: from the original files (8-kHz telephone prompts, say), not the
    # corpus's 16-kHz 16-bit copies
    files = _manifest_paths(Path(args.real))
    from_files = [(i, files[c.id]) for i, c in enumerate(human) if c.id in files and Path(files[c.id]).exists()]
    hf = np.array([det.score_file(path).synthetic_score for _, path in from_files])
    result = {
        "kind": "detect_bench", "model": det.model_id, "threshold": thr, "threshold_rule": _threshold_rule(args.model),
        "params": sum(p.numel() for p in det.net.parameters()),
        "n_human": len(human), "n_synthetic": len(synth),
        "eer_seen_generators": overall,
        "eer_all": eer(hs, ss)[0],
        "eer_unseen": eer(hs, ss[unseen_m])[0] if unseen_m.any() else None,
        "false_alarm_at_threshold": float((hs >= thr).mean()), "miss_at_threshold": float((ss < thr).mean()),
        "eer_channel_seen": eer(cs[(cl == 0)], cs[(cl == 1) & cseen])[0],
        "eer_channel_unseen": eer(cs[cl == 0], cs[(cl == 1) & cunseen])[0] if cunseen.any() else None,
        "eer_styled": eer(hs, ss[styled])[0] if styled.any() else None,
        "shortcut_tel_synthetic_vs_wideband_human": {"n_human": len(wide), "n_synthetic": len(tel),
                                                     "eer": eer(ws, ts)[0],
                                                     "miss_at_threshold": float((ts < thr).mean())},
        "segments": {"n_human": len(seg_h), "n_seen": len(seg_seen), "n_unseen": len(seg_unseen),
                     "eer_seen": eer(seg_h, seg_seen)[0],
                     "eer_unseen": eer(seg_h, seg_unseen)[0] if len(seg_unseen) else None,
                     "human_at_threshold": float((seg_h >= thr).mean()),
                     "seen_missed_at_threshold": float((seg_seen < thr).mean())},
        "human_from_files": {"n": len(hf), "false_alarm_at_threshold": float((hf >= thr).mean()) if len(hf) else None,
                             "corpus_copies_false_alarm_at_threshold":
                                 float((hs[[i for i, _ in from_files]] >= thr).mean()) if len(hf) else None,
                             "eer_seen": eer(hf, ss[seen])[0] if len(hf) else None},
        "per_generator": rows, "per_human_source": humans,
        "speed_x_realtime_1_thread": speed, "anchor_published": AASIST,
        "command": "speechlm detector build --real data/real -o runs/detect/corpus && python "
                   "benchmarks/detect_bench.py runs/detect/corpus" + (f" --model {args.model}" if args.model else ""),
    }
    if not args.no_anchor:
        # the anchor's front end stays the classic one (60 bands) whatever the model uses, so it is comparable
        cfg = dataclasses.replace(det.config.features, n_bands=ANCHOR_BANDS)
        train = [c for c in load_corpus(Path(args.corpus), ["train"]) if c.source not in UNSEEN]
        score = lfb_lr_anchor(train, cfg)
        ah = np.array([score(c.wav) for c in human])
        asy = np.array([score(c.wav) for c in synth])
        achan = np.array([score(c.wav) for c in chan])
        result["anchor_lfb_lr"] = {
            "eer_seen_generators": eer(ah, asy[seen])[0],
            "eer_unseen": eer(ah, asy[unseen_m])[0] if unseen_m.any() else None,
            "eer_channel_seen": eer(achan[cl == 0], achan[(cl == 1) & cseen])[0],
            "per_generator": {src: eer(ah, asy[np.array([c.source == src for c in synth])])[0] for src in rows},
        }
    print(to_markdown(result))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


def _bandwidth_hz(wav: np.ndarray, sr: int = 16000) -> float:
    """The frequency below which 99.5 % of the clip's energy lies."""
    spec = np.abs(np.fft.rfft(wav)) ** 2
    c = np.cumsum(spec) / max(spec.sum(), 1e-12)
    return float(np.searchsorted(c, 0.995) * sr / 2 / len(c))


def _pct(x: float | None) -> str:
    return "–" if x is None else f"{100 * x:.2f} %"


def to_markdown(r: dict) -> str:
    a = r.get("anchor_lfb_lr") or {}
    sc = r["shortcut_tel_synthetic_vs_wideband_human"]
    sg = r.get("segments")
    hf = r.get("human_from_files")
    lines = [
        f"`{r['model']}` ({r['params']} parameters), {r['n_human']} held-out human recordings vs {r['n_synthetic']} "
        f"synthetic clips of held-out voices/texts/recordings; threshold {r['threshold']:.3f} "
        f"({r.get('threshold_rule', 'valid EER point')})", "",
        "| condition | ours EER | LFB + logistic regression (anchor, same run) |", "|---|---|---|",
        f"| generators seen in training (held-out voices, texts) | {_pct(r['eer_seen_generators'])} | "
        f"{_pct(a.get('eer_seen_generators'))} |",
        f"| generators never seen ({', '.join(k for k, v in sorted(r['per_generator'].items()) if v['unseen'])}) "
        f"| {_pct(r['eer_unseen'])} | {_pct(a.get('eer_unseen'))} |",
        f"| seen, every clip through a random channel (telephone band / Opus / MP3 / noise) | "
        f"{_pct(r['eer_channel_seen'])} | {_pct(a.get('eer_channel_seen'))} |",
        f"| never seen, through a random channel | {_pct(r['eer_channel_unseen'])} | – |",
        *([f"| every 2-s segment on its own, seen / never seen ({sg['n_human']} human, {sg['n_seen']} + "
           f"{sg['n_unseen']} synthetic segments; human segments at the threshold {_pct(sg['human_at_threshold'])})"
           f" | {_pct(sg['eer_seen'])} / {_pct(sg['eer_unseen'])} | – |"] if sg else []),
        *([f"| speechlm's TTS with a style description and its voice conversion (held-out texts, recordings) | "
           f"{_pct(r['eer_styled'])} | – |"] if r.get("eer_styled") is not None else []),
        *([f"| seen, the {hf['n']} human clips scored from their original files (false alarms at the threshold "
           f"{_pct(hf['false_alarm_at_threshold'])}; from the corpus copies "
           f"{_pct(hf['corpus_copies_false_alarm_at_threshold'])}) "
           f"| {_pct(hf['eer_seen'])} | – |"] if hf and hf.get("n") else []),
        f"| shortcut check: telephone-band synthetic vs wideband human ({sc['n_human']} clips) | {_pct(sc['eer'])} "
        "| – |",
        f"| AASIST, ASVspoof 2019 LA (published, other data) | – | {_pct(r['anchor_published']['eer'])} |", "",
        "| generator | clips | ours EER | missed at threshold | anchor EER |", "|---|---|---|---|---|",
    ]
    for k, v in r["per_generator"].items():
        name = k + (" (never seen)" if v["unseen"] else "")
        lines.append(f"| {name} | {v['n']} | {_pct(v['eer'])} | {_pct(v['miss_at_threshold'])} | "
                     f"{_pct((a.get('per_generator') or {}).get(k))} |")
    lines += ["", "| human source | clips | false alarms at threshold |", "|---|---|---|"]
    lines += [f"| {k} | {v['n']} | {_pct(v['false_alarm_at_threshold'])} |" for k, v in r["per_human_source"].items()]
    lines += ["", f"Speed: {r['speed_x_realtime_1_thread']:.0f}x real time on one CPU thread (trim, features, "
              "network; file decoding not counted)."]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
