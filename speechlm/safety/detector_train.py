"""Training the synthetic-speech detector on a corpus folder (:mod:`speechlm.safety.detector_data`).

Each training clip gives three views: the clean clip (at most 8 s) and two random 3-s crops through a random
transmission channel (:func:`~speechlm.safety.detector_data.channel_augment`: telephone band, Opus, MP3, noise,
gain), the same distribution for both classes. A batch is half human, half synthetic; within a class every source
is drawn equally often (so espeak-ng's many clips do not drown Piper's), then a clip, a view and a random crop of
64-201 frames (0.64-2 s). Binary cross-entropy, AdamW, warm-up then cosine decay, one CPU thread.

The threshold saved with the model is the equal-error threshold on the ``valid`` clips (10 % of each human
source; synthetic valid clips are a seeded 10 % of each train source). Test-only sources (festival, codec_pitch)
and ``--exclude`` corpus files or sources are never read.

:func:`combine` makes one detector of several trained alike (other seeds): their logits are averaged. The seeds'
synthetic valid clips differ (each member trained on the others'), so its threshold comes from the human valid
clips alone, which no member saw: the score that a stated share of them (``false_alarm``) reaches.
"""

from __future__ import annotations

import json
import math
import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from speechlm.safety.clip_stats import ClipHead, clip_logit, clip_statistics, fit_head, mix_logits
from speechlm.safety.detector import DetectorConfig, FeatureConfig, build_net, eer, features, num_params
from speechlm.safety.detector_data import SR, UNSEEN, Clip, channel_augment, load_corpus, recording_augment
from speechlm.train.schedule import warmup_cosine

MAX_CLEAN_S = 8.0


@dataclass(frozen=True)
class TrainConfig:
    max_steps: int = 2500
    max_minutes: float = 15.0
    batch_size: int = 64
    min_frames: int = 64
    max_frames: int = 201
    lr: float = 2e-3
    weight_decay: float = 1e-2
    warmup_steps: int = 100
    aug_views: int = 2
    aug_crop_s: float = 3.0
    valid_frac: float = 0.1
    seed: int = 0
    threads: int = 1
    workers: int = 2
    limit: int = 0  # clips per source (0: all), for quick runs
    exclude: tuple[str, ...] = ()
    recording_aug: bool = False  # also vary the recording (EQ, compression, room) of the augmented views
    detector: DetectorConfig = field(default_factory=DetectorConfig)


@dataclass
class _Item:
    views: list[torch.Tensor]  # float16 [channels, T] each
    label: int
    source: str


def _view_wavs(c: Clip, cfg: TrainConfig, rng: np.random.Generator) -> list[np.ndarray]:
    """A clip's views: the clip (its first ``MAX_CLEAN_S``), then ``aug_views`` random crops through a random
    channel (and recording, ``recording_aug``)."""
    out = [c.wav[: int(MAX_CLEAN_S * SR)]]
    crop = int(cfg.aug_crop_s * SR)
    for _ in range(cfg.aug_views):
        start = int(rng.integers(0, max(1, len(c.wav) - crop + 1)))
        wav = c.wav[start : start + crop]
        if cfg.recording_aug:
            wav, _ = recording_augment(wav, rng)
        wav, _ = channel_augment(wav, rng)
        out.append(wav)
    return out


def _views(c: Clip, cfg: TrainConfig, rng: np.random.Generator) -> list[torch.Tensor]:
    return [features(w, cfg.detector.features).half() for w in _view_wavs(c, cfg, rng)]


def _split_valid(clips: list[Clip], frac: float, seed: int) -> list[Clip]:
    """Synthetic train sources have no valid split of their own: move a seeded ``frac`` of each to ``valid``."""
    rng = random.Random(f"valid:{seed}")
    for c in clips:
        if c.label == 1 and c.split == "train" and rng.random() < frac:
            c.split = "valid"
    return clips


def _featurize_one(job: tuple[Clip, TrainConfig, int]) -> list[np.ndarray]:
    # numpy, not torch tensors: a tensor returned from a worker process travels as a shared-memory file
    # descriptor, and a corpus of a few thousand clips runs out of them (BrokenProcessPool)
    c, cfg, i = job
    torch.set_num_threads(1)
    return [v.numpy() for v in _views(c, cfg, np.random.default_rng([cfg.seed, i]))]


def featurize(clips: list[Clip], cfg: TrainConfig, log=print) -> dict[str, list[_Item]]:
    """Every clip's views (clean + ``aug_views`` augmented crops) as LFB features, in ``workers`` processes."""
    out: dict[str, list[_Item]] = {"train": [], "valid": []}
    t0 = time.time()
    jobs = [(c, cfg, i) for i, c in enumerate(clips)]
    if cfg.workers > 1:
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(cfg.workers) as ex:
            views = list(ex.map(_featurize_one, jobs, chunksize=32))
    else:
        views = [_featurize_one(j) for j in jobs]
    for c, v in zip(clips, views):
        out[c.split].append(_Item([torch.from_numpy(x) for x in v], c.label, c.source))
    log(f"features: {len(clips)} clips in {time.time() - t0:.0f} s")
    return out


def _crop(x: torch.Tensor, n: int, rng: random.Random) -> torch.Tensor:
    if x.shape[1] < n:  # a short clip: repeat it
        x = x.repeat(1, math.ceil(n / x.shape[1]))
    s = rng.randrange(0, x.shape[1] - n + 1)
    return x[:, s : s + n]


def make_batch(items: list[_Item], cfg: TrainConfig, rng: random.Random) -> tuple[torch.Tensor, torch.Tensor]:
    """A class-balanced, source-balanced batch: feats ``[B, n_bands, L]``, labels ``[B]`` (float)."""
    by: dict[int, dict[str, list[_Item]]] = {0: {}, 1: {}}
    for it in items:
        by[it.label].setdefault(it.source, []).append(it)
    n = rng.randint(cfg.min_frames, cfg.max_frames)
    feats, labels = [], []
    for b in range(cfg.batch_size):
        label = b % 2
        src = rng.choice(sorted(by[label]))
        it = rng.choice(by[label][src])
        # prefer a clip long enough for this crop: a few redraws before repeating a short one
        for _ in range(4):
            if it.views[0].shape[1] >= n:
                break
            it = rng.choice(by[label][src])
        feats.append(_crop(rng.choice(it.views), n, rng).float())
        labels.append(float(label))
    return torch.stack(feats), torch.tensor(labels)


@torch.no_grad()
def clip_scores(net: torch.nn.Module, feats: list[torch.Tensor], seg_frames: int = 201) -> np.ndarray:
    """File-level scores (sigmoid of the mean segment logit) of feature matrices ``[n_bands, T]``."""
    net.eval()
    out = []
    for x in feats:
        x = x.float()
        segs = [x[:, s : s + seg_frames] for s in range(0, max(1, x.shape[1] - seg_frames + 1), seg_frames)]
        if x.shape[1] > seg_frames and (x.shape[1] - seg_frames) % seg_frames:
            segs.append(x[:, -seg_frames:])
        w = max(s.shape[1] for s in segs)
        logits = net(torch.stack([torch.nn.functional.pad(s, (0, w - s.shape[1]), mode="replicate")
                                  if s.shape[1] < w else s for s in segs]))
        out.append(float(torch.sigmoid(logits.mean())))
    return np.array(out)


def validate(net: torch.nn.Module, items: list[_Item]) -> tuple[float, float]:
    """EER and its threshold over every view of the valid items."""
    feats = [v for it in items for v in it.views]
    labels = np.array([it.label for it in items for _ in it.views])
    s = clip_scores(net, feats)
    return eer(s[labels == 0], s[labels == 1])


def train(corpus: Path, out: Path, cfg: TrainConfig = TrainConfig(), log=lambda s: print(s, flush=True)) -> Path:
    """Train on ``corpus`` (train/valid splits) and write a checkpoint folder ``out``."""
    from speechlm.errors import SpeechLMError
    from speechlm.train.checkpoint import check_destination, save_checkpoint

    check_destination(out)
    torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    skip = set(UNSEEN) | set(cfg.exclude)
    clips = [c for c in load_corpus(corpus, ("train", "valid"), exclude=cfg.exclude) if c.source not in UNSEEN]
    if cfg.limit:
        per: dict[str, int] = {}
        clips = [c for c in clips if per.setdefault(c.source, 0) < cfg.limit and not per.update(
            {c.source: per[c.source] + 1})]
    clips = _split_valid(clips, cfg.valid_frac, cfg.seed)
    if not any(c.label == 0 for c in clips) or not any(c.label == 1 for c in clips):
        raise SpeechLMError(f"{corpus}: training needs human and synthetic clips")
    summary = {"corpus": str(corpus), "excluded": sorted(skip), "clips": {}}
    for c in clips:
        key = f"{c.split}/{c.source}"
        summary["clips"][key] = summary["clips"].get(key, 0) + 1
    log(f"{len(clips)} clips: {summary['clips']}")
    data = featurize(clips, cfg, log)
    net = build_net(cfg.detector)
    log(f"model: {num_params(net)} parameters")
    opt = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)

    sched = torch.optim.lr_scheduler.LambdaLR(opt, warmup_cosine(cfg.warmup_steps, cfg.max_steps, 0.0))
    rng = random.Random(cfg.seed)
    loss_fn = torch.nn.BCEWithLogitsLoss()
    t0, step, running = time.time(), 0, 0.0
    history = []
    while step < cfg.max_steps and (time.time() - t0) < cfg.max_minutes * 60:
        net.train()
        x, y = make_batch(data["train"], cfg, rng)
        loss = loss_fn(net(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        step += 1
        running = 0.98 * running + 0.02 * loss.item() if step > 1 else loss.item()
        if step % 100 == 0:
            log(f"step {step} loss {running:.4f} ({time.time() - t0:.0f} s)")
        if step % 500 == 0:
            e, _ = validate(net, data["valid"])
            history.append({"step": step, "valid_eer": e})
            log(f"step {step} valid EER {e:.4f}")
    e, thr = validate(net, data["valid"])
    history.append({"step": step, "valid_eer": e})
    log(f"final step {step}: valid EER {e:.4f} at threshold {thr:.4f} ({time.time() - t0:.0f} s)")
    det = DetectorConfig(cfg.detector.features, cfg.detector.net, round(thr, 6))
    tc = {k: v for k, v in asdict(cfg).items() if k != "detector"}
    return save_checkpoint(out, model=net, config={"detector": det.to_dict(), "train": tc}, step=step,
                           extra={"name": "detector_default", "valid_eer": e, "history": history,
                                  "minutes": round((time.time() - t0) / 60, 2)},
                           data_summary=summary)


CLIP_CROP_S = 3  # the clip head's augmented view: the clip's first seconds through a random channel


def _clip_stats_one(job: tuple[Clip, FeatureConfig, int, int, int]) -> np.ndarray:
    """``[1 + channel_views, D]``: the clip; its first ``CLIP_CROP_S`` through a random channel; further random
    crops of that length through random channels."""
    c, feats, seed, i, channel_views = job
    torch.set_num_threads(1)
    rng = np.random.default_rng([seed, i])
    crop = CLIP_CROP_S * SR
    views = [clip_statistics(c.wav, feats)]
    for k in range(channel_views):
        start = 0 if k == 0 else int(rng.integers(0, max(1, len(c.wav) - crop + 1)))
        views.append(clip_statistics(channel_augment(c.wav[start : start + crop], rng)[0], feats))
    return torch.stack(views).numpy()


def fit_clip_head(corpus: Path, feats: FeatureConfig, exclude: tuple[str, ...] = (), per_human: int = 1500,
                  per_synthetic: int = 250, l2: float = 1e-3, seed: int = 0, workers: int = 2, channel_views: int = 1,
                  log=lambda s: print(s, flush=True)) -> ClipHead:
    """Fit :class:`speechlm.safety.clip_stats.ClipHead` on the corpus's ``train`` clips (seen generators, less
    ``exclude``; at most ``per_human`` / ``per_synthetic`` clips a source, drawn with ``seed``): the clip and
    ``channel_views`` 3-s crops of it through a random channel (the first from its start); class-balanced
    logistic loss + ``l2`` on the weights, L-BFGS. The human ``valid`` clips stay out (the ensemble's threshold
    is set on them)."""
    from speechlm.errors import SpeechLMError

    clips = [c for c in load_corpus(corpus, ("train",), exclude=exclude) if c.source not in UNSEEN]
    by: dict[tuple[int, str], list[Clip]] = {}
    for c in clips:
        by.setdefault((c.label, c.source), []).append(c)
    rnd = random.Random(seed)
    clips = [c for (label, _), group in by.items()
             for c in rnd.sample(group, min(len(group), per_synthetic if label else per_human))]
    if not any(c.label == 0 for c in clips) or not any(c.label == 1 for c in clips):
        raise SpeechLMError(f"{corpus}: the clip statistics need human and synthetic train clips")
    t0 = time.time()
    jobs = [(c, feats, seed, i, channel_views) for i, c in enumerate(clips)]
    if workers > 1:
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(workers) as ex:
            stats = list(ex.map(_clip_stats_one, jobs, chunksize=32))
    else:
        stats = [_clip_stats_one(j) for j in jobs]
    x = torch.from_numpy(np.concatenate(stats))  # [(1 + channel_views) N, D]
    y = torch.tensor([float(c.label) for c in clips for _ in range(1 + channel_views)])
    head = fit_head(x, y, l2)
    with torch.no_grad():
        s = head(x).numpy()
    y_np = y.numpy()
    log(f"clip statistics: {len(clips)} clips x {1 + channel_views} views, {x.shape[1]} statistics, "
        f"{time.time() - t0:.0f} s; "
        f"train EER {eer(s[y_np == 0], s[y_np == 1])[0]:.4f}")
    return head.eval()


def view_scores(net: torch.nn.Module, config: DetectorConfig, clips: list[Clip], log=print) -> np.ndarray:
    """File scores ``[N x (1 + aug_views)]`` of every view of ``clips`` (the views :func:`featurize` draws): the
    sigmoid of the networks' mean segment logit, mixed with ``net.clip_head``'s logit of the same view where
    ``config.net.clip_weight`` > 0 (mixed as :meth:`speechlm.safety.detector.Detector.score_wav` mixes them; the
    views are scored as training saw them, without that method's trimming and 16-bit steps)."""
    cfg = TrainConfig(detector=config)
    t0 = time.time()
    wavs = [v for i, c in enumerate(clips) for v in _view_wavs(c, cfg, np.random.default_rng([cfg.seed, i]))]
    scores = clip_scores(net, [features(v, config.features).half() for v in wavs])
    w = config.net.clip_weight
    log(f"{len(clips)} clips, {len(wavs)} views scored in {time.time() - t0:.0f} s")
    if not w:
        return scores
    head = np.array([clip_logit(net.clip_head, v, config.features) for v in wavs])
    p = np.clip(scores, 1e-7, 1 - 1e-7)
    return 1.0 / (1.0 + np.exp(-mix_logits(np.log(p / (1 - p)), head, w)))


def combine(members: list[Path], corpus: Path, out: Path, false_alarm: float = 0.02, clip_weight: float = 0.0,
            clip_exclude: tuple[str, ...] = (), clip_views: int = 1, log=lambda s: print(s, flush=True)) -> Path:
    """Average the logits of the detector checkpoints ``members`` (same features and net; some may add the
    same phase features, :func:`speechlm.safety.detector.phase_features`, the others read the LFB alone) into one
    checkpoint ``out`` (members without phase features first); its threshold: the ``1 - false_alarm`` quantile
    of the scores of the corpus's human ``valid`` clips (every view, as :func:`validate` scores them).

    ``clip_weight`` > 0: also fit a logistic regression on whole-clip statistics (:func:`fit_clip_head`, on the
    train clips less ``clip_exclude``, ``clip_views`` channel views a clip) and weigh its logit in so
    (``NetConfig.clip_weight``); the threshold is then set on the combined scores."""
    from dataclasses import replace

    from speechlm.errors import SpeechLMError
    from speechlm.safety.detector import Detector, DetectorEnsemble, resolve_model_dir
    from speechlm.train.checkpoint import check_destination, save_checkpoint

    if len(members) < 2:
        raise SpeechLMError("combining needs at least two detector checkpoints")
    if not 0.0 < false_alarm < 0.5:
        raise SpeechLMError(f"false_alarm must be in (0, 0.5), not {false_alarm}")
    if not 0.0 <= clip_weight < 1.0:
        raise SpeechLMError(f"clip_weight must be in [0, 1), not {clip_weight}")
    if clip_views < 1:
        raise SpeechLMError(f"clip_views must be at least 1, not {clip_views}")
    check_destination(out)
    dets = [Detector.load(m) for m in members]
    phase = max(d.config.features.phase_bands for d in dets)
    first = dets[0].config
    for m, d in zip(members, dets):
        if d.config.net.members != 1:
            raise SpeechLMError(f"{m} is an ensemble already; combine single models")
        if (replace(d.config.features, phase_bands=0) != replace(first.features, phase_bands=0)
                or d.config.net != first.net or d.config.features.phase_bands not in (0, phase)):
            raise SpeechLMError(f"{m}: features or net differ from {members[0]}'s; members must be trained alike "
                                "(with or without the same phase features)")
    # members without phase features first: each reads the leading channels it was trained on
    order = sorted(range(len(dets)), key=lambda i: dets[i].config.features.phase_bands > 0)
    members, dets = [members[i] for i in order], [dets[i] for i in order]
    lfb_only = sum(d.config.features.phase_bands == 0 for d in dets)
    first = DetectorConfig(replace(first.features, phase_bands=phase), first.net)
    net = DetectorEnsemble([d.net for d in dets]).eval()
    cfg = TrainConfig(detector=first)
    clips = [c for c in load_corpus(corpus, ("valid",)) if c.label == 0 and c.source not in UNSEEN]
    if not clips:
        raise SpeechLMError(f"{corpus}: no human valid clips to set the threshold on")
    if clip_weight:
        net.clip_head = fit_clip_head(corpus, first.features, tuple(clip_exclude), workers=cfg.workers,
                                      channel_views=clip_views, log=log)
    scores = view_scores(net, DetectorConfig(first.features, replace(first.net, clip_weight=clip_weight)), clips,
                         log)
    thr = float(np.quantile(scores, 1.0 - false_alarm))
    log(f"{len(clips)} human valid clips ({len(scores)} views): threshold {thr:.4f} at {false_alarm:.1%} false alarms")
    det = DetectorConfig(first.features, replace(first.net, members=len(dets), clip_weight=clip_weight,
                                                 lfb_only_members=lfb_only if phase else 0), round(thr, 6))
    metas = [json.loads((resolve_model_dir(m) / "config.json").read_text(encoding="utf-8")) for m in members]
    extra = {"name": "detector_default", "members": [d.model_id for d in dets],
             "member_steps": [mt.get("step") for mt in metas],
             "member_minutes": [(mt.get("extra") or {}).get("minutes") for mt in metas],
             "threshold_rule": f"{false_alarm:.0%} false alarms on the human valid clips",
             "clip_exclude": sorted(clip_exclude), "clip_views": clip_views,
             "valid_human_clips": len(clips)}
    return save_checkpoint(out, model=net, config={"detector": det.to_dict()}, step=0, extra=extra,
                           data_summary={"corpus": str(corpus), "members": [str(m) for m in members]})
