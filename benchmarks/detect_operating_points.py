"""Operating points of a detector for `speechlm detect --threshold T`: thresholds that flag a given share of the
corpus's human validation clips (every view, as `speechlm detector combine` sets the shipped threshold), and the
rates they give on the held-out bench clips (benchmarks/detect_bench.py's corpus ``test`` split).

    .venv/bin/python benchmarks/detect_operating_points.py runs/detect/corpus [--model M]

Prints a markdown table (docs/safety.md#detection quotes it).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from speechlm.safety.clip_stats import clip_logit
from speechlm.safety.detector import Detector
from speechlm.safety.detector_data import UNSEEN, load_corpus
from speechlm.safety.detector_train import TrainConfig, _view_wavs, clip_scores, featurize

STYLED = ("tts_styled", "vc")


def valid_human_scores(det: Detector, corpus: Path) -> np.ndarray:
    """File scores of the human valid clips' views, as `combine` computes them for the threshold."""
    cfg = TrainConfig(detector=det.config)
    clips = [c for c in load_corpus(corpus, ("valid",)) if c.label == 0 and c.source not in UNSEEN]
    items = featurize(clips, cfg, log=lambda s: None)["valid"]
    p = np.clip(clip_scores(det.net, [v for it in items for v in it.views]), 1e-7, 1 - 1e-7)
    w = det.config.net.clip_weight
    if not w:
        return p
    wavs = [v for i, c in enumerate(clips) for v in _view_wavs(c, cfg, np.random.default_rng([cfg.seed, i]))]
    head = np.array([clip_logit(det.net.clip_head, v, det.config.features) for v in wavs])
    return 1 / (1 + np.exp(-((1 - w) * np.log(p / (1 - p)) + w * head)))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("corpus")
    p.add_argument("--model", default=None)
    args = p.parse_args()
    torch.set_num_threads(1)
    det = Detector.load(args.model)
    valid = valid_human_scores(det, Path(args.corpus))
    test = load_corpus(Path(args.corpus), ("test",))
    score = np.array([det.score_wav(c.wav, 16000).synthetic_score for c in test])
    label = np.array([c.label for c in test])
    source = np.array([c.source for c in test])
    seen = (label == 1) & ~np.isin(source, [*UNSEEN, *STYLED])
    unseen = (label == 1) & np.isin(source, list(UNSEEN))
    print(f"`{det.model_id}`: {len(valid)} human validation views, {int((label == 0).sum())} held-out humans, "
          f"{int(seen.sum())} seen and {int(unseen.sum())} never-seen synthetic clips\n")
    print("| human validation clips flagged | threshold | held-out humans flagged | seen generators missed "
          "| never-seen generators missed |")
    print("|---|---|---|---|---|")
    for fa in (0.02, 0.01, 0.005, 0.002):
        t = float(np.quantile(valid, 1 - fa))
        print(f"| {fa:.1%} | {t:.3f} | {(score[label == 0] >= t).mean():.1%} | {(score[seen] < t).mean():.1%} "
              f"| {(score[unseen] < t).mean():.1%} |")


if __name__ == "__main__":
    main()
