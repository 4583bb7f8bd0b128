"""Training recipe of the aligned codec LM (:mod:`speechlm.lm.aligned`) on an acoustic feature cache.

Data: the cache of :func:`speechlm.lm.acoustic_data.extract_features` (token ids, exact frames per token, raw
20-ms source-filter parameters). The parameters become ``codec_sf`` tokens with the codec's own quantiser (as
:meth:`~speechlm.lm.acoustic_api.AcousticTTSModel.to_codes` does for the NAR's output), cached once in the run
folder (``codes.npz``: ``codes [K, sum T]`` int16). Token pitch and energy are the cache's, normalised with the
duration model's statistics so they match what it predicts at inference.

The duration model is an exported NAR acoustic model (default: the shipped one); its weights are copied in
frozen, so a checkpoint is self-contained. Half of the utterances (``prompt_prob``) get 1-3 s of another
utterance's codes as a voice prompt in context (no loss on it), so generation after a prompt is in-distribution.
Loss: next-frame cross-entropy averaged over the ``K`` streams. AdamW, warm-up + cosine; ``checkpoints/step_*``
(safetensors + JSON, resumable) and ``log.jsonl`` in the run folder.
"""

from __future__ import annotations

import json
import os
import random
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from speechlm.errors import SpeechLMError
from speechlm.lm.aligned import KIND, AlignedConfig, AlignedLM, Guide, build, draft_features, stream_losses


@dataclass
class AlignedTrainConfig:
    steps: int = 1000
    batch_frames: int = 4000
    lr: float = 1e-3
    warmup: int = 100
    final_lr: float = 0.05
    weight_decay: float = 0.01
    grad_clip: float = 1.0
    seed: int = 0
    log_every: int = 25
    save_every: int = 250
    threads: int = 1
    prompt_prob: float = 0.5
    prompt_frames: tuple[int, int] = (50, 150)  # 1-3 s
    max_minutes: float = 0.0  # > 0: stop (and save) when the wall time is over, whatever the step
    prev_drop: float = 0.0  # chance that a target frame's input hides the previous frame's codes (AlignedLM.forward)
    model: dict = field(default_factory=dict)


@dataclass
class Item:
    ids: np.ndarray  # [N]
    dur: np.ndarray  # [N] frames
    pitch: np.ndarray  # [N] normalised
    energy: np.ndarray  # [N] normalised
    codes: np.ndarray  # [K, T] int64, T = sum(dur)
    draft: np.ndarray | None = None  # [K, T] the duration model's tokens (a draft-conditioned LM's input)


def features_key(features: str | os.PathLike, codec) -> dict:
    """What codes made from a feature cache depend on: the file (path, size, time) and the codec."""
    src = Path(features).resolve()
    return {"features": str(src), "size": src.stat().st_size, "mtime": int(src.stat().st_mtime),
            "tokenizer": codec.tokenizer_id}


def cached_codes(cache: Path, key: dict, make: Callable[[], np.ndarray]) -> np.ndarray:
    """Codes ``[K, N]`` read from ``cache`` when it was written with the same ``key``, else ``make()``'s, written
    there (int16, atomically) for the next run."""
    if cache.is_file():
        with np.load(cache, allow_pickle=False) as z:
            if json.loads(bytes(z["key"]).decode()) == key:
                return z["codes"].astype(np.int64)
    codes = make()
    cache.parent.mkdir(parents=True, exist_ok=True)
    tmp = cache.with_name(cache.name + ".partial.npz")
    np.savez(tmp, codes=codes.astype(np.int16), key=np.frombuffer(json.dumps(key).encode(), np.uint8))
    os.replace(tmp, cache)
    return codes.astype(np.int64)


def feature_codes(features: str | os.PathLike, am, codec, cache: Path, progress: bool = True) -> np.ndarray:
    """The cache's raw parameters ``[sum T, F]`` -> codes ``[K, sum T]`` of ``codec`` (every stream), read from
    ``cache`` when it was made from the same file for the same codec."""
    from tqdm import tqdm

    def make() -> np.ndarray:
        with np.load(features, allow_pickle=False) as z:
            feat = z["feat"]
        step = 50000
        return np.concatenate([am.to_codes(feat[i : i + step], codec) for i in
                               tqdm(range(0, len(feat), step), desc="codes", disable=not progress)], axis=1)

    return cached_codes(cache, features_key(features, codec), make)


def add_drafts(items: list[Item], am, codec, cache: Path, key: dict, progress: bool = True) -> None:
    """Give every utterance the duration model's tokens for it (:func:`~speechlm.lm.aligned.draft_features`
    with the data's durations, pitch and energy, quantised by ``codec``), read from ``cache`` when made with
    the same ``key`` (features file, duration model, codec)."""
    from tqdm import tqdm

    nar = am.model.eval()

    def draft(it: Item) -> np.ndarray:
        ids = torch.from_numpy(it.ids).long()
        with torch.no_grad():
            states = nar.encode(ids[None])[0][0]
        g = Guide(ids, torch.from_numpy(it.dur).long(), torch.from_numpy(it.pitch), torch.from_numpy(it.energy), states)
        return am.to_codes(draft_features(nar, g).numpy(), codec)

    flat = cached_codes(cache, key, lambda: np.concatenate(
        [draft(it) for it in tqdm(items, desc="drafts", disable=not progress)], 1))
    o = 0
    for it in items:
        t = it.codes.shape[1]
        it.draft = flat[:, o : o + t]
        o += t


def load_items(features: str | os.PathLike, am, codec, cache: Path, progress: bool = True) -> list[Item]:
    """Utterances of the cache with their codes (pitch/energy normalised with the NAR's statistics)."""
    from speechlm.lm.acoustic_data import AcousticDataset

    need = {"feat", "ids", "dur", "feat_len", "tok_len"}
    try:
        with np.load(features, allow_pickle=False) as z:
            missing = need - set(z.files)
            n_feat = z["feat"].shape[1] if "feat" in z.files else None
            sub = int(z["sub_frames"]) if "sub_frames" in z.files else 1
    except (OSError, ValueError) as exc:
        raise SpeechLMError(f"{features}: not a readable feature cache ({str(exc)[:120]})") from None
    if missing:
        raise SpeechLMError(f"{features}: not a feature cache of `speechlm acoustic features` (no "
                            f"{', '.join(sorted(missing))})")
    if sub != 1:
        raise SpeechLMError(f"{features}: has {sub} sub-frames per codec frame; the aligned LM needs a 20-ms cache "
                            "(speechlm acoustic features --sub-frames 1)")
    if n_feat != am.config.n_feat:
        raise SpeechLMError(f"{features}: {n_feat} features per frame; the duration model expects {am.config.n_feat}")
    stats = (am.model.feat_mean.numpy(), am.model.feat_std.numpy())
    ds = AcousticDataset(features, n_mcep=am.config.n_mcep, stats=stats)
    codes = feature_codes(features, am, codec, cache, progress)
    items, o = [], 0
    for u in ds.utts:
        t = len(u.feat)
        if int(u.dur.sum()) != t:
            raise SpeechLMError(f"{features}: durations do not sum to the frame count")
        items.append(Item(u.ids, u.dur, u.pitch, u.energy, codes[:, o : o + t]))
        o += t
    return items


def make_batch(model: AlignedLM, items: list[Item], prompts: list[np.ndarray | None]
               ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """Utterances (+ optional prompt codes ``[K, P]`` each) -> (condition ``[B, L, D]``, codes ``[B, K, L]``,
    frame mask ``[B, L]``, loss weight ``[B, L]``: 1 on target frames, the draft per frame ``[B, K, L]`` for a
    model with the copy bonus, else None)."""
    n = max(len(it.ids) for it in items)
    ids = torch.zeros(len(items), n, dtype=torch.long)
    for b, it in enumerate(items):
        ids[b, : len(it.ids)] = torch.from_numpy(it.ids)
    with torch.no_grad():
        states, _ = model.nar.encode(ids)
    guides = [Guide(ids[b, : len(it.ids)], torch.from_numpy(it.dur), torch.from_numpy(it.pitch),
                    torch.from_numpy(it.energy), states[b, : len(it.ids)],
                    None if it.draft is None else torch.from_numpy(it.draft)) for b, it in enumerate(items)]
    plen = [0 if p is None else p.shape[1] for p in prompts]
    cond, mask = model.condition(guides, plen)
    draft = model.draft_frames(guides, plen, cond.shape[1]) if model.copy_gain is not None else None
    k = model.cfg.n_streams
    codes = torch.zeros(len(items), k, cond.shape[1], dtype=torch.long)
    weight = torch.zeros(len(items), cond.shape[1])
    for b, (it, p) in enumerate(zip(items, prompts)):
        seq = it.codes if p is None else np.concatenate([p, it.codes], 1)
        codes[b, :, : seq.shape[1]] = torch.from_numpy(seq.astype(np.int64))
        weight[b, plen[b] : seq.shape[1]] = 1.0
    return cond, codes, mask, weight, draft


def pick_prompts(items: list[Item], batch: list[int], cfg: AlignedTrainConfig, rng: random.Random
                 ) -> list[np.ndarray | None]:
    """For each utterance of ``batch``, with probability ``prompt_prob``, a random 1-3 s span of another one."""
    out: list[np.ndarray | None] = []
    for i in batch:
        if len(items) < 2 or rng.random() >= cfg.prompt_prob:
            out.append(None)
            continue
        j = rng.randrange(len(items) - 1)
        j += j >= i
        c = items[j].codes
        n = min(c.shape[1], rng.randint(*cfg.prompt_frames))
        s = rng.randint(0, c.shape[1] - n)
        out.append(c[:, s : s + n])
    return out


def loss_of(model: AlignedLM, batch, prev_drop: float = 0.0) -> tuple[torch.Tensor, torch.Tensor]:
    """A batch of :func:`make_batch` -> (mean loss, per-stream losses ``[K]``); ``prev_drop``: the chance that a
    target frame's input hides the previous frame (training only)."""
    cond, codes, mask, weight, draft = batch
    keep = None
    if prev_drop > 0:
        keep = (torch.rand(weight.shape) >= prev_drop) | (weight == 0)
    per = stream_losses(model(cond, codes, mask, keep, draft), codes, weight)
    return per.mean(), per


def train_aligned(features: str | os.PathLike, out: str | os.PathLike, cfg: AlignedTrainConfig,
                  nar: str | os.PathLike | None = None, codec_name: str = "codec_sf", valid_fraction: float = 0.02,
                  progress: bool = True) -> Path:
    """Train on a feature cache; writes ``codes.npz``, checkpoints and ``log.jsonl`` under ``out``; returns the
    last checkpoint. A run folder with checkpoints resumes from its newest one."""
    from tqdm import tqdm

    from speechlm.errors import CheckpointError
    from speechlm.lm.acoustic_api import AcousticTTSModel
    from speechlm.text.symbols import default_symbols
    from speechlm.tokenizers.codec.api import Codec
    from speechlm.train.batching import length_batches
    from speechlm.train.checkpoint import checkpoint_path, latest_checkpoint, load_train_state, save_checkpoint
    from speechlm.train.schedule import BudgetedCosine
    from speechlm.train.seed import seed_everything

    torch.set_num_threads(cfg.threads)
    seed_everything(cfg.seed)
    out = Path(out)
    last = latest_checkpoint(out)
    if last is not None:  # resume with the duration model the run started with
        meta = json.loads((last / "config.json").read_text())
        nar = str(last)
    codec = Codec.load(codec_name)
    if not hasattr(codec, "quantizer"):
        raise SpeechLMError(f"{codec_name} is not a source-filter codec")
    am = None if last is not None else AcousticTTSModel.load(nar)
    if am is not None and am.tokenizer and am.tokenizer != codec.tokenizer_id:
        raise CheckpointError(f"{am.path} was trained for {am.tokenizer}, not {codec.tokenizer_id}")
    if last is not None:
        from speechlm.lm.acoustic import AcousticConfig
        from speechlm.lm.acoustic_api import VoiceStats
        from speechlm.lm.aligned import load_aligned

        loaded = load_aligned(last)
        model = loaded.model
        ex = meta["config"]
        am = AcousticTTSModel(model.nar, AcousticConfig(**ex["nar"]), loaded.tokenizer, loaded.symbols,
                              VoiceStats.from_dict(meta["extra"]["voice_stats"]), last, meta)
    items = load_items(features, am, codec, out / "codes.npz", progress)
    if (model.cfg.draft if last is not None else bool(cfg.model.get("draft"))):
        nar_id = (am.meta.get("extra") or {}).get("nar") or am.model_id
        add_drafts(items, am, codec, out / "drafts.npz", {**features_key(features, codec), "nar": nar_id}, progress)
    rng = random.Random(cfg.seed)
    idx = list(range(len(items)))
    rng.shuffle(idx)
    n_val = max(1, int(len(idx) * valid_fraction))
    val, tr = [items[i] for i in idx[:n_val]], [items[i] for i in idx[n_val:]]
    if last is None:
        # the streams AcousticTTSModel.to_codes gives: every envelope stage (its frames have no f0.mid)
        mcfg = AlignedConfig(vocab=am.config.vocab, cardinalities=list(codec.cardinalities[: codec.envelope_streams]),
                             nar_dim=am.config.d_model, **cfg.model)
        model = build(mcfg, am.config)
        model.nar.load_state_dict(am.model.state_dict())
        model.nar.requires_grad_(False)
    mcfg = model.cfg
    params = [p for n, p in model.named_parameters() if not n.startswith("nar.")]
    opt = torch.optim.AdamW(params, lr=cfg.lr, betas=(0.9, 0.98), weight_decay=cfg.weight_decay)
    lr_mult = BudgetedCosine(cfg.warmup, cfg.steps, cfg.final_lr, cfg.max_minutes)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_mult(s))  # a function: no state saved
    step = 0
    if last is not None:
        step = load_train_state(last, optimizer=opt, scheduler=sched).step
    out.mkdir(parents=True, exist_ok=True)
    config = {"model": asdict(mcfg), "nar": asdict(am.config), "train": asdict(cfg)}
    info = {"kind": KIND, "tokenizer": codec.tokenizer_id, "symbols": am.symbols or default_symbols().hash,
            "langs": ["en"], "voice_stats": am.voice.to_dict(),
            "nar": (am.meta.get("extra") or {}).get("nar") or am.model_id,
            "train_utterances": len(tr), "train_frames": int(sum(it.codes.shape[1] for it in tr)),
            "features": str(features)}
    n_train = sum(p.numel() for p in params)
    log = (out / "log.jsonl").open("a")
    log.write(json.dumps({"event": "start", "step": step, "trainable_params": n_train,
                          "train_utterances": len(tr)}) + "\n")
    bar = tqdm(total=cfg.steps, initial=step, desc="aligned LM", disable=not progress)
    t0 = time.time()
    lr_mult.start()
    vrng = random.Random(cfg.seed + 1)
    val_prompts = pick_prompts(val, list(range(len(val))), cfg, vrng)
    stop = False
    tr_frames = [it.codes.shape[1] for it in tr]  # frames per training utterance, for length-bucketed batches
    while step < cfg.steps and not stop:
        for b in length_batches(tr_frames, cfg.batch_frames, rng):
            model.train()
            loss, per = loss_of(model, make_batch(model, [tr[i] for i in b], pick_prompts(tr, b, cfg, rng)),
                                cfg.prev_drop)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
            opt.step()
            sched.step()
            step += 1
            bar.update(1)
            stop = lr_mult.over
            if step % cfg.log_every == 0 or stop or step >= cfg.steps:
                row = {"step": step, "time": round(time.time() - t0, 1), "lr": sched.get_last_lr()[0],
                       "loss": round(float(loss.detach()), 4),
                       **{f"ce/{s}": round(float(v.detach()), 4) for s, v in zip(codec.stream_names, per)}}
                if step % (cfg.log_every * 4) == 0 or stop or step >= cfg.steps:
                    model.eval()
                    with torch.no_grad():
                        vl = [float(loss_of(model, make_batch(model, val[i : i + 8], val_prompts[i : i + 8]))[0])
                              for i in range(0, len(val), 8)]
                    row["val_loss"] = round(float(np.mean(vl)), 4)
                log.write(json.dumps(row) + "\n")
                log.flush()
                bar.set_postfix(loss=row["loss"])
            if step % cfg.save_every == 0 or step >= cfg.steps or stop:
                save_checkpoint(checkpoint_path(out, step), model=model, config=config, step=step, optimizer=opt,
                                scheduler=sched, extra=info)
            if step >= cfg.steps or stop:
                break
    bar.close()
    log.write(json.dumps({"event": "end", "step": step, "seconds": round(time.time() - t0, 1)}) + "\n")
    log.close()
    return latest_checkpoint(out)
