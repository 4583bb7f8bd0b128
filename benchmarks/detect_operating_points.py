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

from speechlm.safety.detector import Detector
from speechlm.safety.detector_data import UNSEEN, load_corpus
from speechlm.safety.detector_train import view_scores

STYLED = ("tts_styled", "vc")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("corpus")
    p.add_argument("--model", default=None)
    args = p.parse_args()
    torch.set_num_threads(1)
    det = Detector.load(args.model)
    humans = [c for c in load_corpus(Path(args.corpus), ("valid",)) if c.label == 0 and c.source not in UNSEEN]
    valid = view_scores(det.net, det.config, humans, log=lambda s: None)
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
