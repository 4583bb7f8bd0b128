"""The semantic tokenizer recipe (HuBERT at small scale), all stages in one resumable run.

``speechlm semantic train --config configs/semantic/default.yaml --data MANIFEST [...] --out DIR``:

1. features of the ``train`` utterances (up to ``max_hours``) in memory: log-mel (encoder input) and MFCC;
2. iteration-1 targets: mini-batch k-means (``mfcc_clusters``) over MFCCs -> ``DIR/mfcc_kmeans`` (itself a
   usable tokenizer, the baseline); or, with ``targets_model``, the units of an existing semantic tokenizer
   (HuBERT's iteration 2);
3. the masked-prediction encoder on the shared :class:`~speechlm.train.Trainer` (``DIR/checkpoints``, resumes);
4. mini-batch k-means (``clusters``) over layer ``layer`` of the trained encoder -> ``DIR/tokenizer``, the
   semantic tokenizer (encoder up to that layer + centroids; load it with ``SemanticTokenizer.load(DIR)``).

Metrics in ``DIR/metrics.jsonl``: ``mp/loss`` (cross-entropy on masked frames), ``mp/acc``, ``valid/acc``.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from speechlm.errors import SpeechLMError
from speechlm.tokenizers.semantic.encoder import EncoderConfig, MaskedPredictionEncoder, layer_features, span_mask
from speechlm.tokenizers.semantic.features import SAMPLE_RATE, encoder_input, mfcc_features, vtlp_matrix
from speechlm.tokenizers.semantic.kmeans import assign, minibatch_kmeans
from speechlm.train.config import load_config
from speechlm.train.loop import TrainConfig, Trainer
from speechlm.train.schedule import warmup_cosine
from speechlm.train.seed import seed_everything


@dataclass(frozen=True)
class SemanticTrainConfig:
    """Recipe settings (the loop's own are in ``train:``, the encoder's sizes in ``model:``)."""

    batch_size: int = 8
    crop_frames: int = 150  # 50 Hz frames per training crop (3 s)
    lr: float = 6e-4
    warmup_steps: int = 300
    final_lr_ratio: float = 0.05
    mask_prob: float = 0.065
    mask_span: int = 10
    mfcc_clusters: int = 100
    targets_model: str = ""  # a semantic tokenizer folder: its units are the targets (iteration 2)
    init: str = ""  # warm start: a semantic run/tokenizer folder whose encoder seeds this one (the head restarts)
    vtlp: float = 0.0  # speaker perturbation: the student's input is warped by alpha in [1 - vtlp, 1 + vtlp]
    clusters: int = 500
    layer: int = 4  # k-means over the output of this transformer layer
    kmeans_steps: int = 300
    kmeans_batch: int = 10000
    kmeans_max_frames: int = 400000  # frames kept for the final k-means (a random subset)
    max_hours: float = 8.0
    valid_utts: int = 24
    num_threads: int = 1
    name: str = "semantic"


@dataclass(frozen=True)
class SemanticRecipeConfig:
    """What ``configs/semantic/*.yaml`` hold."""

    model: EncoderConfig = field(default_factory=EncoderConfig)
    semantic: SemanticTrainConfig = field(default_factory=SemanticTrainConfig)
    train: TrainConfig = field(default_factory=TrainConfig)


# ---- data ----------------------------------------------------------------------------------------------


@dataclass
class FeaturePool:
    """Per-utterance features, concatenated: mel ``[n_mels, 2N]`` (float16), mfcc ``[N, 39]``, frame offsets."""

    mel: np.ndarray
    mfcc: np.ndarray
    starts: np.ndarray
    lengths: np.ndarray

    @property
    def hours(self) -> float:
        return float(self.lengths.sum()) / 50 / 3600

    def utterance_mel(self, i: int) -> np.ndarray:
        s, n = int(self.starts[i]), int(self.lengths[i])
        return self.mel[:, 2 * s : 2 * (s + n)].astype(np.float32)


def load_pool(manifests: Sequence[str], split: str, max_hours: float, seed: int, show_progress: bool = True,
              max_utts: int | None = None) -> FeaturePool:
    """Features of the ``split`` utterances of ``manifests`` (shuffled, up to ``max_hours`` / ``max_utts``)."""
    from tqdm import tqdm

    from speechlm.audio.io import load_audio
    from speechlm.data.manifest import manifest_root, read_manifest

    items = []
    for m in manifests:
        root = manifest_root(m)
        items += [(u.audio_path(root), u.duration) for u in read_manifest(m) if u.split == split]
    rng = np.random.default_rng(seed)
    rng.shuffle(items)
    chosen, total = [], 0.0
    for path, dur in items:
        if total >= max_hours * 3600 or (max_utts is not None and len(chosen) >= max_utts):
            break
        chosen.append(path)
        total += dur
    mels, mfccs, lengths = [], [], []
    for path in tqdm(chosen, desc=f"features ({split})", disable=not show_progress, unit="file"):
        try:
            wav, _ = load_audio(path, sr=SAMPLE_RATE)
        except SpeechLMError as exc:  # one bad file must not stop a long run
            print(f"skipping {path}: {exc}", flush=True)
            continue
        x = np.clip(wav.mean(0), -1, 1)
        if len(x) < 1600:  # < 0.1 s: nothing to learn from
            continue
        mfccs.append(mfcc_features(x))
        mels.append(encoder_input(x).astype(np.float16))
        lengths.append(len(mfccs[-1]))
    if not lengths:
        raise SpeechLMError(f"no usable {split} audio in {', '.join(map(str, manifests))}")
    lengths_a = np.array(lengths)
    starts = np.concatenate([[0], np.cumsum(lengths_a)[:-1]])
    return FeaturePool(np.concatenate(mels, axis=1), np.concatenate(mfccs), starts, lengths_a)


class CropDataset(torch.utils.data.Dataset):
    """Item ``i``: a deterministic (seeded by i) crop -> (mel ``[n_mels, 2F]``, targets ``[F]``; -100 = pad)."""

    def __init__(self, pool: FeaturePool, targets: np.ndarray, n_items: int, frames: int, seed: int,
                 vtlp: float = 0.0) -> None:
        self.pool, self.targets, self.n_items, self.frames, self.seed = pool, targets, n_items, frames, seed
        self.p = pool.lengths / pool.lengths.sum()
        self.vtlp = vtlp

    def __len__(self) -> int:
        return self.n_items

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        rng = np.random.default_rng([self.seed, i])
        u = int(rng.choice(len(self.p), p=self.p))
        n = int(self.pool.lengths[u])
        off = int(rng.integers(0, max(n - self.frames, 0) + 1))
        f = min(self.frames, n)
        s = int(self.pool.starts[u]) + off
        mel = np.zeros((self.pool.mel.shape[0], 2 * self.frames), np.float32)
        mel[:, : 2 * f] = self.pool.mel[:, 2 * s : 2 * (s + f)]
        if self.vtlp > 0:  # ContentVec-style: the input's voice moves, the (clean-audio) targets do not
            mel[:, : 2 * f] = vtlp_matrix(float(rng.uniform(1 - self.vtlp, 1 + self.vtlp))) @ mel[:, : 2 * f]
        tgt = np.full(self.frames, -100, np.int64)
        tgt[:f] = self.targets[s : s + f]
        return torch.from_numpy(mel), torch.from_numpy(tgt)


# ---- features of a trained encoder ---------------------------------------------------------------------


def pool_features(model: MaskedPredictionEncoder, pool: FeaturePool, layer: int, max_frames: int, seed: int,
                  show_progress: bool = True) -> np.ndarray:
    """Layer features of whole utterances of ``pool`` (random ones, up to ``max_frames`` frames) ``[N, dim]``."""
    from tqdm import tqdm

    order = np.random.default_rng(seed).permutation(len(pool.lengths))
    feats, total = [], 0
    model.eval()
    for i in tqdm(order, desc=f"layer-{layer} features", disable=not show_progress, unit="utt"):
        if total >= max_frames:
            break
        feats.append(layer_features(model, pool.utterance_mel(int(i)), layer))
        total += len(feats[-1])
    return np.concatenate(feats)


# ---- saving tokenizers ---------------------------------------------------------------------------------


def save_tokenizer(dest: str | Path, *, centroids: np.ndarray, name: str, features: str,
                   encoder: MaskedPredictionEncoder | None = None, layer: int = 0, half: bool = True,
                   data_summary: dict | None = None, step: int = 0, asr: torch.nn.Module | None = None) -> Path:
    """Write a semantic tokenizer folder: ``model.safetensors`` (``centroids`` [K, D] and, for
    ``features="encoder"``, the encoder's weights up to ``layer``; for ``features="asr"``, the ASR's front end
    and blocks up to ``layer``, an :class:`~speechlm.tokenizers.semantic.supervised.ASRLayers`) +
    ``config.json``."""
    from speechlm.train.checkpoint import save_checkpoint

    sd: dict[str, torch.Tensor] = {"centroids": torch.from_numpy(np.asarray(centroids, np.float32))}
    cfg: dict = {"features": features, "n_clusters": int(len(centroids)), "layer": int(layer)}
    if encoder is not None:
        enc_cfg = dataclasses.replace(encoder.cfg, layers=layer)
        cfg["encoder"] = dataclasses.asdict(enc_cfg)
        for k, v in encoder.state_dict().items():
            if k.startswith(("head.", "out_norm.")):
                continue
            if k.startswith("layers.") and int(k.split(".")[1]) >= layer:
                continue
            sd[f"encoder.{k}"] = v.detach().clone()
    if asr is not None:
        cfg["asr"] = {"model": asr.cfg.to_dict(), "features": dict(asr.features)}
        if getattr(asr, "norm", "none") != "none":  # absent = "none", so older folders keep their id
            cfg["asr"]["norm"] = asr.norm
        if getattr(asr, "adapter", None) is not None:
            cfg["asr"]["adapter"] = asr.adapter.cfg.to_dict()
        sd.update({f"asr.{k}": v.detach().clone() for k, v in asr.state_dict().items()})
    sd = {k: v.half() if half and v.is_floating_point() else v for k, v in sd.items()}
    return save_checkpoint(dest, model=sd, config={"semantic": cfg}, step=step,
                           extra={"name": name, "kind": "semantic"}, data_summary=data_summary)


# ---- the recipe ----------------------------------------------------------------------------------------


def make_loss_fn(cfg: SemanticRecipeConfig):
    s = cfg.semantic

    def loss_fn(model: MaskedPredictionEncoder, batch: tuple[torch.Tensor, torch.Tensor]) -> dict:
        mel, tgt = batch
        mask = span_mask(tgt.shape[0], tgt.shape[1], s.mask_prob, s.mask_span).to(mel.device)
        logits = model.logits(mel, mask)
        sel = mask & (tgt >= 0)
        loss = torch.nn.functional.cross_entropy(logits[sel], tgt[sel])
        acc = (logits[sel].argmax(-1) == tgt[sel]).float().mean()
        return {"mp/loss": loss, "mp/acc": acc.detach()}

    return loss_fn


@torch.no_grad()
def masked_accuracy(model: MaskedPredictionEncoder, pool: FeaturePool, targets: np.ndarray, cfg: SemanticTrainConfig
                    ) -> float:
    """Masked-frame accuracy over the utterances of ``pool`` (fixed masks)."""
    gen = torch.Generator().manual_seed(0)
    hit = tot = 0
    for i in range(len(pool.lengths)):
        n = int(pool.lengths[i])
        mel = torch.from_numpy(pool.utterance_mel(i))[None]
        mask = span_mask(1, n, cfg.mask_prob, cfg.mask_span, gen)
        pred = model.logits(mel, mask).argmax(-1)
        t = torch.from_numpy(targets[pool.starts[i] : pool.starts[i] + n])[None]
        hit += int((pred[mask] == t[mask]).sum())
        tot += int(mask.sum())
    return hit / max(tot, 1)


def train(config: str | Path | None, manifests: Sequence[str], out_dir: str | Path, overrides: Sequence[str] = (),
          show_progress: bool = True) -> dict:
    """Run (or resume) every stage; returns the final metrics and the tokenizer folder. See the module doc."""
    from speechlm.tokenizers.semantic.api import SemanticTokenizer

    cfg = load_config(config, SemanticRecipeConfig, overrides)
    s = cfg.semantic
    if s.num_threads:
        torch.set_num_threads(s.num_threads)
    if not manifests:
        raise SpeechLMError("give at least one --data MANIFEST")
    if not 1 <= s.layer <= cfg.model.layers:
        raise SpeechLMError(f"semantic.layer={s.layer} must be in 1..{cfg.model.layers}")
    out = Path(out_dir)
    seed_everything(cfg.train.seed)
    t0 = time.time()
    pool = load_pool(manifests, "train", s.max_hours, cfg.train.seed, show_progress)
    try:
        vpool = load_pool(manifests, "valid", 1.0, 0, False, max_utts=s.valid_utts)
    except SpeechLMError:
        vpool = load_pool(manifests, "train", 1.0, 1, False, max_utts=s.valid_utts)
    print(f"data: {pool.hours:.2f} h of features ({time.time() - t0:.0f} s)", flush=True)
    summary = {"manifests": [str(m) for m in manifests], "train_hours": round(pool.hours, 3)}

    # iteration-1 (or -2) targets
    if s.targets_model:
        teacher = SemanticTokenizer.load(s.targets_model)
        if teacher.features_kind == "asr":
            raise SpeechLMError(f"{s.targets_model}: ASR units as masked-prediction targets are not supported "
                                "(the feature pool keeps mel and MFCC, not audio)")
        targets = np.concatenate([teacher.units_from_mel(pool.utterance_mel(i)) if teacher.uses_encoder
                                  else assign(pool.mfcc[pool.starts[i]: pool.starts[i] + n], teacher.centroids)
                                  for i, n in enumerate(pool.lengths)])
        vtargets = np.concatenate([teacher.units_from_mel(vpool.utterance_mel(i)) if teacher.uses_encoder
                                   else assign(vpool.mfcc[vpool.starts[i]: vpool.starts[i] + n], teacher.centroids)
                                   for i, n in enumerate(vpool.lengths)])
        n_targets = teacher.cardinality
    else:
        mk = out / "mfcc_kmeans"
        if (mk / "model.safetensors").exists():
            centroids = SemanticTokenizer.load(mk).centroids
        else:
            km = minibatch_kmeans(pool.mfcc, s.mfcc_clusters, batch_size=s.kmeans_batch, steps=s.kmeans_steps,
                                  seed=cfg.train.seed, show_progress=show_progress)
            centroids = km.centroids
            save_tokenizer(mk, centroids=centroids, name=f"{s.name}_mfcc{s.mfcc_clusters}", features="mfcc",
                           half=False, data_summary=summary)
        targets, vtargets = assign(pool.mfcc, centroids), assign(vpool.mfcc, centroids)
        n_targets = s.mfcc_clusters
    model_cfg = dataclasses.replace(cfg.model, n_targets=int(n_targets))
    cfg = dataclasses.replace(cfg, model=model_cfg)

    model = MaskedPredictionEncoder(model_cfg)
    if s.init:
        _warm_start(model, s.init)
    opt = torch.optim.AdamW(model.parameters(), lr=s.lr, betas=(0.9, 0.98), weight_decay=0.01)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, warmup_cosine(s.warmup_steps, cfg.train.max_steps,
                                                                 s.final_lr_ratio))
    ds = CropDataset(pool, targets, cfg.train.max_steps * s.batch_size, s.crop_frames, cfg.train.seed, s.vtlp)
    from speechlm.train.distributed import ShardedBatchSampler

    loader = torch.utils.data.DataLoader(ds, batch_sampler=ShardedBatchSampler(len(ds), s.batch_size,
                                                                               seed=cfg.train.seed))
    trainer = Trainer(out, cfg.train, model=model, optimizer=opt, scheduler=sched, loss_fn=make_loss_fn(cfg),
                      eval_fn=lambda tr: {"valid/acc": masked_accuracy(tr.model, vpool, vtargets, s)},
                      model_config=cfg, data_summary=summary)
    n_params = sum(p.numel() for p in model.parameters())
    print(f"encoder: {n_params / 1e6:.2f} M params, {n_targets} targets, {cfg.train.max_steps} steps", flush=True)
    result = trainer.fit(loader)
    model.eval()
    final = {"valid/acc": masked_accuracy(model, vpool, vtargets, s)}

    dest, inertia = _cluster_and_save(model, pool, s, s.layer, s.clusters, out / "tokenizer", summary,
                                      result.step, cfg.train.seed, show_progress)
    return {**result.metrics, **final, "kmeans/inertia": inertia, "tokenizer": str(dest)}


def _warm_start(model: MaskedPredictionEncoder, source: str) -> None:
    """Copy the encoder weights of a semantic run (newest checkpoint) or tokenizer folder into ``model``; the
    prediction head (other targets) and what a tokenizer does not ship (the final norm) keep their fresh init."""
    from speechlm.tokenizers.semantic.api import resolve_model_dir
    from speechlm.train.checkpoint import latest_checkpoint, load_checkpoint

    p = Path(source)
    ck = latest_checkpoint(p) if (p / "checkpoints").is_dir() else None
    ckpt = load_checkpoint(ck if ck is not None else resolve_model_dir(source))
    sd = {k.removeprefix("encoder."): v.float() if v.is_floating_point() else v for k, v in ckpt.state_dict.items()}
    own = model.state_dict()
    take = {k: v for k, v in sd.items() if k in own and not k.startswith("head.") and v.shape == own[k].shape}
    if not take:
        raise SpeechLMError(f"semantic.init={source}: no encoder weights fit this model")
    model.load_state_dict({**own, **take})
    print(f"warm start from {source}: {len(take)} of {len(own)} tensors", flush=True)


def _cluster_and_save(model: MaskedPredictionEncoder, pool: FeaturePool, s: SemanticTrainConfig, layer: int,
                      clusters: int, dest: Path, summary: dict, step: int, seed: int, show_progress: bool
                      ) -> tuple[Path, float]:
    feats = pool_features(model, pool, layer, s.kmeans_max_frames, seed, show_progress)
    km = minibatch_kmeans(feats, clusters, batch_size=s.kmeans_batch, steps=s.kmeans_steps, seed=seed,
                          show_progress=show_progress)
    path = save_tokenizer(dest, centroids=km.centroids, name=s.name, features="encoder", encoder=model,
                          layer=layer, data_summary={**summary, "layer": layer, "clusters": clusters}, step=step)
    return path, km.inertia


def cluster(run: str | Path, manifests: Sequence[str], dest: str | Path, layer: int, clusters: int,
            name: str | None = None, max_hours: float | None = None, show_progress: bool = True) -> Path:
    """Iteration-2 units from an existing run: k-means (``clusters``) over layer ``layer`` of the run's newest
    encoder checkpoint, on the ``train`` split of ``manifests`` -> a tokenizer folder ``dest``."""
    from speechlm.train.checkpoint import latest_checkpoint, load_checkpoint

    ck_path = latest_checkpoint(run)
    if ck_path is None:
        raise SpeechLMError(f"{run}: no encoder checkpoint")
    ckpt = load_checkpoint(ck_path)
    cfg = load_config(ckpt.config, SemanticRecipeConfig)
    if not 1 <= layer <= cfg.model.layers:
        raise SpeechLMError(f"layer {layer} must be in 1..{cfg.model.layers}")
    model = MaskedPredictionEncoder(cfg.model)
    model.load_state_dict(ckpt.state_dict)
    model.eval()
    s = dataclasses.replace(cfg.semantic, name=name or cfg.semantic.name)
    pool = load_pool(manifests, "train", max_hours or s.max_hours, cfg.train.seed, show_progress)
    summary = {"manifests": [str(m) for m in manifests], "train_hours": round(pool.hours, 3)}
    path, _ = _cluster_and_save(model, pool, s, layer, clusters, Path(dest), summary, ckpt.step, cfg.train.seed,
                                show_progress)
    return path


def main(argv: list[str] | None = None) -> int:
    from speechlm.train.config import recipe_parser

    p = recipe_parser("Train a speechlm semantic tokenizer.")
    a = p.parse_args(argv)
    print(train(a.config, a.data, a.out, a.set))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
