"""How close can a prompted voice get to its speaker through `codec_sf`? Speaker similarity (resemblyzer GE2E
cosine) on development voices, for the recordings themselves, the codec's vocoder, parts of the parameters
degraded one at a time, and the TTS.

    .venv/bin/python benchmarks/voice_similarity_ceiling.py --n 16 --out runs/voice_ceiling.json

Per speaker (trainable real voices with two clips of 3-10 s: fillets-ng cs/nl and the asterisk prompt voices;
never the held-out recordings), clip A is the reference and clip B another utterance:

- ``natural``: B against A (the same-speaker similarity of the recordings);
- ``resynth_A``: A through the vocoder (its 20-ms source-filter parameters, unquantised, as the TTS renders
  them) against A; ``resynth_B``: B so, against A: the ceiling for any model that speaks other words in this voice
  through this vocoder;
- B's parameters with one part degraded, against A: ``f0_flat`` (voiced log-F0 at its mean), ``f0_smooth``
  (0.5-s moving average), ``env_smooth`` (envelope averaged over 5 frames, 100 ms), ``env_flat`` (envelope
  contrast around its mean x 0.7), ``ap_const`` (band aperiodicity at its median), ``fast`` (frames dropped to
  0.8x the length);
- ``tts_prompted``: the default TTS speaking an English sentence with A as the prompt, against A;
  ``tts_plain``: the default voice, against A.

Prints a table of means and writes the per-speaker rows with ``--out``.
"""

from __future__ import annotations

import argparse
import collections
import json
from pathlib import Path

import numpy as np

SR = 16000
SOURCES = ("data/real/fillets_cs/manifest.jsonl", "data/real/fillets_nl/manifest.jsonl",
           "data/real/asterisk_prompts/manifest.jsonl")
TEXTS = ("The quick brown fox jumps over the lazy dog near the river bank.",
         "Please call me back tomorrow morning when you have a moment to talk.",
         "It was a bright cold day in April, and the clocks were striking thirteen.")


def speakers(n: int, seed: int) -> list[tuple[str, str, str]]:
    """(speaker, clip A, clip B) for ``n`` speakers drawn with ``seed``."""
    from speechlm.data.manifest import manifest_root, read_manifest

    by: dict[str, list[str]] = collections.defaultdict(list)
    for m in SOURCES:
        if Path(m).is_file():
            root = manifest_root(m)
            for u in read_manifest(m):
                if 3.0 <= u.duration <= 10.0:
                    by[u.speaker].append(str(u.audio_path(root)))
    names = [s for s in sorted(by) if len(by[s]) >= 2]
    names = list(np.random.default_rng(seed).permutation(names))[:n]
    return [(s, by[s][0], by[s][1]) for s in names]


def degraded(feat: np.ndarray, n_mcep: int) -> dict[str, np.ndarray]:
    """B's parameters ``[T, F]`` with one part degraded at a time (module docstring)."""
    from scipy.ndimage import uniform_filter1d

    m, v = n_mcep, feat[:, n_mcep + 1] > 0.5
    out = {}
    f = feat.copy()
    f[v, m] = f[v, m].mean()
    out["f0_flat"] = f
    f = feat.copy()
    f[v, m] = uniform_filter1d(feat[:, m], 25)[v]
    out["f0_smooth"] = f
    f = feat.copy()
    f[:, :m] = uniform_filter1d(feat[:, :m], 5, axis=0)
    out["env_smooth"] = f
    f = feat.copy()
    mean = feat[v, 1:m].mean(0)
    f[:, 1:m] = mean + (feat[:, 1:m] - mean) * 0.7
    out["env_flat"] = f
    f = feat.copy()
    f[:, m + 2:] = np.median(feat[:, m + 2:], 0)
    out["ap_const"] = f
    idx = np.round(np.arange(0, len(feat), 1.25)).astype(int)
    out["fast"] = feat[idx[idx < len(feat)]]
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=16, help="speakers (default 16)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", default=None, help="write the rows and means as JSON here")
    args = p.parse_args()

    import torch

    from speechlm.audio.io import load_audio, resample
    from speechlm.eval.speaker import cosine_similarity, load_embedder
    from speechlm.lm.acoustic_data import frame_features
    from speechlm.tasks.tts import TTS

    torch.set_num_threads(args.threads)
    spk = speakers(args.n, args.seed)
    if not spk:
        raise SystemExit("no development voices: run scripts/get_real_speech.sh first")
    tts = TTS.load()
    am = tts.am
    emb = load_embedder()

    def embed(w: np.ndarray) -> np.ndarray:
        return emb.embed(resample(w, SR, emb.sample_rate))

    def render(feat: np.ndarray) -> np.ndarray:
        return np.concatenate(list(tts.render(feat)[1]))

    def params(w: np.ndarray) -> np.ndarray:
        return frame_features(np.ascontiguousarray(w, np.float64), am.sub_frames, am.analysis)

    rows = []
    for i, (s, pa, pb) in enumerate(spk):
        a, b = load_audio(pa, sr=SR)[0][0], load_audio(pb, sr=SR)[0][0]
        ea = embed(a)
        fb = params(b)
        row = {"speaker": s, "natural": cosine_similarity(embed(b), ea),
               "resynth_A": cosine_similarity(embed(render(params(a))), ea),
               "resynth_B": cosine_similarity(embed(render(fb)), ea)}
        for k, f in degraded(fb, am.config.n_mcep).items():
            row[k] = cosine_similarity(embed(render(f)), ea)
        text = TEXTS[i % len(TEXTS)]
        row["tts_prompted"] = cosine_similarity(embed(tts.generate(text, prompt=a, prompt_sr=SR).wav), ea)
        row["tts_plain"] = cosine_similarity(embed(tts.generate(text).wav), ea)
        rows.append(row)
        print(s, " ".join(f"{k} {v:.3f}" for k, v in row.items() if k != "speaker"), flush=True)
    keys = [k for k in rows[0] if k != "speaker"]
    means = {k: round(float(np.mean([r[k] for r in rows])), 3) for k in keys}
    print(f"\n{len(rows)} development voices, similarity to clip A (mean)\n")
    print("| " + " | ".join(keys) + " |")
    print("|" + "---|" * len(keys))
    print("| " + " | ".join(f"{means[k]:.3f}" for k in keys) + " |")
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps({"command": "benchmarks/voice_similarity_ceiling.py "
                                                         f"--n {args.n} --seed {args.seed}",
                                              "tts": am.model_id, "means": means, "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
