"""Pick the semantic tokenizer's layer and cluster count on held-out *valid* data (never the test split).

For every transformer layer of a trained masked-prediction encoder (a ``speechlm semantic train`` run): k-means
over that layer's features on train utterances, then phone purity / PNMI (against forced-aligned phones) and the
within-language speaker probe on the valid split. Prints one table and writes JSON.

  python benchmarks/semantic_layers.py --run RUN --data MANIFEST [--data ...] --eval-data MANIFEST \
      --clusters 200 500 -o semantic_layers
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch


def main(argv: list[str] | None = None) -> int:
    from speechlm.eval.tokens.metrics import purity_pnmi, speaker_probe, unit_histograms
    from speechlm.eval.tokens.run import load_clips
    from speechlm.tokenizers.semantic.encoder import MaskedPredictionEncoder
    from speechlm.tokenizers.semantic.features import encoder_input
    from speechlm.tokenizers.semantic.kmeans import assign, minibatch_kmeans
    from speechlm.tokenizers.semantic.train import SemanticRecipeConfig, load_pool
    from speechlm.train.checkpoint import latest_checkpoint, load_checkpoint
    from speechlm.train.config import load_config

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run", required=True, help="semantic train run folder")
    p.add_argument("--data", action="append", required=True, help="train manifests (k-means)")
    p.add_argument("--eval-data", required=True, help="manifest with phonemes; its valid split is scored")
    p.add_argument("--clusters", type=int, nargs="+", default=[500])
    p.add_argument("--train-hours", type=float, default=1.5)
    p.add_argument("--max-frames", type=int, default=200000)
    p.add_argument("--eval-utts", type=int, default=150)
    p.add_argument("-o", "--output", default="semantic_layers")
    a = p.parse_args(argv)
    torch.set_num_threads(1)
    ckpt = load_checkpoint(latest_checkpoint(a.run))
    cfg = load_config(ckpt.config, SemanticRecipeConfig)
    model = MaskedPredictionEncoder(cfg.model)
    model.load_state_dict(ckpt.state_dict)
    model.eval()
    n_layers = cfg.model.layers
    t0 = time.time()
    pool = load_pool(a.data, "train", a.train_hours, 7, show_progress=False)
    keep = np.random.default_rng(0).random(len(pool.mfcc)) < a.max_frames / len(pool.mfcc)
    feats: list[list[np.ndarray]] = [[] for _ in range(n_layers + 1)]
    pos = 0
    with torch.no_grad():
        for i in range(len(pool.lengths)):
            n = int(pool.lengths[i])
            states = model(torch.from_numpy(pool.utterance_mel(i))[None])
            k = keep[pos : pos + n]
            for layer in range(1, n_layers + 1):
                feats[layer].append(states[layer][0].numpy()[k])
            pos += n
    clips = load_clips([a.eval_data], "valid", a.eval_utts, True, show_progress=False)
    eval_states = []
    with torch.no_grad():
        for c in clips:
            eval_states.append(model(torch.from_numpy(encoder_input(c.wav))[None]))
    print(f"features ready ({time.time() - t0:.0f} s): {sum(map(len, feats[1]))} train frames, {len(clips)} clips")
    rows = []
    for layer in range(1, n_layers + 1):
        x = np.concatenate(feats[layer])
        for k in a.clusters:
            km = minibatch_kmeans(x, k, batch_size=10000, steps=300, seed=0)
            codes = [assign(s[layer][0].numpy(), km.centroids)[None] for s in eval_states]
            units = np.concatenate([c[0] for c in codes])
            phones = np.concatenate([c.alignment.frame_labels(50, codes[i].shape[1]) for i, c in enumerate(clips)])
            purity, pnmi = purity_pnmi(units, phones)
            hist = unit_histograms(codes, k)
            langs = sorted({c.lang for c in clips})
            acc = n = 0.0
            for lang in langs:
                idx = [i for i, c in enumerate(clips) if c.lang == lang]
                r = speaker_probe(hist[idx], [clips[i].speaker for i in idx])
                if r.n_speakers >= 2:
                    acc += r.accuracy * r.n_utts
                    n += r.n_utts
            rows.append({"layer": layer, "clusters": k, "purity": purity, "pnmi": pnmi,
                         "speaker_acc_in_lang": acc / n if n else float("nan")})
            spk = rows[-1]["speaker_acc_in_lang"]
            print(f"layer {layer} k={k}: purity {purity:.3f} PNMI {pnmi:.3f} spk-in-lang {spk:.3f}", flush=True)
    with open(a.output + ".json", "w") as f:
        json.dump({"run": a.run, "rows": rows}, f, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
