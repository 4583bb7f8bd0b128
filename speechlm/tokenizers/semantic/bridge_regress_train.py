"""Train the regression bridge (:mod:`speechlm.tokenizers.semantic.bridge_regress`): units -> source-filter
parameters of a source-filter codec, conditioned on the voice of another utterance of the same speaker.

    python -m speechlm.tokenizers.semantic.bridge_regress_train --config configs/semantic/bridge_regress.yaml \\
        --data M1 --data M2 ... --out runs/bridge_regress

The data are the classifying bridge's (:func:`~speechlm.tokenizers.semantic.bridge_train.encode_corpus`: units and
codec codes of the ``train`` utterances, cached in ``OUT/data.npz``); the targets are the codes' parameters as the
codec decodes them, so the bridge learns what its quantiser can give back.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from speechlm.errors import SpeechLMError
from speechlm.tokenizers.semantic.bridge_regress import (
    RegressConfig,
    UnitRegressor,
    features_of_codes,
    regress_loss,
    voice_vector,
)
from speechlm.tokenizers.semantic.bridge_train import BridgeTrainConfig, bridge_data
from speechlm.train.config import load_config
from speechlm.train.loop import TrainConfig, Trainer
from speechlm.train.schedule import warmup_cosine
from speechlm.train.seed import seed_everything

KIND = "regress"


@dataclass(frozen=True)
class RegressRecipeConfig:
    model: RegressConfig = field(default_factory=RegressConfig)
    bridge: BridgeTrainConfig = field(default_factory=lambda: BridgeTrainConfig(codec_model="codec_sf",
                                                                                semantic_model="semantic_asr"))
    train: TrainConfig = field(default_factory=TrainConfig)


def corpus_features(data: dict[str, np.ndarray], codec) -> tuple[np.ndarray, np.ndarray]:
    """(features ``[N, F]`` of every frame, one voice vector per utterance ``[U, n_voice]``) from the codes."""
    feats, voices = [], []
    n_mcep = int(codec.quantizer.env_codebooks.shape[2]) + 1  # the gain, then the envelope shape
    for s, n in zip(data["starts"], data["lengths"]):
        f = features_of_codes(codec, data["codes"][:, s : s + n])
        feats.append(f)
        voices.append(voice_vector(f, n_mcep))
    return np.concatenate(feats), np.stack(voices)


class RegressDataset(torch.utils.data.Dataset):
    """Item ``i`` (seeded by i): a crop of an utterance (units ``[T]``, features ``[T, F]``, valid ``[T]``) and the
    voice vector of another utterance of its speaker (itself when it has none)."""

    def __init__(self, data: dict[str, np.ndarray], feats: np.ndarray, voices: np.ndarray, n_items: int,
                 frames: int, seed: int) -> None:
        self.d, self.feats, self.voices, self.n_items = data, feats, voices, n_items
        self.frames, self.seed = frames, seed
        self.p = data["lengths"] / data["lengths"].sum()
        self.by_spk = {int(s): np.nonzero(data["speaker"] == s)[0] for s in np.unique(data["speaker"])}

    def __len__(self) -> int:
        return self.n_items

    def __getitem__(self, idx: int):
        rng = np.random.default_rng([self.seed, idx])
        i = int(rng.choice(len(self.p), p=self.p))
        same = self.by_spk[int(self.d["speaker"][i])]
        others = same[same != i]
        j = int(rng.choice(others)) if len(others) else i
        length, start = int(self.d["lengths"][i]), int(self.d["starts"][i])
        off = int(rng.integers(0, max(length - self.frames, 0) + 1))
        f = min(self.frames, length)
        units = np.zeros(self.frames, np.int64)
        feat = np.zeros((self.frames, self.feats.shape[1]), np.float32)
        units[:f] = self.d["units"][start + off : start + off + f]
        feat[:f] = self.feats[start + off : start + off + f]
        valid = np.zeros(self.frames, bool)
        valid[:f] = True
        return (torch.from_numpy(units), torch.from_numpy(self.voices[j]), torch.from_numpy(feat),
                torch.from_numpy(valid))


def train(config: str | Path | None, manifests: Sequence[str], out_dir: str | Path, overrides: Sequence[str] = (),
          show_progress: bool = True) -> dict:
    from speechlm.tokenizers.codec.api import Codec
    from speechlm.train.checkpoint import load_checkpoint, save_checkpoint
    from speechlm.train.distributed import ShardedBatchSampler

    cfg = load_config(config, RegressRecipeConfig, overrides)
    b = cfg.bridge
    if b.num_threads:
        torch.set_num_threads(b.num_threads)
    seed_everything(cfg.train.seed)
    out = Path(out_dir)
    if not hasattr(Codec.load(b.codec_model), "quantizer"):  # before any encoding
        raise SpeechLMError(f"{b.codec_model}: the regression bridge needs a source-filter codec (codec_sf)")
    semantic, codec, data = bridge_data(b, manifests, out, cfg.train.seed, show_progress)
    ids = {"semantic_id": semantic.tokenizer_id, "codec_id": codec.tokenizer_id}
    feats, voices = corpus_features(data, codec)
    hours = float(data["lengths"].sum()) / semantic.frame_rate / 3600
    n_bap = int(codec.quantizer.ap_codebook.shape[1])
    model_cfg = dataclasses.replace(cfg.model, n_units=semantic.cardinality, n_mcep=feats.shape[1] - 2 - n_bap,
                                    n_bap=n_bap)
    cfg = dataclasses.replace(cfg, model=model_cfg)
    model = UnitRegressor(model_cfg)
    model.set_stats(feats, voices)
    opt = torch.optim.AdamW(model.parameters(), lr=b.lr, betas=(0.9, 0.98), weight_decay=0.01)
    total = cfg.train.max_steps
    sched = torch.optim.lr_scheduler.LambdaLR(opt, warmup_cosine(b.warmup_steps, total, 0.05))
    ds = RegressDataset(data, feats, voices, total * b.batch_size, b.target_frames, cfg.train.seed)
    loader = torch.utils.data.DataLoader(ds, batch_sampler=ShardedBatchSampler(len(ds), b.batch_size,
                                                                               seed=cfg.train.seed))
    meta = {**ids, "semantic_model": b.semantic_model, "codec_model": b.codec_model, "kind": KIND}
    summary = {"manifests": [str(m) for m in manifests], "train_hours": round(hours, 3)}
    trainer = Trainer(out, cfg.train, model=model, optimizer=opt, scheduler=sched, loss_fn=regress_loss,
                      model_config={**dataclasses.asdict(cfg), "bridge_meta": meta}, data_summary=summary)
    n_params = sum(p.numel() for p in model.parameters())
    print(f"regression bridge: {n_params / 1e6:.2f} M params, {hours:.2f} h, "
          f"{math.ceil(len(ds) / b.batch_size)} steps", flush=True)
    result = trainer.fit(loader)
    ckpt = load_checkpoint(result.checkpoint)
    final = save_checkpoint(out / "final", model={k: v.half() if k.endswith("weight") or k.endswith("bias") else v
                                                  for k, v in ckpt.state_dict.items()},
                            config=ckpt.config, step=ckpt.step, extra={"name": b.name, **meta}, data_summary=summary)
    return {**result.metrics, "final": str(final)}


def main(argv: list[str] | None = None) -> int:
    from speechlm.train.config import recipe_parser

    p = recipe_parser("Train the regression bridge (units -> source-filter parameters).", config_required=False)
    a = p.parse_args(argv)
    print(train(a.config, a.data, a.out, a.set))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
