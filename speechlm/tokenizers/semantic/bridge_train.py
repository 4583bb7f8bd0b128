"""Train the semantic-to-codec bridge (see :mod:`speechlm.tokenizers.semantic.bridge`).

``python -m speechlm.tokenizers.semantic.bridge_train --config configs/semantic/bridge.yaml --data MANIFEST
--out DIR``: encodes the ``train`` utterances with the semantic tokenizer and the codec (cached in
``DIR/data.npz``), then trains on (prompt from another utterance of the same speaker, target crop) pairs; each
sample scores one RVQ level, drawn at random (level 1 more often: it is the hardest and carries the most). Exports
``DIR/final`` (fp16), loadable with ``Bridge.load(DIR)``. Metrics: ``bridge/loss``, ``bridge/acc``.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from speechlm.errors import SpeechLMError
from speechlm.tokenizers.semantic.bridge import BridgeConfig, BridgeModel
from speechlm.train.config import load_config
from speechlm.train.loop import TrainConfig, Trainer
from speechlm.train.schedule import warmup_cosine
from speechlm.train.seed import seed_everything


@dataclass(frozen=True)
class BridgeTrainConfig:
    semantic_model: str = "semantic_default"
    codec_model: str = "codec_pitch"
    batch_size: int = 8
    prompt_frames: int = 100
    target_frames: int = 150
    lr: float = 5e-4
    warmup_steps: int = 200
    level1_prob: float = 0.3  # chance a sample scores level 1 (the others share the rest)
    max_hours: float = 3.0
    num_threads: int = 1
    name: str = "bridge_default"


@dataclass(frozen=True)
class BridgeRecipeConfig:
    model: BridgeConfig = field(default_factory=BridgeConfig)
    bridge: BridgeTrainConfig = field(default_factory=BridgeTrainConfig)
    train: TrainConfig = field(default_factory=TrainConfig)


def encode_corpus(manifests: Sequence[str], semantic, codec, max_hours: float, seed: int,
                  show_progress: bool = True) -> dict[str, np.ndarray]:
    """Units and codec codes of the ``train`` utterances, concatenated: ``units [N]``, ``codes [n_q, N]``,
    ``starts``/``lengths`` per utterance, ``speaker`` (int per utterance)."""
    from tqdm import tqdm

    from speechlm.audio.io import load_audio
    from speechlm.data.manifest import manifest_root, read_manifest

    items = []
    for m in manifests:
        root = manifest_root(m)
        items += [(u.audio_path(root), u.duration, f"{m}:{u.speaker}") for u in read_manifest(m)
                  if u.split == "train"]
    np.random.default_rng(seed).shuffle(items)
    units, codes, lengths, spk, total = [], [], [], [], 0.0
    names: dict[str, int] = {}
    for path, dur, speaker in tqdm(items, desc="encoding bridge data", disable=not show_progress, unit="utt"):
        if total >= max_hours * 3600:
            break
        try:
            wav, _ = load_audio(path, sr=codec.sample_rate)
        except SpeechLMError:
            continue
        x = np.clip(wav.mean(0), -1, 1)
        if len(x) < codec.sample_rate // 2:
            continue
        u = semantic.encode(x, codec.sample_rate).codes[0]
        c = codec.encode(x, codec.sample_rate).codes
        n = min(len(u), c.shape[1])
        units.append(u[:n])
        codes.append(c[:, :n])
        lengths.append(n)
        spk.append(names.setdefault(speaker, len(names)))
        total += dur
    if not lengths:
        raise SpeechLMError("no train audio for the bridge")
    la = np.array(lengths)
    return {"units": np.concatenate(units).astype(np.int16), "codes": np.concatenate(codes, 1).astype(np.int16),
            "starts": np.concatenate([[0], np.cumsum(la)[:-1]]), "lengths": la, "speaker": np.array(spk)}


class PairDataset(torch.utils.data.Dataset):
    """Item ``i`` (seeded by i): prompt (units ``[P]``, codes ``[n_q, P]``) from another utterance of the same
    speaker, target (units ``[T]``, codes ``[n_q, T]``, valid ``[T]`` bool) and the level to score."""

    def __init__(self, data: dict[str, np.ndarray], n_items: int, cfg: BridgeTrainConfig, n_q: int, seed: int):
        self.d, self.n_items, self.cfg, self.n_q, self.seed = data, n_items, cfg, n_q, seed
        self.p = data["lengths"] / data["lengths"].sum()
        self.by_spk: dict[int, np.ndarray] = {}
        for s in np.unique(data["speaker"]):
            self.by_spk[int(s)] = np.nonzero(data["speaker"] == s)[0]

    def __len__(self) -> int:
        return self.n_items

    def _crop(self, i: int, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, int]:
        length, start = int(self.d["lengths"][i]), int(self.d["starts"][i])
        off = int(rng.integers(0, max(length - n, 0) + 1))
        f = min(n, length)
        return (self.d["units"][start + off : start + off + f].astype(np.int64),
                self.d["codes"][:, start + off : start + off + f].astype(np.int64), f)

    def __getitem__(self, idx: int):
        rng = np.random.default_rng([self.seed, idx])
        i = int(rng.choice(len(self.p), p=self.p))
        same = self.by_spk[int(self.d["speaker"][i])]
        others = same[same != i]
        j = int(rng.choice(others)) if len(others) else i
        pu, pc, pf = self._crop(j, self.cfg.prompt_frames, rng)
        reps = math.ceil(self.cfg.prompt_frames / pf)  # short prompts are repeated to fill P frames
        pu, pc = np.tile(pu, reps)[: self.cfg.prompt_frames], np.tile(pc, reps)[:, : self.cfg.prompt_frames]
        tu, tc, tf = self._crop(i, self.cfg.target_frames, rng)
        n = self.cfg.target_frames
        units = np.zeros(n, np.int64)
        codes = np.zeros((self.n_q, n), np.int64)
        units[:tf], codes[:, :tf] = tu, tc
        valid = np.zeros(n, bool)
        valid[:tf] = True
        level = 0 if rng.random() < self.cfg.level1_prob else int(rng.integers(1, self.n_q))
        return (torch.from_numpy(units), torch.from_numpy(codes), torch.from_numpy(pu), torch.from_numpy(pc),
                torch.tensor(level), torch.from_numpy(valid))


def loss_fn(model: BridgeModel, batch) -> dict:
    units, codes, pu, pc, level, valid = batch
    logits = model(units, codes, pu, pc, level)
    tgt = codes.gather(1, level[:, None, None].expand(-1, 1, codes.shape[2]))[:, 0]
    loss = torch.nn.functional.cross_entropy(logits[valid], tgt[valid])
    acc = (logits[valid].argmax(-1) == tgt[valid]).float().mean()
    return {"bridge/loss": loss, "bridge/acc": acc.detach()}


def bridge_data(b: BridgeTrainConfig, manifests: Sequence[str], out: Path, seed: int, show_progress: bool = True
                ) -> tuple[Any, Any, dict[str, np.ndarray]]:
    """(semantic tokenizer, codec, :func:`encode_corpus`'s data) for a bridge recipe, the data read from
    ``out/data.npz`` when it was made by the same two tokenizers, else encoded and cached there."""
    from speechlm.tokenizers.codec.api import Codec
    from speechlm.tokenizers.semantic.api import SemanticTokenizer
    from speechlm.utils.atomic import atomic_path

    semantic, codec = SemanticTokenizer.load(b.semantic_model), Codec.load(b.codec_model)
    if abs(semantic.frame_rate - codec.frame_rate) > 1e-6:
        raise SpeechLMError("the bridge needs the semantic tokenizer and the codec on the same frame rate")
    cache = out / "data.npz"
    ids = {"semantic_id": semantic.tokenizer_id, "codec_id": codec.tokenizer_id}
    if cache.exists():
        with np.load(cache, allow_pickle=False) as z:
            if str(z["semantic_id"]) == ids["semantic_id"] and str(z["codec_id"]) == ids["codec_id"]:
                return semantic, codec, {k: z[k] for k in ("units", "codes", "starts", "lengths", "speaker")}
    data = encode_corpus(manifests, semantic, codec, b.max_hours, seed, show_progress)
    out.mkdir(parents=True, exist_ok=True)
    with atomic_path(cache) as tmp, open(tmp, "wb") as f:
        np.savez(f, **data, **{k: np.str_(v) for k, v in ids.items()})
    return semantic, codec, data


def train(config: str | Path | None, manifests: Sequence[str], out_dir: str | Path, overrides: Sequence[str] = (),
          show_progress: bool = True) -> dict:
    from speechlm.tokenizers.base import stream_cardinalities
    from speechlm.train.checkpoint import load_checkpoint, save_checkpoint
    from speechlm.train.distributed import ShardedBatchSampler

    cfg = load_config(config, BridgeRecipeConfig, overrides)
    b = cfg.bridge
    if b.num_threads:
        torch.set_num_threads(b.num_threads)
    seed_everything(cfg.train.seed)
    out = Path(out_dir)
    semantic, codec, data = bridge_data(b, manifests, out, cfg.train.seed, show_progress)
    ids = {"semantic_id": semantic.tokenizer_id, "codec_id": codec.tokenizer_id}
    hours = float(data["lengths"].sum()) / semantic.frame_rate / 3600
    cards = tuple(stream_cardinalities(codec))
    model_cfg = dataclasses.replace(cfg.model, n_units=semantic.cardinality, n_q=codec.num_codebooks,
                                    codebook_size=codec.cardinality,
                                    cards=() if len(set(cards)) == 1 else cards)
    cfg = dataclasses.replace(cfg, model=model_cfg)
    model = BridgeModel(model_cfg)
    opt = torch.optim.AdamW(model.parameters(), lr=b.lr, betas=(0.9, 0.98), weight_decay=0.01)
    total = cfg.train.max_steps
    sched = torch.optim.lr_scheduler.LambdaLR(opt, warmup_cosine(b.warmup_steps, total, 0.05))
    ds = PairDataset(data, total * b.batch_size, b, model_cfg.n_q, cfg.train.seed)
    loader = torch.utils.data.DataLoader(ds, batch_sampler=ShardedBatchSampler(len(ds), b.batch_size,
                                                                               seed=cfg.train.seed))
    meta = {**ids, "semantic_model": b.semantic_model, "codec_model": b.codec_model}
    summary = {"manifests": [str(m) for m in manifests], "train_hours": round(hours, 3)}
    trainer = Trainer(out, cfg.train, model=model, optimizer=opt, scheduler=sched, loss_fn=loss_fn,
                      model_config={**dataclasses.asdict(cfg), "bridge_meta": meta}, data_summary=summary)
    print(f"bridge: {sum(p.numel() for p in model.parameters()) / 1e6:.2f} M params, {hours:.2f} h", flush=True)
    result = trainer.fit(loader)
    ckpt = load_checkpoint(result.checkpoint)
    final = save_checkpoint(out / "final", model={k: v.half() for k, v in ckpt.state_dict.items()},
                            config=ckpt.config, step=ckpt.step, extra={"name": b.name, **meta},
                            data_summary=summary)
    return {**result.metrics, "final": str(final)}


def main(argv: list[str] | None = None) -> int:
    from speechlm.train.config import recipe_parser

    p = recipe_parser("Train the semantic-to-codec bridge.", config_required=False)
    a = p.parse_args(argv)
    print(train(a.config, a.data, a.out, a.set))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
