"""Train a source-filter codec from manifests: WORLD features, k-means quantisers, the envelope refiner.

    speechlm codec train --config configs/codec/source_filter.yaml --data a.jsonl --data b.jsonl --out runs/sf

Three steps, all on the CPU: (1) WORLD analysis of up to ``max_hours`` of ``split=train`` speech (worker
processes); (2) the gain range, a 32-entry band-aperiodicity codebook and ``env_stages`` residual k-means stages of
the envelope shape; (3) the refiner, trained to map decoded parameters (a random number of stages per example) to
the unquantised 5-ms mel-cepstra. The result is an inference folder (``OUT/final``) that ``Codec.load`` reads.
"""

from __future__ import annotations

import dataclasses
import json
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import numpy as np
import torch

from speechlm.errors import SpeechLMError
from speechlm.tokenizers.source_filter.codec import HOP_FRAMES, SourceFilterCodec
from speechlm.tokenizers.source_filter.quantizer import SourceFilterQuantizer
from speechlm.tokenizers.source_filter.refiner import EnvelopeRefiner, RefinerConfig, refiner_input
from speechlm.tokenizers.source_filter.world import DIO_THRESHOLD, SAMPLE_RATE, Frames, analyze, to_token_rate
from speechlm.train.schedule import warmup_cosine


@dataclass
class QuantizerConfig:
    env_stages: int = 6
    env_codebook_size: int = 1024
    ap_codebook_size: int = 32
    gain_levels: int = 32
    kmeans_steps: int = 200
    lloyd_iters: int = 8
    silence_percentile: float = 10.0  # frames quieter than this percentile of gain don't train the envelope
    rvq_passes: int = 3  # rounds of joint re-fitting of the envelope stages after the greedy k-means
    f0_mid_levels: int = 0  # levels of the f0.mid stream (10-ms F0 knots at the top bitrate); 0: none
    f0_mid_step_cents: float = 90.0  # one level of f0.mid


@dataclass
class RefinerTrainConfig:
    steps: int = 3000
    batch_size: int = 32
    segment_frames: int = 64
    lr: float = 1.0e-3


@dataclass
class SourceFilterTrainConfig:
    kind: str = "source_filter"
    name: str = "codec_sf"
    max_hours: float = 1.6
    workers: int = 2
    seed: int = 0
    dio_threshold: float = DIO_THRESHOLD  # DIO's voicing threshold (world.analyze), recorded in the codec for encoding
    rvq_beam: int = 1  # beam width of the envelope RVQ when encoding (1 = stage by stage), recorded likewise
    rvq_tilt: float = 0.0  # envelope search weight 1 / (1 + k / tilt) of coefficient k (0: all alike), likewise
    f0_fit: bool = False  # token F0 fitted to the analysis contour (world.fit_token_f0), likewise
    quantizer_from: str | None = None  # a codec folder whose codebooks to keep (its token space): refiner only
    quantizer: QuantizerConfig = field(default_factory=QuantizerConfig)
    refiner: RefinerConfig = field(default_factory=RefinerConfig)
    train: RefinerTrainConfig = field(default_factory=RefinerTrainConfig)


def _analyze_file(path: str, dio_threshold: float) -> Frames:
    from speechlm.audio.io import load_audio

    torch.set_num_threads(1)
    wav, _ = load_audio(path, sr=SAMPLE_RATE)
    return analyze(wav[0], dio_threshold=dio_threshold)


def collect_features(manifests: list[str], max_hours: float, workers: int, seed: int,
                     dio_threshold: float = DIO_THRESHOLD) -> list[Frames]:
    """5-ms WORLD frames of a random ``max_hours`` of the manifests' ``split=train`` utterances."""
    from tqdm import tqdm

    from speechlm.data.manifest import draw_train_utterances

    chosen, total = draw_train_utterances(manifests, max_hours, seed)
    with ProcessPoolExecutor(max_workers=max(1, workers)) as pool:
        return list(tqdm(pool.map(partial(_analyze_file, dio_threshold=dio_threshold), chosen, chunksize=8),
                         total=len(chosen),
                         desc=f"WORLD analysis ({total / 3600:.2f} h)", unit="utt"))


def fit_quantizer(tokens: list[Frames], cfg: QuantizerConfig, seed: int) -> SourceFilterQuantizer:
    """k-means codebooks and the gain range from token-rate frames."""
    from speechlm.tokenizers.semantic.kmeans import minibatch_kmeans
    from speechlm.tokenizers.source_filter.quantizer import nearest

    mcep = np.concatenate([t.mcep for t in tokens])
    bap = np.concatenate([t.bap for t in tokens])
    gain = mcep[:, 0]
    gain_range = np.array([np.percentile(gain, 0.5), np.percentile(gain, 99.9)], np.float32)
    ap_codebook = minibatch_kmeans(bap, cfg.ap_codebook_size, steps=cfg.kmeans_steps, lloyd_iters=cfg.lloyd_iters,
                                   seed=seed).centroids
    residual = mcep[gain > np.percentile(gain, cfg.silence_percentile), 1:].astype(np.float32)
    shape = residual.copy()
    books = []
    for s in range(cfg.env_stages):
        km = minibatch_kmeans(residual, cfg.env_codebook_size, steps=cfg.kmeans_steps, lloyd_iters=cfg.lloyd_iters,
                              seed=seed + s, show_progress=True)
        books.append(km.centroids)
        residual = residual - km.centroids[nearest(residual, km.centroids)]
        print(f"envelope stage {s + 1}: residual mse {float((residual ** 2).mean()):.5f}", flush=True)
    books = refine_rvq(shape, np.stack(books).astype(np.float32), cfg.rvq_passes)
    return SourceFilterQuantizer(gain_range, ap_codebook.astype(np.float32), books, cfg.gain_levels,
                                 cfg.f0_mid_levels, cfg.f0_mid_step_cents / 1200.0)


def greedy_rvq(x: np.ndarray, books: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Stage-by-stage nearest entries of ``x [N, D]`` in ``books [S, C, D]`` -> (indices ``[S, N]``, residual)."""
    from speechlm.tokenizers.source_filter.quantizer import nearest

    idx, residual = [], x.copy()
    for book in books:
        i = nearest(residual, book)
        idx.append(i)
        residual -= book[i]
    return np.stack(idx), residual


def refine_rvq(x: np.ndarray, books: np.ndarray, passes: int) -> np.ndarray:
    """Re-fit every stage's entries to what the other stages leave (``passes`` rounds over the stages, each
    entry the mean of its frames' targets under greedy encoding). Greedy stage-wise k-means fits each stage to
    the residual of stages that later change nothing; this lowers the envelope error at every bitrate. A round
    that does not lower the full-rate error is undone."""
    from speechlm.tokenizers.source_filter.quantizer import nearest

    books = books.copy()
    idx, residual = greedy_rvq(x, books)
    best = float((residual ** 2).mean())
    for r in range(passes):
        trial = books.copy()
        for s in range(len(trial)):
            target = residual + trial[s][idx[s]]  # what stage s should reconstruct, the others fixed
            i = nearest(target, trial[s])
            counts = np.bincount(i, minlength=len(trial[s]))
            sums = np.zeros_like(trial[s])
            np.add.at(sums, i, target)
            used = counts > 0
            trial[s][used] = sums[used] / counts[used, None]
            idx[s] = i
            residual = target - trial[s][i]
        t_idx, t_res = greedy_rvq(x, trial)
        err = float((t_res ** 2).mean())
        print(f"RVQ refinement round {r + 1}: full-rate mse {best:.5f} -> {err:.5f}", flush=True)
        if err >= best:
            break
        books, idx, residual, best = trial, t_idx, t_res, err
    return books


def train_refiner(frames: list[Frames], quantizer: SourceFilterQuantizer, rcfg: RefinerConfig,
                  tcfg: RefinerTrainConfig, seed: int, beam: int = 1, tilt: float = 0.0, f0_fit: bool = False
                  ) -> tuple[EnvelopeRefiner, list[float]]:
    """Train the refiner on (decoded parameters with n stages, the unquantised 5-ms mel-cepstra) pairs; the
    n-stage inputs are encoded as the codec encodes at that bitrate (``beam``: the RVQ beam width, ``tilt``: the
    envelope search weighting, ``f0_fit``: the token F0 fitted to the contour)."""
    from tqdm import tqdm

    n_stages = quantizer.n_env_stages
    examples = []  # (per-stage decoded inputs [S, C, T], 5-ms target [T * hop, D])
    for fr in frames:
        tok = to_token_rate(fr, HOP_FRAMES, f0_fit)
        if len(tok) < 8:
            continue
        if beam > 1:
            inputs = np.stack([refiner_input(quantizer.decode(quantizer.encode(tok, n, beam, tilt)))
                               for n in range(1, n_stages + 1)])
        else:
            codes = quantizer.encode(tok, n_stages, 1, tilt)
            inputs = np.stack([refiner_input(quantizer.decode(codes[: 3 + n])) for n in range(1, n_stages + 1)])
        n = len(tok) * HOP_FRAMES
        target = np.concatenate([fr.mcep, np.repeat(fr.mcep[-1:], n - len(fr), 0)]) if n > len(fr) else fr.mcep[:n]
        examples.append((inputs, target.astype(np.float32)))
    model = EnvelopeRefiner(rcfg, HOP_FRAMES, n_stages)
    opt = torch.optim.AdamW(model.parameters(), tcfg.lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, warmup_cosine(max(1, tcfg.steps // 20), tcfg.steps, 0.02))
    rng = np.random.default_rng(seed)
    t = tcfg.segment_frames
    weight = torch.ones(quantizer.env_codebooks.shape[2] + 1)
    weight[0] = 0.5  # the gain is coded on its own; its error matters less than the envelope's shape
    losses = []
    bar = tqdm(range(tcfg.steps), desc="refiner", unit="step")
    for _ in bar:
        xs, ys, ns, ms = [], [], [], []
        for _ in range(tcfg.batch_size):
            inputs, target = examples[rng.integers(len(examples))]
            length = inputs.shape[-1]
            st = int(rng.integers(max(1, length - t + 1)))
            n = int(rng.integers(1, n_stages + 1))
            x = inputs[n - 1, :, st : st + t]
            y = target[st * HOP_FRAMES : (st + t) * HOP_FRAMES]
            pad = t - x.shape[-1]
            mask = np.ones(t * HOP_FRAMES, np.float32)
            if pad:
                x, y = np.pad(x, ((0, 0), (0, pad))), np.pad(y, ((0, pad * HOP_FRAMES), (0, 0)))
                mask[-pad * HOP_FRAMES :] = 0
            xs.append(x), ys.append(y), ns.append(n), ms.append(mask)
        pred = model(torch.from_numpy(np.stack(xs)), torch.tensor(ns))
        err = ((pred - torch.from_numpy(np.stack(ys))) ** 2 * weight).mean(-1)
        mask = torch.from_numpy(np.stack(ms))
        loss = (err * mask).sum() / mask.sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        losses.append(float(loss.detach()))
        bar.set_postfix(loss=f"{np.mean(losses[-50:]):.4f}")
    return model.eval(), losses


def train(config: str | None, data: list[str], out: str, overrides: list[str] = ()) -> dict:
    """The whole recipe; writes ``OUT/final`` (inference folder) and ``OUT/summary.json``."""
    from speechlm.train.checkpoint import save_checkpoint
    from speechlm.train.config import config_to_dict, load_config

    cfg = load_config(config, SourceFilterTrainConfig, overrides)
    torch.manual_seed(cfg.seed)
    t0 = time.time()
    if cfg.quantizer_from:  # checked before the analysis: a wrong folder fails in seconds
        quantizer = SourceFilterCodec.load(cfg.quantizer_from).quantizer
        if quantizer.n_env_stages != cfg.quantizer.env_stages:
            raise SpeechLMError(f"{cfg.quantizer_from} has {quantizer.n_env_stages} envelope stages; the config "
                                f"asks for {cfg.quantizer.env_stages}")
        quantizer = dataclasses.replace(quantizer, f0_mid_levels=cfg.quantizer.f0_mid_levels,
                                        f0_mid_step=cfg.quantizer.f0_mid_step_cents / 1200.0)
    frames = collect_features(list(data), cfg.max_hours, cfg.workers, cfg.seed, cfg.dio_threshold)
    t_feat = time.time() - t0
    if not cfg.quantizer_from:
        quantizer = fit_quantizer([to_token_rate(f, HOP_FRAMES) for f in frames], cfg.quantizer, cfg.seed)
    t_q = time.time() - t0 - t_feat
    refiner, losses = train_refiner(frames, quantizer, cfg.refiner, cfg.train, cfg.seed, cfg.rvq_beam, cfg.rvq_tilt,
                                    cfg.f0_fit)
    codec = SourceFilterCodec(quantizer, refiner, cfg.name, "", SourceFilterCodec.model_config(
        quantizer, cfg.refiner, cfg.dio_threshold, cfg.rvq_beam, cfg.rvq_tilt, cfg.f0_fit))
    summary = {"frames": int(sum(len(f) for f in frames)), "hours": sum(len(f) for f in frames) * 0.005 / 3600,
               "seconds": {"features": t_feat, "quantizer": t_q, "refiner": time.time() - t0 - t_feat - t_q},
               "final_loss": float(np.mean(losses[-100:]))}
    out_dir = Path(out)
    out_dir.mkdir(parents=True, exist_ok=True)
    save_checkpoint(out_dir / "final", model=codec.state_dict(),
                    config={"model": codec.config, "recipe": config_to_dict(cfg)}, step=cfg.train.steps,
                    extra={"name": cfg.name, "weights": "fp32", "train_summary": summary})
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary
