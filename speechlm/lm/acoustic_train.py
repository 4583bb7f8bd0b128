"""Training recipe of the acoustic model (:mod:`speechlm.lm.acoustic`) on a feature cache
(:func:`speechlm.lm.acoustic_data.extract_features`).

Losses: L1 on the normalised mel-cepstra, log-F0 and band aperiodicity of every frame; binary cross-entropy on
voicing; MSE on log(1 + frames) per token and on the token pitch and energy (all masked to real positions).
Batches hold up to ``batch_frames`` frames of utterances of similar length. AdamW, warm-up + cosine
(:func:`speechlm.train.schedule.warmup_cosine`). The run folder gets ``checkpoints/step_*`` (resumable) and
``log.jsonl``; the result is exported with the codec id and phoneme table it was trained with.
"""

from __future__ import annotations

import json
import os
import random
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from speechlm.lm.acoustic import AcousticConfig, AcousticModel, widen_sub_frames
from speechlm.lm.acoustic_data import AcousticDataset, collate

KIND = "acoustic"


@dataclass
class AcousticTrainConfig:
    steps: int = 8000
    batch_frames: int = 5000
    lr: float = 1e-3
    warmup: int = 400
    final_lr: float = 0.05
    weight_decay: float = 0.01
    grad_clip: float = 1.0
    seed: int = 0
    log_every: int = 50
    save_every: int = 1000
    threads: int = 2
    max_minutes: float = 0.0  # > 0: a wall-time budget (the cosine ends at it; training saves and stops there)
    device: str = "cpu"  # "cuda" trains on a GPU (checkpoints are the same CPU files)
    model: dict = field(default_factory=dict)


def losses(model: AcousticModel, batch) -> dict[str, torch.Tensor]:
    ids, dur, pitch, energy, feat, speaker = (x.to(model.feat_mean.device) for x in batch)
    out = model(ids, dur, pitch, energy, speaker if model.cfg.n_speakers > 0 else None)
    m = model.cfg.n_mcep
    keep = (~out["frame_pad"]).float()[..., None]
    t = min(out["feat"].shape[1], feat.shape[1])
    pred, tgt, keep = out["feat"][:, :t], feat[:, :t], keep[:, :t]
    n = keep.sum().clamp(min=1)
    l1 = (pred - tgt).abs() * keep
    cont = torch.cat([l1[..., : m + 1], l1[..., m + 2 :]], -1)
    vuv = F.binary_cross_entropy_with_logits(pred[..., m + 1], tgt[..., m + 1], reduction="none") * keep[..., 0]
    tk = (~out["pad"]).float()
    nt = tk.sum().clamp(min=1)
    ld = ((out["log_dur"] - torch.log1p(dur.float())) ** 2 * tk).sum() / nt
    lp = ((out["pitch"] - pitch) ** 2 * tk).sum() / nt
    le = ((out["energy"] - energy) ** 2 * tk).sum() / nt
    lf = cont.sum() / (n * cont.shape[-1])
    lv = vuv.sum() / n
    return {"loss": lf + 0.1 * lv + ld + 0.1 * lp + 0.1 * le, "feat": lf, "vuv": lv, "dur": ld, "pitch": lp,
            "energy": le}


def train_acoustic(features: str | os.PathLike, out: str | os.PathLike, cfg: AcousticTrainConfig,
                   valid_fraction: float = 0.02, progress: bool = True, extra: dict | None = None,
                   init: str | os.PathLike | None = None) -> Path:
    """Train on a feature cache; writes checkpoints and ``log.jsonl`` under ``out``; returns the last checkpoint.

    ``init``: an acoustic model (name, folder or run) to fine-tune: its architecture, weights and normalisation
    statistics replace ``cfg.model`` and the cache's statistics (the optimizer and schedule start afresh; a
    50-Hz model fine-tuned on a 5-ms cache starts from :func:`~speechlm.lm.acoustic.widen_sub_frames`). A run
    that already has checkpoints resumes from its newest one instead. The output rate (``sub_frames``) is the
    cache's."""
    from tqdm import tqdm

    from speechlm.text.symbols import default_symbols
    from speechlm.text.tts_input import vocab_size
    from speechlm.train.batching import length_batches
    from speechlm.train.checkpoint import checkpoint_path, latest_checkpoint, load_train_state, save_checkpoint
    from speechlm.train.schedule import BudgetedCosine
    from speechlm.train.seed import seed_everything

    torch.set_num_threads(cfg.threads)
    seed_everything(cfg.seed)
    if cfg.device != "cpu" and not torch.cuda.is_available():
        from speechlm.errors import SpeechLMError

        raise SpeechLMError(f"device {cfg.device!r} asked for, but torch sees no GPU")
    if cfg.device != "cpu":
        torch.set_float32_matmul_precision("high")  # TF32 matrix products on the GPU
    base, stats = None, None
    if init is not None:
        from speechlm.errors import CheckpointError
        from speechlm.lm.acoustic_api import resolve_acoustic_dir
        from speechlm.utils.checkpoint import load_checkpoint

        base = load_checkpoint(resolve_acoustic_dir(init))
        if (base.meta.get("extra") or {}).get("kind") != KIND:
            raise CheckpointError(f"{base.path}: not an acoustic model checkpoint (--init)")
        if base.meta["extra"].get("symbols") != default_symbols().hash:
            raise CheckpointError(f"{base.path}: trained with another phoneme table; it cannot be fine-tuned here")
        stats = (base.state_dict["feat_mean"].float().numpy(), base.state_dict["feat_std"].float().numpy())
        cfg = replace(cfg, model={k: v for k, v in base.config["model"].items() if k != "vocab"})
    ds = AcousticDataset(features, stats=stats)
    init_sub = int(cfg.model.get("sub_frames", 1))
    if base is not None and init_sub not in (1, ds.sub_frames):
        raise CheckpointError(f"{base.path}: predicts {init_sub} sub-frames; the cache has {ds.sub_frames}")
    multi = len(ds.speakers) > 1  # several voices: a speaker vector each (the init's own voice has none)
    cfg = replace(cfg, model={**cfg.model, "sub_frames": ds.sub_frames,
                              "n_speakers": len(ds.speakers) if multi else 0})
    rng = random.Random(cfg.seed)
    idx = list(range(len(ds)))
    rng.shuffle(idx)
    n_val = max(1, int(len(idx) * valid_fraction))
    val, tr = [ds.utts[i] for i in idx[:n_val]], [ds.utts[i] for i in idx[n_val:]]
    mcfg = AcousticConfig(vocab=vocab_size(default_symbols()), **cfg.model)
    model = AcousticModel(mcfg)
    model.feat_mean.copy_(torch.from_numpy(ds.mean))
    model.feat_std.copy_(torch.from_numpy(ds.std))
    if base is not None:
        sd = {k: v.float() for k, v in base.state_dict.items()}
        sd = widen_sub_frames(sd, ds.sub_frames) if init_sub != ds.sub_frames else sd
        if multi and "speaker.weight" not in sd:  # a one-voice init: the speaker vectors start at zero
            sd["speaker.weight"] = model.speaker.weight.detach().clone()
        model.load_state_dict(sd)
        extra = {**(extra or {}), "init": base.model_id, "init_step": base.step}
    model.to(cfg.device)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, betas=(0.9, 0.98), weight_decay=cfg.weight_decay)
    lr_mult = BudgetedCosine(cfg.warmup, cfg.steps, cfg.final_lr, cfg.max_minutes)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_mult(s))  # a function: no state saved
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    step = 0
    last = latest_checkpoint(out)
    if last is not None:
        from speechlm.train.checkpoint import load_weights

        load_weights(model, last)
        step = load_train_state(last, optimizer=opt, scheduler=sched).step
    from speechlm.lm.acoustic_api import VoiceStats

    config = {"model": asdict(mcfg), "train": asdict(cfg)}
    voice = VoiceStats.of_features(np.concatenate([u.feat for u in ds.utts]), mcfg.n_mcep)
    langs = sorted({lang for lang in ds.speaker_langs.values() if lang}) or ["en"]
    voices = {}
    if multi:  # each language's voice: its speaker with the most training frames
        frames: dict[int, int] = {}
        for u in tr:
            frames[u.speaker] = frames.get(u.speaker, 0) + len(u.feat)
        for lang in langs:
            own = [i for i, s in enumerate(ds.speakers) if ds.speaker_langs.get(s) == lang]
            voices[lang] = ds.speakers[max(own, key=lambda i: frames.get(i, 0))]
        voice_stats = {s: VoiceStats.of_features(np.concatenate([u.feat for u in ds.utts if u.speaker == i]),
                                                 mcfg.n_mcep).to_dict() for i, s in enumerate(ds.speakers)}
    info = {"kind": KIND, "symbols": default_symbols().hash, "langs": langs, "voice_stats": voice.to_dict(),
            **({"speakers": ds.speakers, "speaker_langs": ds.speaker_langs, "lang_voices": voices,
                "speaker_voice_stats": voice_stats} if multi else {}),
            "analysis": ds.analysis,
            "train_utterances": len(tr), "train_frames": int(sum(len(u.feat) for u in tr)), **(extra or {})}
    log = (out / "log.jsonl").open("a")
    bar = tqdm(total=cfg.steps, initial=step, desc="acoustic", disable=not progress)
    t0 = time.time()
    lr_mult.start()
    stop = False
    tr_frames = [int(u.dur.sum()) for u in tr]  # frames per training utterance, for length-bucketed batches
    while step < cfg.steps and not stop:
        for b in length_batches(tr_frames, cfg.batch_frames, rng):
            model.train()
            ls = losses(model, collate([tr[i] for i in b], ds.mean, ds.std))
            opt.zero_grad(set_to_none=True)
            ls["loss"].backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            opt.step()
            sched.step()
            step += 1
            bar.update(1)
            stop = lr_mult.over
            if step % cfg.log_every == 0 or stop:
                row = {"step": step, "time": round(time.time() - t0, 1), "lr": sched.get_last_lr()[0],
                       **{k: round(float(v.detach()), 4) for k, v in ls.items()}}
                if step % (cfg.log_every * 4) == 0:
                    model.eval()
                    with torch.no_grad():
                        vl = [losses(model, collate(val[i : i + 8], ds.mean, ds.std)) for i in range(0, len(val), 8)]
                    row.update({f"val_{k}": round(float(np.mean([float(v[k]) for v in vl])), 4) for k in vl[0]})
                log.write(json.dumps(row) + "\n")
                log.flush()
                bar.set_postfix(loss=row["loss"], dur=row["dur"])
            if step % cfg.save_every == 0 or step >= cfg.steps or stop:
                save_checkpoint(checkpoint_path(out, step), model=model, config=config, step=step, optimizer=opt,
                                scheduler=sched, extra=info)
            if step >= cfg.steps or stop:
                break
    bar.close()
    log.close()
    return latest_checkpoint(out)


def export_acoustic(run: str | os.PathLike, out: str | os.PathLike, force: bool = False, half: bool = True,
                    lang_voices: dict[str, str] | None = None) -> Path:
    """Copy a run's newest checkpoint (or a checkpoint folder) into an inference-only folder (no optimizer state;
    float16 weights unless ``half`` is False, the normalisation statistics float32): what
    ``speechlm/assets/tts_duration`` is. ``lang_voices``: a multi-speaker model's voice for these languages
    (a training speaker of that language; e.g. chosen by ``benchmarks/tts_voice_select.py``)."""
    from speechlm.lm.acoustic_api import resolve_acoustic_dir
    from speechlm.train.checkpoint import check_destination, load_checkpoint, save_checkpoint

    check_destination(out, force=force)
    ckpt = load_checkpoint(resolve_acoustic_dir(run))
    if (ckpt.meta.get("extra") or {}).get("kind") != KIND:
        from speechlm.errors import CheckpointError

        raise CheckpointError(f"{ckpt.path}: not an acoustic model checkpoint")
    extra = {**ckpt.meta["extra"], "name": Path(out).name}
    if lang_voices:
        from speechlm.errors import CheckpointError

        speaker_langs = extra.get("speaker_langs") or {}
        for lang, name in lang_voices.items():
            if speaker_langs.get(name) != lang:
                raise CheckpointError(f"{ckpt.path}: no training speaker {name!r} of language {lang!r}")
        extra["lang_voices"] = {**extra.get("lang_voices", {}), **lang_voices}
    sd = {k: v.half() if half and v.is_floating_point() and not k.startswith("feat_") else v
          for k, v in ckpt.state_dict.items()}
    return save_checkpoint(out, model=sd, config=ckpt.config, step=ckpt.step, extra=extra,
                           data_summary=ckpt.meta.get("data_summary"))
