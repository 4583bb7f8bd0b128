"""Train the speech enhancer (:mod:`speechlm.pipeline.enhancer`) on mixtures made on the fly.

Speech (clean targets), all of it speech we may train on:
- real recordings from ``scripts/get_real_speech.sh``: fillets-ng cs/nl (every character except the two fish, whose
  lines the constructed test set speaks), klettres, the asterisk-prompt voices;
- synthetic voices: a ``speechlm data synth`` corpus (espeak-ng/festival in five languages) and a Piper joe corpus
  (``speechlm acoustic corpus``), both optional.
Background: ``scripts/get_noise.sh``'s music and effects (packages the constructed test set does not use),
synthetic white/pink/babble-like noise (:func:`speechlm.audio.augment.make_noise`) and babble of 3-6 other
training utterances. Never read: the held-out recordings and fillets-ng's music and effects (the test set's).

Each training example (``seconds`` long): utterances of one speaker joined with 0.1-0.8 s gaps, 20 % reverberant
(target reverberant too), ``--narrowband-speech`` (0 by default) of the speech alone in a telephone band (300-3400
Hz, the target too) with the background left wideband (a phone-in voice over music: above 4 kHz all is noise); a
background at an SNR of -5 to 25 dB (10 % none; 30 % of backgrounds tilted by a first-order low- or high-pass), 15 %
of the mixture in a telephone band (the target band-limited too), 10 % clipped (the target not), a random level.
Loss: negative SI-SDR (/10) plus L1 between level-normalised compressed magnitudes (``|X| ** 0.3``) of the output and
the target. The shipped recipe is in docs/pipeline_models.md#the-speech-enhancer-denoise_default:

    S="--speech data/synth_ml/manifest.jsonl --speech data/piper_den/manifest.jsonl"
    python -m speechlm.pipeline.enhancer_train --out runs/denoise/v1 --schedule constant --steps 3750 --hours 4.5 $S
    python -m speechlm.pipeline.enhancer_train --out runs/denoise/v1b --init runs/denoise/v1 --schedule constant \
        --lr 1e-3 --steps 1500 --seed 1 --hours 4.5 $S
    python -m speechlm.pipeline.enhancer_train --out runs/denoise/v1c --init runs/denoise/v1b --lr 1e-3 \
        --minutes 30 --seed 2 $S
    python -m speechlm.pipeline.enhancer_train --out runs/denoise/v2 --init runs/denoise/v1c --lr 5e-4 \
        --minutes 55 --seed 3 $S     # with the 91 soundtracks get_noise.sh added for this run
"""

from __future__ import annotations

import argparse
import logging
import math
import random
import time
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import torch

from speechlm.errors import SpeechLMError
from speechlm.pipeline.enhancer import SR, Enhancer, EnhancerConfig, n_parameters

log = logging.getLogger(__name__)

REAL = ("fillets_cs", "fillets_nl", "klettres", "asterisk_prompts")
FISH = ("_small_fish", "_big_fish")


def speech_rows(real_dir: Path, extra: Iterable[Path]) -> list[tuple[str, str, str]]:
    """Trainable utterances as ``(id, speaker, audio path)``: the real corpora under ``real_dir`` (never the
    held-out ones, never the fillets-ng fish) and every row of the ``extra`` manifests."""
    from speechlm.data.manifest import manifest_root, read_manifest

    rows: list[tuple[str, str, str]] = []
    for m, real in [*((real_dir / name / "manifest.jsonl", True) for name in REAL), *((Path(e), False) for e in extra)]:
        if real and not m.is_file():
            raise SpeechLMError(f"{m} is missing: run scripts/get_real_speech.sh")
        root = manifest_root(m)
        for u in read_manifest(m):
            if real and (u.tags.get("heldout") or u.split == "test" or u.speaker.endswith(FISH)):
                continue
            rows.append((u.id, u.speaker, str(u.audio_path(root))))
    return rows


def _load(path: str) -> np.ndarray:
    """16-kHz mono float32 ``[T]``, trimmed 40 dB under its peak at both ends."""
    from speechlm.audio.io import load_audio
    from speechlm.pipeline.construct import trim

    return trim(load_audio(path, sr=SR)[0][0].astype(np.float32))


def load_speech(rows: list[tuple[str, str, str]], max_hours: float, seed: int) -> dict[str, list[np.ndarray]]:
    """Speaker -> trimmed 16-kHz utterances, at most ``max_hours`` in all (a seeded random subset)."""
    from tqdm import tqdm

    rng = random.Random(seed)
    rows = sorted(rows)
    rng.shuffle(rows)
    by: dict[str, list[np.ndarray]] = {}
    total = 0.0
    for r in tqdm(rows, desc="speech", unit="utt", mininterval=5):
        if total > max_hours * 3600:
            break
        _, speaker, audio = r
        try:
            x = _load(audio)
        except Exception as exc:  # noqa: BLE001 - one unreadable file is skipped, counted in the log
            log.warning("skipping %s: %s", audio, exc)
            continue
        if x.size < SR // 2:
            continue
        by.setdefault(speaker, []).append(x)
        total += x.size / SR
    return by


def load_noise(noise_dir: Path) -> dict[str, list[np.ndarray]]:
    """``music`` and ``effects`` files of ``scripts/get_noise.sh``, 16 kHz, each at unit RMS over its loud part."""
    out: dict[str, list[np.ndarray]] = {}
    for kind in ("music", "effects"):
        files = sorted((noise_dir / kind).glob("*"))
        if not files:
            raise SpeechLMError(f"{noise_dir / kind} is empty: run scripts/get_noise.sh")
        for f in files:
            try:
                x = _load(str(f))
            except Exception as exc:  # noqa: BLE001
                log.warning("skipping %s: %s", f, exc)
                continue
            if x.size < SR // 4:
                continue
            rms = math.sqrt(float(np.mean(x.astype(np.float64) ** 2)))
            out.setdefault(kind, []).append((x / (rms + 1e-9)).astype(np.float32))
    return out


class MixtureSampler:
    """Draws (noisy, clean) pairs ``[n]`` float32 as the module docstring describes."""

    def __init__(self, speech: dict[str, list[np.ndarray]], noise: dict[str, list[np.ndarray]], seconds: float,
                 seed: int, narrowband: float = 0.0) -> None:
        self.speech, self.noise = speech, noise
        self.narrowband = narrowband  # share of examples whose speech alone is telephone-band
        self.speakers = sorted(speech)
        self.weights = np.array([math.sqrt(len(speech[s])) for s in self.speakers])
        self.weights /= self.weights.sum()
        self.n = int(seconds * SR)
        self.rng = np.random.default_rng(seed)

    def _speech(self) -> np.ndarray:
        rng = self.rng
        utts = self.speech[self.speakers[rng.choice(len(self.speakers), p=self.weights)]]
        parts, n = [], 0
        if rng.random() < 0.3:  # start in silence sometimes
            gap = int(rng.uniform(0.1, 1.0) * SR)
            parts.append(np.zeros(gap, np.float32))
            n += gap
        while n < self.n:
            u = utts[rng.integers(len(utts))]
            if u.size > self.n:
                s = rng.integers(u.size - self.n)
                u = u[s: s + self.n]
            u = u * 10 ** (rng.uniform(-4, 4) / 20)
            gap = np.zeros(int(rng.uniform(0.1, 0.8) * SR), np.float32)
            parts += [u, gap]
            n += u.size + gap.size
        x = np.concatenate(parts)[: self.n]
        return x.astype(np.float32)

    def _background(self) -> np.ndarray:
        from speechlm.audio.augment import make_noise

        rng = self.rng
        kind = rng.choice(["music", "music", "effects", "white", "pink", "babble-like", "babble"])
        if kind in ("music", "effects"):
            files = self.noise[kind]
            parts, n = [], 0
            while n < self.n:
                f = files[rng.integers(len(files))]
                s = rng.integers(max(1, f.size - self.n))
                seg = f[s: s + self.n]
                if kind == "effects":  # effects are short: spaced out, over a little pink noise
                    seg = np.concatenate([seg, np.zeros(int(rng.uniform(0, 1.0) * SR), np.float32)])
                parts.append(seg)
                n += seg.size
            x = np.concatenate(parts)[: self.n].astype(np.float64)
            if kind == "effects":
                x = x + 0.25 * make_noise(self.n, rng, "pink", SR)
        elif kind == "babble":
            x = np.zeros(self.n)
            for _ in range(rng.integers(3, 7)):
                x += self._speech()
        else:
            x = make_noise(self.n, rng, kind, SR)
        if rng.random() < 0.3:  # coloured: a random tilt
            from scipy import signal

            b, a = signal.butter(1, rng.uniform(300, 4000), btype=rng.choice(["low", "high"]), fs=SR)
            x = signal.lfilter(b, a, x)
        return (x / (np.sqrt(np.mean(x * x)) + 1e-9)).astype(np.float32)

    def sample(self) -> tuple[np.ndarray, np.ndarray]:
        from speechlm.audio.augment import band_limit, reverb

        rng = self.rng
        clean = self._speech()
        if rng.random() < 0.2:
            clean = reverb(clean, SR, rng.uniform(0.2, 0.8), rng)
        if self.narrowband > 0 and rng.random() < self.narrowband:  # a phone-in voice under wideband music
            clean = band_limit(clean, SR, 300, 3400)
        p_speech = float(np.mean(clean.astype(np.float64) ** 2))
        active = clean[np.abs(clean) > 1e-4]
        p_active = float(np.mean(active.astype(np.float64) ** 2)) if active.size else p_speech
        noisy = clean.copy()
        if rng.random() > 0.1 and p_active > 0:
            snr = rng.uniform(-5, 25)
            noisy = noisy + self._background() * math.sqrt(p_active / 10 ** (snr / 10))
        if rng.random() < 0.15:
            noisy, clean = band_limit(noisy, SR, 300, 3400), band_limit(clean, SR, 300, 3400)
        level = 10 ** (rng.uniform(-35, -15) / 20) / (math.sqrt(float(np.mean(noisy.astype(np.float64) ** 2))) + 1e-9)
        noisy, clean = noisy * level, clean * level
        if rng.random() < 0.1:
            g = 1.0 / (np.quantile(np.abs(noisy), 0.99) + 1e-9)
            noisy, clean = np.clip(noisy * g, -1, 1), clean * g
        return noisy.astype(np.float32), clean.astype(np.float32)

    def batch(self, size: int) -> tuple[torch.Tensor, torch.Tensor]:
        pairs = [self.sample() for _ in range(size)]
        return torch.from_numpy(np.stack([p[0] for p in pairs])), torch.from_numpy(np.stack([p[1] for p in pairs]))


def si_sdr_loss(est: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    """Mean negative SI-SDR (dB) of ``est [B, T]`` against ``ref [B, T]``."""
    est = est - est.mean(-1, keepdim=True)
    ref = ref - ref.mean(-1, keepdim=True)
    a = (est * ref).sum(-1, keepdim=True) / (ref.pow(2).sum(-1, keepdim=True) + 1e-8)
    t = a * ref
    return -(10 * torch.log10(t.pow(2).sum(-1) / ((est - t).pow(2).sum(-1) + 1e-8) + 1e-8)).mean()


def loss_fn(model: Enhancer, noisy: torch.Tensor, clean: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
    spec = model.stft(noisy)
    est_spec = spec * model.mask(spec)
    est = model.istft(est_spec, noisy.shape[-1])
    ref_spec = model.stft(clean)
    scale = clean.pow(2).mean(-1).sqrt().clamp_min(1e-5)[:, None, None]  # level-independent magnitude loss
    mag = (est_spec.abs() / scale + 1e-8).pow(0.3) - (ref_spec.abs() / scale + 1e-8).pow(0.3)
    l_mag = mag.abs().mean()
    l_sdr = si_sdr_loss(est, clean)
    return l_sdr / 10 + l_mag, {"si_sdr": -l_sdr.item(), "mag": l_mag.item()}


def train(out: Path, speech: dict[str, list[np.ndarray]], noise: dict[str, list[np.ndarray]], minutes: float,
          steps: int, batch: int, seconds: float, lr: float, seed: int, cfg: EnhancerConfig,
          summary: dict, init: str | None = None, schedule: str = "cosine", narrowband: float = 0.0) -> Path:
    from tqdm import tqdm

    from speechlm.train.checkpoint import save_checkpoint
    from speechlm.train.schedule import BudgetedCosine

    torch.manual_seed(seed)
    model = Enhancer(cfg)
    if init is not None:  # continue from a checkpoint (its weights; a fresh optimizer and schedule)
        from speechlm.utils.checkpoint import load_checkpoint

        ck = load_checkpoint(init)
        model.load_state_dict(ck.state_dict)
        summary = {**summary, "init": ck.model_id, "init_steps": ck.step}
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    sampler = MixtureSampler(speech, noise, seconds, seed, narrowband)
    val = MixtureSampler(speech, noise, seconds, seed + 1000, narrowband).batch(32)
    val_in = -float(si_sdr_loss(val[0], val[1]))
    log.info("enhancer: %d parameters; validation input SI-SDR %.2f dB", n_parameters(model), val_in)
    # a 200-step warm-up, then a cosine to a tenth by whichever budget (steps, minutes) ends first, or constant
    sched = BudgetedCosine(200, steps, 0.1, minutes)
    lr_scale = sched if schedule == "cosine" else (lambda step: min(1.0, (step + 1) / 200))
    t0, step, history, skipped = time.time(), 0, [], 0
    sched.start()
    bar = tqdm(total=steps, desc="enhancer", unit="step", mininterval=30)
    while step < steps and time.time() - t0 < minutes * 60:
        for g in opt.param_groups:
            g["lr"] = lr * lr_scale(step)
        noisy, clean = sampler.batch(batch)
        loss, parts = loss_fn(model, noisy, clean)
        opt.zero_grad()
        loss.backward()
        norm = torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        if not (torch.isfinite(loss) and torch.isfinite(norm)):  # one bad batch must not poison the weights
            skipped += 1
            continue
        opt.step()
        step += 1
        bar.update(1)
        bar.set_postfix(si_sdr=f"{parts['si_sdr']:.1f}", mag=f"{parts['mag']:.3f}", refresh=False)
        if step % 250 == 0:
            model.eval()
            with torch.no_grad():
                v = -float(si_sdr_loss(model(val[0]), val[1]))
            model.train()
            history.append({"step": step, "minutes": round((time.time() - t0) / 60, 1), "val_si_sdr": round(v, 2)})
            log.info("step %d: validation SI-SDR %.2f dB (input %.2f)", step, v, val_in)
            save_checkpoint(out, model=model, config=cfg, step=step, extra={"name": "denoise_default"},
                            data_summary={**summary, "history": history, "val_input_si_sdr": round(val_in, 2)})
    bar.close()
    model.eval()
    with torch.no_grad():
        v = -float(si_sdr_loss(model(val[0]), val[1]))
    history.append({"step": step, "minutes": round((time.time() - t0) / 60, 1), "val_si_sdr": round(v, 2)})
    summary = {**summary, "steps": step, "minutes": round((time.time() - t0) / 60, 1), "history": history,
               "val_input_si_sdr": round(val_in, 2), "skipped_batches": skipped}
    return save_checkpoint(out, model=model, config=cfg, step=step, extra={"name": "denoise_default"},
                           data_summary=summary)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    p.add_argument("--out", required=True, help="checkpoint folder to write")
    p.add_argument("--real", default="data/real", help="scripts/get_real_speech.sh's folder")
    p.add_argument("--noise", default="data/noise", help="scripts/get_noise.sh's folder")
    p.add_argument("--speech", action="append", default=[], help="more trainable speech (a manifest; repeatable)")
    p.add_argument("--hours", type=float, default=4.0, help="at most this much speech is loaded")
    p.add_argument("--minutes", type=float, default=40.0, help="training time limit")
    p.add_argument("--steps", type=int, default=100_000, help="step limit")
    p.add_argument("--batch", type=int, default=12)
    p.add_argument("--seconds", type=float, default=3.0, help="length of a training example")
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--schedule", choices=("cosine", "constant"), default="cosine",
                   help="learning rate after a 200-step warm-up: cosine decay to a tenth over the budget, or constant")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--init", default=None, metavar="CKPT", help="start from this checkpoint's weights")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--narrowband-speech", type=float, default=0.0, metavar="P",
                   help="share of examples whose speech alone is telephone-band under a wideband background "
                        "(tried at 0.15, not shipped: docs/experiments/2026-12-06-pipeline-throughput.md)")
    a = p.parse_args(argv)
    if not 0.0 <= a.narrowband_speech <= 1.0:
        p.error(f"--narrowband-speech must be 0 to 1, not {a.narrowband_speech}")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    torch.set_num_threads(a.threads)
    rows = speech_rows(Path(a.real), [Path(m) for m in a.speech])
    noise = load_noise(Path(a.noise))
    speech = load_speech(rows, a.hours, a.seed)
    hours = sum(x.size for v in speech.values() for x in v) / SR / 3600
    summary = {"speech_hours": round(hours, 2), "speakers": len(speech), "utterances": sum(map(len, speech.values())),
               "noise_files": {k: len(v) for k, v in noise.items()},
               "speech_sources": list(REAL) + [str(m) for m in a.speech], "batch": a.batch, "seconds": a.seconds}
    log.info("speech %.2f h, %d speakers; noise %s", hours, len(speech), summary["noise_files"])
    path = train(Path(a.out), speech, noise, a.minutes, a.steps, a.batch, a.seconds, a.lr, a.seed, EnhancerConfig(),
                 {**summary, "lr": a.lr, "schedule": a.schedule, "narrowband_speech": a.narrowband_speech}, a.init,
                 a.schedule, a.narrowband_speech)
    print(path)


if __name__ == "__main__":
    main()
