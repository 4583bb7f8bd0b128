"""The codec training recipe: data crops in memory, GAN step on the shared :class:`~speechlm.train.Trainer`.

``speechlm codec train --config configs/codec/default.yaml --data MANIFEST [--data MANIFEST ...] --out DIR``
(or ``python -m speechlm.tokenizers.codec.train``; under ``torchrun`` it runs data-parallel). Resumes from the
newest checkpoint in ``--out``. Metrics: ``rec/mel``, ``rec/stft``, ``vq/commit``, ``vq/codebook``,
``adv/gen``, ``adv/feat``, ``adv/disc``, ``valid/mel``, ``valid/ppl_K`` (perplexity of codebook K on the
validation clips), in ``DIR/metrics.jsonl`` (and TensorBoard when installed).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from speechlm.errors import SpeechLMError
from speechlm.tokenizers.codec.builder import CodecConfig, build_codec
from speechlm.tokenizers.codec.discriminators import CodecDiscriminator
from speechlm.tokenizers.codec.losses import (
    disc_hinge_loss,
    feature_matching_loss,
    gen_hinge_loss,
    multiscale_mel_loss,
    multiscale_stft_loss,
)
from speechlm.train.config import load_config
from speechlm.train.distributed import ShardedBatchSampler, cleanup, init_distributed, unwrap
from speechlm.train.loop import TrainConfig, Trainer
from speechlm.train.schedule import warmup_cosine
from speechlm.train.seed import seed_everything


@dataclass(frozen=True)
class CodecTrainConfig:
    """Codec-specific training settings (the loop's own are in ``train:``)."""

    batch_size: int = 16
    segment_seconds: float = 1.0
    lr: float = 6e-4
    disc_lr: float = 2e-4
    betas: tuple[float, float] = (0.8, 0.99)
    warmup_steps: int = 200
    final_lr_ratio: float = 0.1  # cosine decay to lr * this at max_steps
    adv_start: int = 2000  # reconstruction-only steps before the discriminators join (0: from the start)
    w_mel: float = 15.0
    w_stft: float = 1.0
    w_adv: float = 1.0
    w_feat: float = 2.0
    w_commit: float = 0.25
    w_codebook: float = 1.0
    w_f0: float = 2.0  # harmonic decoders: L1 of log F0 against YIN on voiced frames
    w_voicing: float = 0.5  # harmonic decoders: voicing BCE against YIN's decision
    f0_teacher_forcing: float = 0.5  # harmonic decoders: share of steps whose oscillators run at YIN's F0
    mel_n_ffts: tuple[int, ...] = (256, 512, 1024, 2048)
    stft_n_ffts: tuple[int, ...] = (512, 1024)
    mpd_periods: tuple[int, ...] = (2, 3, 5, 7, 11)
    mpd_channels: int = 16
    stft_disc_ffts: tuple[int, ...] = (256, 512, 1024)
    stft_disc_channels: int = 16
    augment_prob: float = 0.5  # chance a crop goes through speechlm.audio.augment.random_augment
    max_hours: float = 10.0  # audio kept in memory (int16) per run
    valid_clips: int = 16
    num_threads: int = 0  # torch threads per process (0: leave torch's default)
    num_workers: int = 0  # DataLoader processes preparing (augmenting) crops
    init: str = ""  # start from this codec (asset name, checkpoint or run folder); its discriminators too if saved
    freeze_tokens: bool = False  # train the decoder only: tokens, LMs and bridges made for `init` stay valid


@dataclass(frozen=True)
class CodecRecipeConfig:
    """What ``configs/codec/*.yaml`` hold: ``model``, ``codec`` (recipe) and ``train`` (loop) sections."""

    model: CodecConfig = field(default_factory=CodecConfig)
    codec: CodecTrainConfig = field(default_factory=CodecTrainConfig)
    train: TrainConfig = field(default_factory=TrainConfig)


# ---- data ----------------------------------------------------------------------------------------------


class AudioPool:
    """Utterances resampled to the model rate, held in one int16 array (bounded by ``max_hours``)."""

    def __init__(self, audio: np.ndarray, starts: np.ndarray, lengths: np.ndarray, sr: int) -> None:
        self.audio, self.starts, self.lengths, self.sr = audio, starts, lengths, sr

    @classmethod
    def from_manifests(
        cls,
        manifests: Sequence[str],
        sr: int,
        split: str,
        max_hours: float,
        seed: int,
        show_progress: bool = True,
    ) -> AudioPool:
        from tqdm import tqdm

        from speechlm.audio.io import load_audio
        from speechlm.data.manifest import manifest_root, read_manifest

        items = []
        for m in manifests:
            root = manifest_root(m)
            items += [(u.audio_path(root), u.duration) for u in read_manifest(m) if u.split == split]
        rng = np.random.default_rng(seed)
        rng.shuffle(items)
        budget = max_hours * 3600
        chosen, total = [], 0.0
        for path, dur in items:
            if total >= budget:
                break
            chosen.append(path)
            total += dur
        chunks, starts, lengths, pos = [], [], [], 0
        for path in tqdm(chosen, desc=f"loading {split} audio", disable=not show_progress, unit="file"):
            try:
                wav, _ = load_audio(path, sr=sr)
            except SpeechLMError as exc:  # one bad file must not stop a long run
                print(f"skipping {path}: {exc}", flush=True)
                continue
            x = np.clip(wav[0], -1, 1)
            chunks.append((x * 32767).astype(np.int16))
            starts.append(pos)
            lengths.append(len(x))
            pos += len(x)
        if not chunks:
            raise SpeechLMError(f"no {split} audio found in {', '.join(map(str, manifests))}")
        return cls(np.concatenate(chunks), np.array(starts), np.array(lengths), sr)

    @property
    def hours(self) -> float:
        return len(self.audio) / self.sr / 3600

    def crop(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """A random ``n``-sample crop (utterances weighted by length; short ones zero-padded) as float32."""
        i = int(rng.choice(len(self.lengths), p=self.lengths / self.lengths.sum()))
        length = int(self.lengths[i])
        off = int(rng.integers(0, max(length - n, 0) + 1))
        x = (
            self.audio[self.starts[i] + off : self.starts[i] + off + min(n, length)].astype(np.float32)
            / 32767
        )
        return np.pad(x, (0, n - len(x)))


class CropDataset(torch.utils.data.Dataset):
    """Item ``i`` is a deterministic (seeded by i) augmented crop ``[1, T]`` (resume/DDP-safe)."""

    def __init__(self, pool: AudioPool, n_items: int, segment: int, augment_prob: float, seed: int) -> None:
        self.pool, self.n_items, self.segment = pool, n_items, segment
        self.augment_prob, self.seed = augment_prob, seed

    def __len__(self) -> int:
        return self.n_items

    def __getitem__(self, i: int) -> torch.Tensor:
        from speechlm.audio.augment import random_augment

        rng = np.random.default_rng([self.seed, i])
        x = self.pool.crop(rng, self.segment)
        if rng.random() < self.augment_prob:
            x, _ = random_augment(
                x, self.pool.sr, rng, p={"pitch": 0.3, "reverb": 0.3, "band": 0.3, "noise": 0.4, "gain": 0.6}
            )
        else:  # level variation on clean crops too
            x = x * float(10 ** (rng.uniform(-12, 3) / 20))
        x = np.clip(np.nan_to_num(x), -1, 1).astype(np.float32)
        return torch.from_numpy(x)[None]


# ---- evaluation ----------------------------------------------------------------------------------------


@torch.no_grad()
def codebook_stats(model: nn.Module, clips: Sequence[torch.Tensor]) -> dict[str, float]:
    """Mel distance at full bitrate and perplexity of every codebook over ``clips`` ([1, 1, T] each)."""
    model = unwrap(model)
    counts = torch.zeros(model.n_q, model.quantizer.codebook_size)
    mel = 0.0
    for x in clips:
        codes, _ = model.encode(x)
        for k in range(codes.shape[1]):
            counts[k] += torch.bincount(codes[0, k], minlength=counts.shape[1]).float()
        y = model.decode(codes)[..., : x.shape[-1]]
        mel += float(multiscale_mel_loss(y, x, model.sample_rate, (512, 1024)))
    p = counts / counts.sum(dim=1, keepdim=True).clamp(min=1)
    ppl = torch.exp(-(p * p.clamp(min=1e-12).log()).sum(dim=1))
    out = {"valid/mel": mel / max(len(clips), 1)}
    out.update({f"valid/ppl_{k + 1}": float(v) for k, v in enumerate(ppl)})
    return out


# ---- the step ------------------------------------------------------------------------------------------


def yin_targets(wav: torch.Tensor, sr: int, hop: int, n_frames: int) -> tuple[torch.Tensor, torch.Tensor]:
    """YIN F0 (Hz, 0 unvoiced) and voicing ``[B, n_frames]`` of ``wav`` ``[B, 1, T]`` on a harmonic decoder's
    frames: decoder frame ``i`` is centred on sample ``(i - 1) * hop``, YIN frame ``j`` on ``j * hop``, so frame
    ``i`` gets YIN frame ``i - 1`` (frame 0 gets 0)."""
    from speechlm.audio.features import f0 as yin

    ref = np.zeros((wav.shape[0], n_frames), np.float32)
    vref = np.zeros_like(ref)
    for b, xi in enumerate(wav[:, 0].detach().cpu().numpy()):
        f, v = yin(xi, sr, hop)
        n = min(n_frames - 1, len(f))
        ref[b, 1 : n + 1] = np.where(v[:n] & (np.nan_to_num(f[:n]) > 0), np.nan_to_num(f[:n]), 0.0)
        vref[b, 1 : n + 1] = ref[b, 1 : n + 1] > 0
    return torch.from_numpy(ref).to(wav.device), torch.from_numpy(vref).to(wav.device)


def pitch_losses(
    controls: dict[str, torch.Tensor], ref: torch.Tensor, vref: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """(log-F0 L1 on voiced frames, voicing BCE) of a harmonic decoder against :func:`yin_targets`."""
    n = ref.shape[1]
    pred = controls["f0"][:, :n]
    logit = controls["voiced_logit"][:, :n]
    mask = vref > 0.5
    f0_loss = (pred[mask].log() - ref[mask].log()).abs().mean() if mask.any() else pred.sum() * 0
    return f0_loss, F.binary_cross_entropy_with_logits(logit, vref)


def make_train_step(cfg: CodecRecipeConfig):
    c = cfg.codec
    sr = cfg.model.sample_rate

    def step(trainer: Trainer, wav: torch.Tensor) -> dict[str, float]:
        gen, disc = trainer.modules["codec"], trainer.modules["disc"]
        adv = trainer.step >= c.adv_start
        f0_ref = vref = None
        decoder = unwrap(gen).decoder
        if getattr(decoder, "harmonics", 0):
            n_frames = -(-wav.shape[-1] // unwrap(gen).hop) * (unwrap(gen).hop // decoder.stft_hop)
            f0_ref, vref = yin_targets(wav, sr, decoder.stft_hop, n_frames)
        with trainer.autocast():
            forced = f0_ref is not None and torch.rand(()) < c.f0_teacher_forcing
            out = gen(wav, f0_ref=f0_ref if forced else None)
        metrics: dict[str, float] = {}
        if adv:  # discriminator first, on detached fakes
            trainer.optimizers["disc"].zero_grad(set_to_none=True)
            real_logits, _ = disc(wav)
            fake_logits, _ = disc(out.wav.detach())
            d_loss = disc_hinge_loss(real_logits, fake_logits)
            d_loss.backward()
            metrics["adv/disc"] = float(d_loss.detach())
            metrics["adv/disc_grad_norm"] = trainer.clip_and_step("disc", ["disc"])
        mel = multiscale_mel_loss(out.wav, wav, sr, c.mel_n_ffts)
        stft = multiscale_stft_loss(out.wav, wav, c.stft_n_ffts) if c.w_stft else mel.new_zeros(())
        loss = (
            c.w_mel * mel
            + c.w_stft * stft
            + c.w_commit * out.q.commit_loss
            + c.w_codebook * out.q.codebook_loss
        )
        if out.controls is not None:
            f0_loss, voicing_loss = pitch_losses(out.controls, f0_ref, vref)
            loss = loss + c.w_f0 * f0_loss + c.w_voicing * voicing_loss
            metrics["pitch/f0"], metrics["pitch/voicing"] = float(f0_loss.detach()), float(voicing_loss.detach())
        if adv:
            fake_logits, fake_feats = disc(out.wav)
            with torch.no_grad():
                _, real_feats = disc(wav)
            g_adv = gen_hinge_loss(fake_logits)
            feat = feature_matching_loss(real_feats, fake_feats)
            loss = loss + c.w_adv * g_adv + c.w_feat * feat
            metrics["adv/gen"], metrics["adv/feat"] = float(g_adv.detach()), float(feat.detach())
        if not torch.isfinite(loss):
            raise SpeechLMError(f"step {trainer.step + 1}: loss is {float(loss)}; lower the learning rate")
        trainer.optimizers["gen"].zero_grad(set_to_none=True)
        loss.backward()
        # The generator's backward also reached the discriminator's parameters: drop those gradients.
        trainer.optimizers["disc"].zero_grad(set_to_none=True)
        metrics["train/grad_norm"] = trainer.clip_and_step("gen", ["codec"])
        metrics.update(
            {
                "loss": float(loss.detach()),
                "rec/mel": float(mel.detach()),
                "rec/stft": float(stft.detach()),
                "vq/commit": float(out.q.commit_loss.detach()),
                "vq/codebook": float(out.q.codebook_loss.detach()),
            }
        )
        return metrics

    return step


def train(
    config: str | Path | None,
    manifests: Sequence[str],
    out_dir: str | Path,
    overrides: Sequence[str] = (),
    show_progress: bool = True,
) -> dict:
    """Train (or resume) a codec; returns the last metrics. See the module docstring."""
    cfg = load_config(config, CodecRecipeConfig, overrides)
    c = cfg.codec
    if c.num_threads:
        torch.set_num_threads(c.num_threads)
    dist = init_distributed()
    seed_everything(cfg.train.seed, dist.rank)
    if not manifests:
        raise SpeechLMError("give at least one --data MANIFEST")
    t0 = time.time()
    pool = AudioPool.from_manifests(
        manifests, cfg.model.sample_rate, "train", c.max_hours, cfg.train.seed, show_progress and dist.is_main
    )
    try:
        vpool = AudioPool.from_manifests(manifests, cfg.model.sample_rate, "valid", 0.05, 0, False)
    except SpeechLMError:
        vpool = pool  # no valid split: validate on (fixed) training crops
    vrng = np.random.default_rng(12345)
    seg = int(round(c.segment_seconds * cfg.model.sample_rate))
    valid = [torch.from_numpy(vpool.crop(vrng, 2 * seg))[None, None] for _ in range(c.valid_clips)]
    if dist.is_main:
        print(f"data: {pool.hours:.2f} h in memory ({time.time() - t0:.0f} s to load)", flush=True)

    disc = CodecDiscriminator(c.mpd_periods, c.mpd_channels, c.stft_disc_ffts, c.stft_disc_channels)
    if c.init:
        model, _, disc_state = load_codec(c.init, cfg.model)
        if disc_state is not None:
            disc.load_state_dict(disc_state)
    else:
        model = build_codec(cfg.model)
    if c.freeze_tokens:
        if not c.init:
            raise SpeechLMError("codec.freeze_tokens needs codec.init (a trained token space to keep)")
        model.freeze_tokens()
    opt_g = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=c.lr, betas=c.betas)
    opt_d = torch.optim.AdamW(disc.parameters(), lr=c.disc_lr, betas=c.betas)
    lam = warmup_cosine(c.warmup_steps, cfg.train.max_steps, c.final_lr_ratio)
    scheds = {
        "gen": torch.optim.lr_scheduler.LambdaLR(opt_g, lam),
        "disc": torch.optim.lr_scheduler.LambdaLR(opt_d, lam),
    }
    n_items = cfg.train.max_steps * c.batch_size * dist.world_size
    ds = CropDataset(pool, n_items, seg, c.augment_prob, cfg.train.seed)
    sampler = ShardedBatchSampler(len(ds), c.batch_size, seed=cfg.train.seed)
    loader = torch.utils.data.DataLoader(ds, batch_sampler=sampler, num_workers=c.num_workers)
    summary = {"manifests": [str(m) for m in manifests], "train_hours": round(pool.hours, 3),
               **({"init": c.init, "freeze_tokens": c.freeze_tokens} if c.init else {})}
    trainer = Trainer(
        out_dir,
        cfg.train,
        model={"codec": model, "disc": disc},
        optimizer={"gen": opt_g, "disc": opt_d},
        scheduler=scheds,
        train_step=make_train_step(cfg),
        eval_fn=lambda tr: codebook_stats(tr.modules["codec"], valid),
        export="codec",
        model_config=cfg,
        data_summary=summary,
        dist=dist,
    )
    if dist.is_main:
        n_params = sum(p.numel() for p in model.parameters())
        print(
            f"codec: {n_params / 1e6:.2f} M params, {cfg.model.frame_rate:g} Hz frames, "
            f"{cfg.model.kbps_per_codebook:g}-{cfg.model.kbps_per_codebook * cfg.model.n_q:g} kbps, "
            f"latency {1000 * model.latency_samples / cfg.model.sample_rate:g} ms",
            flush=True,
        )
    result = trainer.fit(loader)
    model.eval()
    final = codebook_stats(model, valid)
    cleanup()
    return {**result.metrics, **final, "checkpoint": str(result.checkpoint)}


def load_codec(
    src: str, model_cfg: CodecConfig | None = None
) -> tuple[nn.Module, CodecConfig, dict[str, torch.Tensor] | None]:
    """A trainable codec from an asset name, checkpoint or run folder: (model, config, discriminator state or
    None). Exported assets have weight norm folded; their model trains as plain convolutions.

    With ``model_cfg`` the model is built from it instead (e.g. the same codec plus a harmonic branch): every
    weight of ``src`` must fit, and only parameters ``src`` lacks start fresh (listed on stdout).
    """
    import safetensors.torch

    from speechlm.tokenizers.codec.api import resolve_model_dir
    from speechlm.tokenizers.codec.builder import codec_config_from_dict
    from speechlm.tokenizers.codec.streaming import remove_weight_norm
    from speechlm.train.checkpoint import load_checkpoint

    path = resolve_model_dir(src)
    ckpt = load_checkpoint(path)
    cfg = codec_config_from_dict(ckpt.config.get("model", ckpt.config))
    model = build_codec(model_cfg or cfg)
    if str(ckpt.meta.get("extra", {}).get("weights", "")).startswith("folded"):
        remove_weight_norm(model)
    sd = {k: v.float() if v.is_floating_point() else v for k, v in ckpt.state_dict.items()}
    try:
        missing, unexpected = model.load_state_dict(sd, strict=model_cfg is None or model_cfg == cfg)
    except RuntimeError as exc:
        raise SpeechLMError(f"codec.init {src}: its weights do not fit this model ({str(exc)[:300]})") from None
    if unexpected:
        raise SpeechLMError(f"codec.init {src}: weights the model does not have: {', '.join(unexpected[:5])}")
    if missing:
        more = ", ..." if len(missing) > 4 else ""
        print(f"codec.init {src}: {len(missing)} new tensors start fresh ({', '.join(missing[:4])}{more})")
    if model_cfg is not None:
        cfg = model_cfg
    disc = None
    state = path / "train_state.safetensors"
    if state.exists():
        flat = safetensors.torch.load_file(str(state))
        disc = {k[len("aux.disc."):]: v for k, v in flat.items() if k.startswith("aux.disc.")} or None
    return model, cfg, disc


def export_model(src: str | Path, dest: str | Path, name: str, half: bool = True) -> Path:
    """Write an inference-only model folder (e.g. speechlm/assets/codec_NAME) from a run or checkpoint.

    Weight norm is folded into plain weights and, with ``half``, weights are stored as float16 (half the size;
    :meth:`Codec.load` computes in float32).
    """
    from speechlm.tokenizers.codec.api import resolve_model_dir
    from speechlm.tokenizers.codec.builder import codec_config_from_dict
    from speechlm.tokenizers.codec.streaming import remove_weight_norm
    from speechlm.train.checkpoint import load_checkpoint, save_checkpoint

    ckpt = load_checkpoint(resolve_model_dir(src))
    model_cfg = ckpt.config.get("model", ckpt.config)
    model = build_codec(codec_config_from_dict(model_cfg))
    try:
        model.load_state_dict(ckpt.state_dict)
    except RuntimeError:  # trained from an exported (already folded) codec: plain weights
        remove_weight_norm(model)
        model.load_state_dict(ckpt.state_dict)
    remove_weight_norm(model)
    sd = {k: v.half() if half and v.is_floating_point() else v for k, v in model.state_dict().items()}
    save_checkpoint(
        dest,
        model=sd,
        config={"model": model_cfg},
        step=ckpt.step,
        extra={
            "name": name,
            "weights": "folded" + ("-fp16" if half else ""),
            "source": str(ckpt.path),
            "train_config": ckpt.config,
        },
        data_summary=ckpt.meta.get("data_summary"),
    )
    return Path(dest)


def main(argv: list[str] | None = None) -> int:
    from speechlm.train.config import recipe_parser

    p = recipe_parser("Train a speechlm codec (python -m / torchrun entry point).")
    a = p.parse_args(argv)
    print(train(a.config, a.data, a.out, a.set))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
