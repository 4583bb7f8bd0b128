"""Train a source-filter codec from manifests: WORLD features, k-means quantisers, refiner, post-filter.

    speechlm codec train --config configs/codec/source_filter.yaml --data a.jsonl --data b.jsonl --out runs/sf

Four steps, all on the CPU: (1) WORLD analysis of up to ``max_hours`` of ``split=train`` speech (worker
processes); (2) the gain range, a 32-entry band-aperiodicity codebook and ``env_stages`` residual k-means stages of
the envelope shape; (3) the refiner, trained to map decoded parameters (a random number of stages per example) to
the unquantised 5-ms mel-cepstra; (4) the spectral post-filter, trained on (decoded audio, original audio) pairs
of ``postfilter_train.hours`` of the same speech at random bitrates. The result is an inference folder
(``OUT/final``) that ``Codec.load`` reads. ``refiner_from`` keeps a codec's codebooks and refiner and trains the
post-filter only.
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
from speechlm.tokenizers.source_filter.postfilter import PostFilterConfig, SpectralPostFilter, frame_log_magnitudes
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
class PostFilterTrainConfig:
    enabled: bool = True
    hours: float = 1.5  # speech decoded for the (decoded, original) pairs
    minutes: float = 18.0  # training time (the number of steps is what fits)
    batch_size: int = 16
    segment_frames: int = 160  # 1.28 s
    lr: float = 1.0e-3
    steps: int = 12000  # at most; training also stops after `minutes`


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
    refiner_from: str | None = None  # a codec folder whose codebooks and refiner to keep: post-filter only
    quantizer: QuantizerConfig = field(default_factory=QuantizerConfig)
    refiner: RefinerConfig = field(default_factory=RefinerConfig)
    train: RefinerTrainConfig = field(default_factory=RefinerTrainConfig)
    postfilter: PostFilterConfig = field(default_factory=PostFilterConfig)
    postfilter_train: PostFilterTrainConfig = field(default_factory=PostFilterTrainConfig)


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


_WORKER_CODECS: dict[str, SourceFilterCodec] = {}


def _postfilter_pair(item: tuple[str, int], codec_dir: str, config: PostFilterConfig
                     ) -> tuple[np.ndarray, np.ndarray, int]:
    """(audio path, bitrate index) -> (log-magnitudes of the decoded audio, of the original: ``[K, F]`` float16,
    the bitrate index); the codec decodes without a post-filter."""
    from speechlm.audio.io import load_audio

    torch.set_num_threads(1)
    if codec_dir not in _WORKER_CODECS:
        _WORKER_CODECS[codec_dir] = SourceFilterCodec.load(codec_dir)
    codec = _WORKER_CODECS[codec_dir]
    codec.use_postfilter = False
    path, rate = item
    x = load_audio(path, sr=SAMPLE_RATE)[0][0]
    y = codec.decode(codec.encode(x, SAMPLE_RATE, bitrate=codec.bitrates[rate]))[0][: len(x)]
    return (frame_log_magnitudes(y, config).astype(np.float16), frame_log_magnitudes(x, config).astype(np.float16),
            rate)


def postfilter_loss(log_est: torch.Tensor, log_ref: torch.Tensor) -> torch.Tensor:
    """L1 between compressed magnitudes (``|X| ** 0.3``, as speech enhancement masks are trained) plus 0.1 x L1
    between log-magnitudes floored at -9 (quiet bins still count a little)."""
    compressed = (torch.exp(0.3 * log_est) - torch.exp(0.3 * log_ref)).abs().mean()
    return compressed + 0.1 * (log_est.clamp(min=-9.0) - log_ref.clamp(min=-9.0)).abs().mean()


def train_postfilter(codec_dir: str, n_rates: int, paths: list[str], config: PostFilterConfig,
                     tcfg: PostFilterTrainConfig, seed: int, workers: int) -> tuple[SpectralPostFilter, dict]:
    """Decode ``paths`` at random bitrates (indices below ``n_rates``) with the codec in ``codec_dir`` (worker
    processes), then train the post-filter to move the decoded log-magnitudes towards the originals'
    (:func:`postfilter_loss`)."""
    from tqdm import tqdm

    rng = np.random.default_rng(seed)
    if n_rates > config.n_conditions:
        raise SpeechLMError(f"the post-filter has {config.n_conditions} conditions for {n_rates} bitrates")
    items = [(p, int(rng.integers(n_rates))) for p in paths]
    t0 = time.time()
    with ProcessPoolExecutor(max_workers=max(1, workers)) as pool:
        pairs = list(tqdm(pool.map(partial(_postfilter_pair, codec_dir=codec_dir, config=config), items, chunksize=8),
                          total=len(items), desc="post-filter pairs", unit="utt"))
    t_pairs = time.time() - t0
    pairs = [p for p in pairs if len(p[0]) >= 32]
    dec = np.concatenate([p[0] for p in pairs])
    ref = np.concatenate([p[1] for p in pairs])
    lens = np.array([len(p[0]) for p in pairs])
    rates = np.array([p[2] for p in pairs])
    starts = np.concatenate([[0], np.cumsum(lens)[:-1]])
    model = SpectralPostFilter(config)
    opt = torch.optim.AdamW(model.parameters(), tcfg.lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, warmup_cosine(max(1, tcfg.steps // 50), tcfg.steps, 0.05))
    losses, t1 = [], time.time()
    bar = tqdm(range(tcfg.steps), desc="post-filter", unit="step")
    for _ in bar:
        if time.time() - t1 > tcfg.minutes * 60:
            break
        u = rng.integers(len(lens), size=tcfg.batch_size)
        seg = int(min(tcfg.segment_frames, lens[u].min()))
        off = [starts[i] + int(rng.integers(lens[i] - seg + 1)) for i in u]
        y = torch.from_numpy(np.stack([dec[o : o + seg] for o in off]).astype(np.float32))
        x = torch.from_numpy(np.stack([ref[o : o + seg] for o in off]).astype(np.float32))
        loss = postfilter_loss(y + model(y, torch.from_numpy(rates[u])), x)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        losses.append(float(loss.detach()))
        bar.set_postfix(loss=f"{np.mean(losses[-100:]):.4f}")
    base = float(np.mean([postfilter_loss(torch.from_numpy(d.astype(np.float32)),
                                          torch.from_numpy(r.astype(np.float32))) for d, r, _ in pairs[:200]]))
    summary = {"pairs_hours": float(lens.sum() * config.hop / SAMPLE_RATE / 3600), "steps": len(losses),
               "seconds": {"pairs": t_pairs, "train": time.time() - t1}, "final_loss": float(np.mean(losses[-200:])),
               "loss_without_postfilter": base}
    return model.eval(), summary


def train(config: str | None, data: list[str], out: str, overrides: list[str] = ()) -> dict:
    """The whole recipe; writes ``OUT/final`` (inference folder) and ``OUT/summary.json``."""
    from speechlm.train.config import load_config

    cfg = load_config(config, SourceFilterTrainConfig, overrides)
    torch.manual_seed(cfg.seed)
    if cfg.refiner_from:
        return _train_postfilter_only(cfg, list(data), Path(out))
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
    return _finish(codec, cfg, list(data), Path(out), summary)


def _train_postfilter_only(cfg: SourceFilterTrainConfig, data: list[str], out_dir: Path) -> dict:
    """``refiner_from``: that codec's codebooks, refiner and encoder settings, a new post-filter (the summary keeps
    the training summary of the codec it came from)."""
    from speechlm.utils.checkpoint import load_checkpoint

    base = SourceFilterCodec.load(cfg.refiner_from)
    mc = base.config
    codec = SourceFilterCodec(base.quantizer, base.refiner, cfg.name, "", SourceFilterCodec.model_config(
        base.quantizer, base.refiner.config, mc.get("dio_threshold", DIO_THRESHOLD), int(mc.get("rvq_beam", 1)),
        float(mc.get("rvq_tilt", 0.0)), bool(mc.get("f0_fit", False))))
    before = load_checkpoint(cfg.refiner_from).meta.get("extra", {}).get("train_summary") or {}
    return _finish(codec, cfg, data, out_dir, {**before, "refiner_from": str(cfg.refiner_from)})


def _finish(codec: SourceFilterCodec, cfg: SourceFilterTrainConfig, data: list[str], out_dir: Path,
            summary: dict) -> dict:
    """Train the post-filter on ``codec`` (unless disabled) and write ``OUT/final`` and ``OUT/summary.json``."""
    from speechlm.data.manifest import draw_train_utterances
    from speechlm.train.checkpoint import save_checkpoint
    from speechlm.train.config import config_to_dict

    out_dir.mkdir(parents=True, exist_ok=True)

    def save(folder: Path, c: SourceFilterCodec) -> None:
        save_checkpoint(folder, model=c.state_dict(), config={"model": c.config, "recipe": config_to_dict(cfg)},
                        step=cfg.train.steps, extra={"name": cfg.name, "weights": "fp32", "train_summary": summary})

    if cfg.postfilter_train.enabled:
        save(out_dir / "refined", codec)  # what the post-filter's pairs are decoded with
        paths, _ = draw_train_utterances(data, cfg.postfilter_train.hours, cfg.seed + 1)
        postfilter, summary["postfilter"] = train_postfilter(str(out_dir / "refined"), len(codec.bitrates), paths,
                                                             cfg.postfilter, cfg.postfilter_train, cfg.seed,
                                                             cfg.workers)
        model_cfg = SourceFilterCodec.model_config(codec.quantizer, codec.refiner.config, codec.dio_threshold,
                                                   codec.rvq_beam, codec.rvq_tilt, codec.f0_fit, cfg.postfilter)
        codec = SourceFilterCodec(codec.quantizer, codec.refiner, cfg.name, "", model_cfg, postfilter)
    save(out_dir / "final", codec)
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary
