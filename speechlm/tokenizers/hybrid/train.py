"""Hybrid codec recipe: fine-tune a trained codec with a distillation loss on its first RVQ level.

``python -m speechlm.tokenizers.hybrid.train --config configs/hybrid/default.yaml --data MANIFEST --out DIR``

The codec step (mel + STFT + VQ + adversarial losses, as in :mod:`speechlm.tokenizers.codec.train`) gets one more
term: ``w_distill * (1 - cos(proj(q1), teacher))`` per frame, where ``q1`` is the output of RVQ level 1 (captured
with a forward hook, so the codec's code is untouched) and ``teacher`` the features a semantic tokenizer clusters
(layer ``layer`` of ``speechlm semantic``'s encoder, or the ASR block of a supervised ``semantic:asr``) on the same
audio, frame for frame (both 50 Hz). Level 1 is thus pushed toward content; later levels keep the residual
(speaker, acoustics). ``proj`` (codec latent -> teacher dim) is trained with it and dropped at export. The base
model is a codec run, checkpoint or shipped asset; its discriminator is reused when the checkpoint has one.
``--export speechlm/assets/codec_hybrid`` writes the inference folder (:func:`export_hybrid`; ``speechlm codec
export`` cannot fold a base that was already folded).

``hybrid.level1: units`` makes the other kind of hybrid (:mod:`speechlm.tokenizers.hybrid.units`): level 1 is the
teacher's own unit (a ``semantic:asr`` tokenizer clustered into as many units as the codec has codes), later
levels the residual; there is no distillation term, the recipe fine-tunes the codec around the given level 1.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from speechlm.errors import SpeechLMError
from speechlm.tokenizers.codec.discriminators import CodecDiscriminator
from speechlm.tokenizers.codec.losses import (
    disc_hinge_loss,
    feature_matching_loss,
    gen_hinge_loss,
    multiscale_mel_loss,
    multiscale_stft_loss,
)
from speechlm.tokenizers.codec.train import (
    AudioPool,
    CodecTrainConfig,
    CropDataset,
    codebook_stats,
    load_codec,
)
from speechlm.train.config import load_config
from speechlm.train.loop import TrainConfig, Trainer
from speechlm.train.schedule import warmup_cosine
from speechlm.train.seed import seed_everything


@dataclass(frozen=True)
class HybridConfig:
    """What is distilled into level 1, from what base."""

    base: str = "codec_default"  # a neural codec: asset name, checkpoint or run folder
    teacher: str = "default"  # semantic tokenizer (encoder features)
    w_distill: float = 10.0
    lr: float = 1e-4
    level1: str = "distill"  # "distill" (pull level 1 toward the teacher) or "units" (level 1 = its units)
    init_clips: int = 300  # units mode: 4 s clips over which each unit's embedding starts at the mean latent


@dataclass(frozen=True)
class HybridRecipeConfig:
    """``configs/codec/hybrid*.yaml``: ``hybrid``, ``codec`` (the codec recipe's settings) and ``train``."""

    hybrid: HybridConfig = field(default_factory=HybridConfig)
    codec: CodecTrainConfig = field(default_factory=CodecTrainConfig)
    train: TrainConfig = field(default_factory=TrainConfig)


class Level1Capture:
    """A forward hook on RVQ level 1 keeping its latest output ``[B, D, F]`` (with its gradient path)."""

    def __init__(self, layer: nn.Module) -> None:
        self.out: torch.Tensor | None = None
        self.handle = layer.register_forward_hook(self._hook)

    def _hook(self, module: nn.Module, inputs, output) -> None:
        self.out = output[0]


def teacher_features(teacher, wav: torch.Tensor, frames: int, sr: int) -> torch.Tensor:
    """The teacher's clustered features of a batch: wav ``[B, 1, T]`` at ``sr`` -> ``[B, frames, dim]`` (no grad).

    Any semantic tokenizer with learnt features works: a masked-prediction encoder layer or an ASR block."""
    with torch.no_grad():
        feats = [teacher.features(w[0].cpu().numpy(), sr) for w in wav]
    t = torch.from_numpy(np.stack([f[:frames] for f in feats]))
    return t.to(wav.device)


def teacher_dim(teacher) -> int:
    """Width of the teacher's features (from 0.2 s of silence)."""
    sr = teacher.sample_rate
    return int(teacher.features(np.zeros(sr // 5, dtype=np.float32), sr).shape[1])


def make_train_step(cfg: HybridRecipeConfig, sr: int, teacher, capture: Level1Capture | None):
    """The codec step plus the distillation term (none when ``capture`` is None: the units mode)."""
    c, h = cfg.codec, cfg.hybrid

    def step(trainer: Trainer, wav: torch.Tensor) -> dict[str, float]:
        gen, disc = trainer.modules["codec"], trainer.modules["disc"]
        adv = trainer.step >= c.adv_start
        out = gen(wav)
        metrics: dict[str, float] = {}
        distill = wav.new_zeros(())
        if capture is not None:
            q1 = capture.out  # [B, D, F]
            target = teacher_features(teacher, wav, q1.shape[-1], sr)
            proj = trainer.modules["proj"]
            distill = (1 - F.cosine_similarity(proj(q1.transpose(1, 2)), target, dim=-1)).mean()
            metrics["distill/cos"] = float(1 - distill.detach())
        if adv:
            trainer.optimizers["disc"].zero_grad(set_to_none=True)
            real_logits, _ = disc(wav)
            fake_logits, _ = disc(out.wav.detach())
            d_loss = disc_hinge_loss(real_logits, fake_logits)
            d_loss.backward()
            metrics["adv/disc"] = float(d_loss.detach())
            trainer.clip_and_step("disc", ["disc"])
        mel = multiscale_mel_loss(out.wav, wav, sr, c.mel_n_ffts)
        stft = multiscale_stft_loss(out.wav, wav, c.stft_n_ffts) if c.w_stft else mel.new_zeros(())
        loss = (c.w_mel * mel + c.w_stft * stft + c.w_commit * out.q.commit_loss + c.w_codebook * out.q.codebook_loss
                + h.w_distill * distill)
        if adv:
            fake_logits, fake_feats = disc(out.wav)
            with torch.no_grad():
                _, real_feats = disc(wav)
            g_adv, feat = gen_hinge_loss(fake_logits), feature_matching_loss(real_feats, fake_feats)
            loss = loss + c.w_adv * g_adv + c.w_feat * feat
            metrics["adv/gen"], metrics["adv/feat"] = float(g_adv.detach()), float(feat.detach())
        if not torch.isfinite(loss):
            raise SpeechLMError(f"step {trainer.step + 1}: loss is {float(loss)}; lower the learning rate")
        trainer.optimizers["gen"].zero_grad(set_to_none=True)
        loss.backward()
        trainer.optimizers["disc"].zero_grad(set_to_none=True)
        metrics["train/grad_norm"] = trainer.clip_and_step("gen", [m for m in ("codec", "proj")
                                                                   if m in trainer.modules])
        metrics.update({"loss": float(loss.detach()), "rec/mel": float(mel.detach())})
        return metrics

    return step


def train(config: str | Path | None, manifests: Sequence[str], out_dir: str | Path, overrides: Sequence[str] = (),
          show_progress: bool = True) -> dict:
    from speechlm.tokenizers.semantic.api import SemanticTokenizer
    from speechlm.train.distributed import ShardedBatchSampler

    cfg = load_config(config, HybridRecipeConfig, overrides)
    c, h = cfg.codec, cfg.hybrid
    if c.num_threads:
        torch.set_num_threads(c.num_threads)
    seed_everything(cfg.train.seed)
    teacher = SemanticTokenizer.load(h.teacher)
    if teacher.features_kind == "mfcc":
        raise SpeechLMError(f"teacher {h.teacher!r} has no learnt features (an MFCC tokenizer)")
    if h.level1 not in ("distill", "units"):
        raise SpeechLMError(f"hybrid.level1 must be distill or units, got {h.level1!r}")
    model, model_cfg, disc_state = load_codec(h.base)
    if h.level1 == "units" and model_cfg.unit_level is None:
        from speechlm.tokenizers.hybrid.units import unit_spec

        unit_spec(teacher)  # refuses a teacher without ASR units before the data is read
    if abs(model_cfg.frame_rate - teacher.frame_rate) > 1e-6:
        raise SpeechLMError(f"codec frames ({model_cfg.frame_rate:g} Hz) and teacher frames "
                            f"({teacher.frame_rate:g} Hz) differ")
    t0 = time.time()
    pool = AudioPool.from_manifests(manifests, model_cfg.sample_rate, "train", c.max_hours, cfg.train.seed,
                                    show_progress)
    vrng = np.random.default_rng(12345)
    seg = int(round(c.segment_seconds * model_cfg.sample_rate))
    valid = [torch.from_numpy(pool.crop(vrng, 2 * seg))[None, None] for _ in range(c.valid_clips)]
    print(f"data: {pool.hours:.2f} h ({time.time() - t0:.0f} s)", flush=True)
    disc = CodecDiscriminator(c.mpd_periods, c.mpd_channels, c.stft_disc_ffts, c.stft_disc_channels)
    if disc_state is not None:
        disc.load_state_dict(disc_state)
    modules: dict[str, nn.Module] = {}
    capture = None
    if h.level1 == "units":
        if model_cfg.unit_level is None:  # a plain base: give it the teacher's units as level 1
            from speechlm.tokenizers.hybrid.units import unit_codec_from

            irng = np.random.default_rng(cfg.train.seed + 1)
            clips = [pool.crop(irng, 4 * model_cfg.sample_rate) for _ in range(h.init_clips)]
            model, model_cfg = unit_codec_from(model, model_cfg, teacher, clips, show_progress)
        modules["codec"] = model
    else:
        modules.update(codec=model, proj=nn.Linear(model_cfg.dim, teacher_dim(teacher)))
        capture = Level1Capture(model.quantizer.layers[0])
    params = [p for m in modules.values() for p in m.parameters() if p.requires_grad]
    opt_g = torch.optim.AdamW(params, lr=h.lr, betas=c.betas)
    opt_d = torch.optim.AdamW(disc.parameters(), lr=c.disc_lr * h.lr / c.lr, betas=c.betas)
    n_items = cfg.train.max_steps * c.batch_size
    ds = CropDataset(pool, n_items, seg, c.augment_prob, cfg.train.seed)
    loader = torch.utils.data.DataLoader(ds, batch_sampler=ShardedBatchSampler(len(ds), c.batch_size,
                                                                               seed=cfg.train.seed))
    saved_cfg = {"model": dataclasses.asdict(model_cfg), **{k: v for k, v in
                                                             dataclasses.asdict(cfg).items()}}
    lam = warmup_cosine(c.warmup_steps, cfg.train.max_steps, c.final_lr_ratio)
    scheds = {"gen": torch.optim.lr_scheduler.LambdaLR(opt_g, lam),
              "disc": torch.optim.lr_scheduler.LambdaLR(opt_d, lam)}
    trainer = Trainer(out_dir, cfg.train, model={**modules, "disc": disc},
                      optimizer={"gen": opt_g, "disc": opt_d}, scheduler=scheds,
                      train_step=make_train_step(cfg, model_cfg.sample_rate, teacher, capture),
                      eval_fn=lambda tr: codebook_stats(tr.modules["codec"], valid), export="codec",
                      model_config=saved_cfg,
                      data_summary={"manifests": [str(m) for m in manifests], "train_hours": round(pool.hours, 3),
                                    "base": h.base, "teacher": teacher.tokenizer_id})
    result = trainer.fit(loader)
    model.eval()
    return {**result.metrics, **codebook_stats(model, valid), "checkpoint": str(result.checkpoint)}


def export_hybrid(src: str | Path, dest: str | Path, name: str = "codec_hybrid") -> Path:
    """Write the hybrid as an inference-only codec folder (``Codec.load(dest)``; fp16, weight norm folded)."""
    from speechlm.tokenizers.codec.train import export_model

    return export_model(src, dest, name)


def main(argv: list[str] | None = None) -> int:
    from speechlm.train.config import recipe_parser

    p = recipe_parser("Fine-tune a codec into the hybrid (semantic-distilled) codec.", config_required=False)
    p.add_argument("--export", default=None, metavar="DIR", help="then write the inference folder here")
    p.add_argument("--name", default="codec_hybrid", help="model name written into tokens files")
    a = p.parse_args(argv)
    print(train(a.config, a.data, a.out, a.set))
    if a.export:
        print(export_hybrid(a.out, a.export, a.name))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
