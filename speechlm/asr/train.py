"""Training recipe for the conformer CTC model (phoneme + character heads).

Data: one or more manifests (JSONL contract). Utterances of split ``train`` are trained on, ``valid`` ones are
scored (PER / CER, greedy decoding) every ``eval_every`` steps, ``test`` is never touched here. Log-mels of
the whole corpus are computed once into memory (float16): the clean signal plus ``aug_copies`` copies passed
through :func:`speechlm.audio.augment.random_augment` (noise, reverberation, speed/pitch), so a step costs
only the model. SpecAugment masks are drawn fresh at every step.

Time budget: with ``optim.max_minutes`` set, the first steps are timed and ``train.max_steps`` is capped to
what fits, so the learning-rate schedule (linear warm-up, cosine decay) still ends decayed.

Checkpoints (safetensors + JSON, :mod:`speechlm.train.checkpoint`) go to ``OUT/checkpoints/step_*`` with
optimizer state; a rerun with the same ``OUT`` resumes from the newest one. The inference export ``OUT/final``
holds float16 weights, the label sets and the feature settings: that folder is what ``--model`` takes.
"""

from __future__ import annotations

import random
import sys
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor
from tqdm import tqdm

from speechlm.asr.decode import greedy_decode
from speechlm.asr.labels import DEFAULT_CHARS, LabelSet, char_tokens, phone_tokens
from speechlm.asr.model import ConformerCTC, CTCModelConfig, count_parameters, spec_augment
from speechlm.asr.transcriber import MODEL_KIND
from speechlm.data.manifest import Utterance, manifest_root, read_manifest
from speechlm.errors import SpeechLMError
from speechlm.text.wer import sequence_errors
from speechlm.train.loop import TrainConfig
from speechlm.train.schedule import warmup_cosine


@dataclass(frozen=True)
class FeatureConfig:
    """Log-mel front end: 25 ms windows every 10 ms at 16 kHz -> 100 frames/s."""

    sample_rate: int = 16000
    n_fft: int = 400
    hop_length: int = 160
    n_mels: int = 80


@dataclass(frozen=True)
class OptimConfig:
    lr: float = 2e-3
    weight_decay: float = 1e-2
    warmup_steps: int = 200
    max_minutes: float = (
        0.0  # wall-clock budget: caps train.max_steps from a timing of the first steps; 0 = none
    )
    batch_seconds: float = 60.0  # audio per batch (padding included)
    phone_weight: float = 0.5  # loss = w * phone CTC + (1 - w) * char CTC


@dataclass(frozen=True)
class ASRTrainConfig:
    model: CTCModelConfig = field(default_factory=CTCModelConfig)
    features: FeatureConfig = field(default_factory=FeatureConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(
        default_factory=lambda: TrainConfig(
            max_steps=4000, clip_grad_norm=5.0, eval_every=250, ckpt_every=250, keep=2
        )
    )
    aug_copies: int = 2  # augmented copies of every training utterance, precomputed
    aug_copies_by_manifest: tuple[int, ...] = ()  # per --data manifest, in order (overrides aug_copies)
    spec_augment: bool = True
    max_utt_seconds: float = 20.0
    max_train_utts: int = 0  # 0 = all
    max_valid_utts: int = 200
    langs: tuple[str, ...] = ()  # () = every language in the manifests
    num_threads: int = 1
    workers: int = 0  # processes that decode, augment and featurize the corpus (0 or 1 = in this process)
    init: str = ""  # warm start: an exported ASR (asset name or folder); its model shape and label sets are kept


@dataclass
class Example:
    """One precomputed training item."""

    feats: Tensor  # [n_mels, F] float16
    phones: Tensor  # [Lp] int64
    chars: Tensor  # [Lc] int64
    lang: str
    uid: str


# --------------------------------------------------------------------------------------------------
# data


def compute_features(wav: np.ndarray | Tensor, fc: FeatureConfig) -> Tensor:
    """Mono waveform ``[T]`` at ``fc.sample_rate`` -> log-mel ``[n_mels, 1 + T // hop]`` float32."""
    from speechlm.audio.features import log_mel

    return log_mel(wav, fc.sample_rate, n_fft=fc.n_fft, hop_length=fc.hop_length, n_mels=fc.n_mels)


def default_phone_labels(extra: Sequence[str] = ()) -> LabelSet:
    """The phoneme inventory of :func:`speechlm.text.symbols.default_symbols` (when its asset is installed)
    plus any ``extra`` phones seen in the training data, so no training phone is ever dropped."""
    from speechlm.text.symbols import default_symbols

    phones: list[str] = []
    try:
        phones = [p for p in default_symbols().phonemes if p not in ("ˈ", "ˌ")]  # stress is not a phone
    except SpeechLMError:  # the asset is not installed
        pass
    return LabelSet.from_symbols([*phones, *sorted(set(extra) - set(phones))])


def default_char_labels() -> LabelSet:
    """Space + the character table of :func:`speechlm.text.symbols.char_symbols` (all its alphabets) + the
    built-in Latin/Cyrillic list, so the head covers every alphabet either knows."""
    from speechlm.text.symbols import char_symbols

    chars: list[str] = []
    try:
        chars = list(char_symbols().phonemes)
    except SpeechLMError:  # the asset is not installed
        pass
    return LabelSet.from_symbols([" ", *chars, *DEFAULT_CHARS])


def phonemize_utterances(utts: Sequence[Utterance], show: bool = True) -> list[str]:
    """Phonemes of each utterance: the manifest's ``phonemes``, else espeak-ng G2P (batched by language)."""
    out: list[str | None] = [u.phonemes for u in utts]
    by_lang: dict[str, list[int]] = defaultdict(list)
    for i, u in enumerate(utts):
        if not out[i]:
            by_lang[u.lang].append(i)
    if by_lang:
        from speechlm.text.g2p import phonemize
        from speechlm.text.normalize import normalize_text
    for lang, idx in tqdm(sorted(by_lang.items()), desc="g2p", file=sys.stderr, disable=not show):
        for j, ph in zip(idx, phonemize([normalize_text(utts[j].text, lang) for j in idx], lang)):
            out[j] = ph
    return [o or "" for o in out]


AUGMENT_PROBS = {"pitch": 0.5, "reverb": 0.3, "band": 0.2, "noise": 0.5, "gain": 0.5}
SPEED_PROB, SPEED_RANGE = 0.6, (0.85, 1.2)


def augment_waveform(augment, wav: np.ndarray, sr: int, rng: np.random.Generator) -> np.ndarray:
    """One augmented copy: :func:`random_augment` (pitch +-3 semitones, reverb, band, noise, gain), then a
    tempo change (WSOLA) in ``SPEED_RANGE`` with probability ``SPEED_PROB``: held-out voices differ from the
    training ones in pitch, timbre and speaking rate."""
    out, _tags = augment.random_augment(wav, sr, rng, p=AUGMENT_PROBS)
    if rng.random() < SPEED_PROB:
        out = augment.time_stretch(out, sr, float(rng.uniform(*SPEED_RANGE)))
    return np.asarray(out, dtype=np.float32).reshape(-1)


def _one_thread() -> None:
    torch.set_num_threads(1)


def _featurize(job: tuple[str, int, tuple[int, int], FeatureConfig]) -> tuple[int, list[Tensor]]:
    """``(audio path, augmented copies, rng seed, features)`` -> (length in samples, [clean log-mel, then one per
    augmented copy]) float16.

    The augmentation draws come from a generator seeded by ``(seed, index)``, so the copies are the same
    whatever the number of worker processes."""
    from speechlm.audio.io import load_audio

    path, n_aug, rng_seed, fc = job
    wav, _ = load_audio(path, sr=fc.sample_rate)
    wav = wav[0]
    variants = [wav]
    if n_aug:
        import speechlm.audio.augment as augment

        rng = np.random.default_rng(list(rng_seed))
        variants += [augment_waveform(augment, wav, fc.sample_rate, rng) for _ in range(n_aug)]
    feats = [
        compute_features(torch.from_numpy(np.ascontiguousarray(v)), fc).to(torch.float16) for v in variants
    ]
    return len(wav), feats


def load_corpus(
    manifests: Sequence[str | Path],
    splits: Sequence[str],
    cfg: ASRTrainConfig,
    phone_set: LabelSet | None,
    char_set: LabelSet,
    aug_copies: int,
    seed: int,
    max_utts: int = 0,
    show: bool = True,
) -> tuple[list[Example], LabelSet, dict]:
    """Read, phonemize, (augment) and featurize the utterances of ``splits``.

    Returns (examples, the phone label set (built from the data when ``phone_set`` is None), a data summary).
    """
    fc = cfg.features
    if aug_copies and cfg.aug_copies_by_manifest and len(cfg.aug_copies_by_manifest) != len(manifests):
        raise SpeechLMError(f"aug_copies_by_manifest has {len(cfg.aug_copies_by_manifest)} entries for "
                            f"{len(manifests)} manifests")
    copies_of = list(cfg.aug_copies_by_manifest) if aug_copies and cfg.aug_copies_by_manifest else \
        [aug_copies] * len(manifests)
    utts: list[tuple[Utterance, Path, int]] = []
    for m, n_copies in zip(manifests, copies_of):
        root = manifest_root(m)
        for u in read_manifest(m):
            if (
                u.split in splits
                and (not cfg.langs or u.lang in cfg.langs)
                and u.duration <= cfg.max_utt_seconds
            ):
                utts.append((u, root, n_copies))
    if max_utts and len(utts) > max_utts:
        utts = random.Random(seed).sample(utts, max_utts)
    if not utts:
        raise SpeechLMError(f"no utterances of split {'/'.join(splits)} in {', '.join(map(str, manifests))}")
    phonemes = phonemize_utterances([u for u, _, _ in utts], show=show)
    if phone_set is None:
        phone_set = default_phone_labels([p for ph in phonemes for p in phone_tokens(ph)])
    augment = None
    if aug_copies:
        import speechlm.audio.augment as augment
    examples: list[Example] = []
    dropped_phones = dropped_chars = total_phones = total_chars = 0
    seconds = 0.0
    langs: dict[str, float] = defaultdict(float)
    jobs: list[tuple[str, int, tuple[int, int], FeatureConfig]] = []
    labels: list[tuple[list[int], list[int], str, str]] = []
    for i, ((u, root, n_copies), ph) in enumerate(zip(utts, phonemes)):
        p_tok = phone_tokens(ph)
        c_tok = char_tokens(u.text, u.lang)
        p_ids, _ = phone_set.encode(p_tok)
        c_ids, _ = char_set.encode(c_tok)
        dropped_phones += len(p_tok) - len(p_ids)
        dropped_chars += len(c_tok) - len(c_ids)
        total_phones += len(p_tok)
        total_chars += len(c_tok)
        if p_ids and c_ids:
            n_aug = n_copies if augment is not None else 0
            jobs.append((str(u.audio_path(root)), n_aug, (seed, i), fc))
            labels.append((p_ids, c_ids, u.lang, u.id))
    workers = max(0, int(cfg.workers))
    if workers > 1:
        import multiprocessing as mp

        with mp.get_context("spawn").Pool(workers, initializer=_one_thread) as pool:
            done = pool.imap(_featurize, jobs, chunksize=8)
            results = list(tqdm(done, total=len(jobs), desc="features", file=sys.stderr, disable=not show))
    else:
        results = [_featurize(j) for j in tqdm(jobs, desc="features", file=sys.stderr, disable=not show)]
    for (p_ids, c_ids, lang, uid), (n_samples, feats_list) in zip(labels, results):
        seconds += n_samples / fc.sample_rate
        langs[lang] += n_samples / fc.sample_rate
        for feats in feats_list:
            examples.append(Example(feats, torch.tensor(p_ids), torch.tensor(c_ids), lang, uid))
    summary = {
        "manifests": [str(m) for m in manifests],
        "splits": list(splits),
        "utterances": len(utts),
        "hours": round(seconds / 3600, 3),
        "hours_by_lang": {k: round(v / 3600, 3) for k, v in sorted(langs.items())},
        "aug_copies": copies_of if augment is not None else 0,
        "dropped_phones": dropped_phones,
        "total_phones": total_phones,
        "dropped_chars": dropped_chars,
        "total_chars": total_chars,
    }
    return examples, phone_set, summary


def make_batches(
    lengths: Sequence[int], max_frames: int, rng: random.Random, bucket: int = 64
) -> list[list[int]]:
    """Group item indices into batches of similar length whose padded size ``B * max_len <= max_frames``."""
    order = list(range(len(lengths)))
    rng.shuffle(order)
    batches: list[list[int]] = []
    for start in range(0, len(order), bucket * 8):
        chunk = sorted(order[start : start + bucket * 8], key=lambda i: lengths[i])
        cur: list[int] = []
        cur_max = 0
        for i in chunk:
            m = max(cur_max, lengths[i])
            if cur and m * (len(cur) + 1) > max_frames:
                batches.append(cur)
                cur, m = [], lengths[i]
            cur.append(i)
            cur_max = m
        if cur:
            batches.append(cur)
    rng.shuffle(batches)
    return batches


@dataclass(frozen=True)
class Batch:
    feats: Tensor  # [B, n_mels, F] float32
    lengths: Tensor  # [B]
    phones: Tensor  # [sum Lp]
    phone_lengths: Tensor  # [B]
    chars: Tensor  # [sum Lc]
    char_lengths: Tensor  # [B]

    def to(self, device, non_blocking: bool = False) -> Batch:
        return Batch(
            *(
                t.to(device, non_blocking=non_blocking)
                for t in (
                    self.feats,
                    self.lengths,
                    self.phones,
                    self.phone_lengths,
                    self.chars,
                    self.char_lengths,
                )
            )
        )


class BatchStream:
    """Re-iterable epochs of length-bucketed, collated (and SpecAugmented) batches; deterministic per epoch.

    The :class:`~speechlm.train.loop.Trainer` calls ``batch_sampler.set_epoch`` each epoch and skips the
    batches already seen on resume, so a resumed run sees the same batches as an uninterrupted one.
    """

    def __init__(self, examples: Sequence[Example], max_frames: int, seed: int, augment: bool) -> None:
        self.examples, self.max_frames, self.seed, self.augment = examples, max_frames, seed, augment
        self.lengths = [e.feats.shape[-1] for e in examples]
        self.epoch = 0
        self.batch_sampler = self  # where the Trainer looks for set_epoch

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self):
        rng = random.Random(self.seed * 100003 + self.epoch)
        gen = torch.Generator().manual_seed(self.seed * 100003 + self.epoch)
        for b in make_batches(self.lengths, self.max_frames, rng):
            batch = collate([self.examples[i] for i in b])
            if self.augment:
                batch = replace(batch, feats=spec_augment(batch.feats, batch.lengths, gen))
            yield batch


def collate(items: Sequence[Example]) -> Batch:
    lens = [it.feats.shape[-1] for it in items]
    feats = torch.zeros(len(items), items[0].feats.shape[0], max(lens))
    for i, it in enumerate(items):
        feats[i, :, : lens[i]] = it.feats.float()
    return Batch(
        feats,
        torch.tensor(lens),
        torch.cat([it.phones for it in items]),
        torch.tensor([len(it.phones) for it in items]),
        torch.cat([it.chars for it in items]),
        torch.tensor([len(it.chars) for it in items]),
    )


def ctc_losses(model: ConformerCTC, batch: Batch) -> dict[str, Tensor]:
    """``ctc/phone`` and ``ctc/char``: each the batch mean of per-utterance CTC loss / target length."""
    out = model(batch.feats, batch.lengths)
    lp = F.ctc_loss(
        out.phone_logprobs.transpose(0, 1),
        batch.phones,
        out.lengths,
        batch.phone_lengths,
        blank=0,
        reduction="mean",
        zero_infinity=True,
    )
    lc = F.ctc_loss(
        out.char_logprobs.transpose(0, 1),
        batch.chars,
        out.lengths,
        batch.char_lengths,
        blank=0,
        reduction="mean",
        zero_infinity=True,
    )
    return {"ctc/phone": lp, "ctc/char": lc}


# --------------------------------------------------------------------------------------------------
# metrics


@torch.no_grad()
def score_examples(
    model: ConformerCTC, examples: Sequence[Example], max_frames: int = 20000
) -> dict[str, float]:
    """Greedy-decoding phone and character error rates over ``examples`` (``eval/per``, ``eval/cer``)."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    pe = pn = ce = cn = 0
    order = sorted(range(len(examples)), key=lambda i: examples[i].feats.shape[-1])
    batches = make_batches(
        [examples[i].feats.shape[-1] for i in order], max_frames, random.Random(0), bucket=len(order)
    )
    for b in batches:
        items = [examples[order[i]] for i in b]
        batch = collate(items).to(device)
        out = model(batch.feats, batch.lengths)
        for it, hp, hc in zip(
            items,
            greedy_decode(out.phone_logprobs, out.lengths),
            greedy_decode(out.char_logprobs, out.lengths),
        ):
            pe += sequence_errors(it.phones.tolist(), hp).errors
            pn += len(it.phones)
            ce += sequence_errors(it.chars.tolist(), hc).errors
            cn += len(it.chars)
    model.train(was_training)
    return {"eval/per": pe / max(1, pn), "eval/cer": ce / max(1, cn)}


# --------------------------------------------------------------------------------------------------
# the recipe


def build_model(
    cfg: ASRTrainConfig, phone_set: LabelSet, char_set: LabelSet
) -> tuple[ConformerCTC, ASRTrainConfig]:
    """The model for ``cfg`` with head sizes set from the label sets (returns the resolved config too)."""
    mcfg = replace(cfg.model, n_mels=cfg.features.n_mels, n_phones=len(phone_set), n_chars=len(char_set))
    return ConformerCTC(mcfg), replace(cfg, model=mcfg)


def export_model(
    model: ConformerCTC,
    cfg: ASRTrainConfig,
    phone_set: LabelSet,
    char_set: LabelSet,
    out_dir: str | Path,
    step: int,
    data_summary: dict | None = None,
    metrics: dict | None = None,
) -> Path:
    """Write the inference checkpoint (float16 weights + labels + feature settings) to ``out_dir``."""
    from speechlm.train.checkpoint import save_checkpoint

    sd = {
        k: (v.detach().to(torch.float16) if v.is_floating_point() else v.detach())
        for k, v in model.state_dict().items()
    }
    extra = {
        "kind": MODEL_KIND,
        "phone_labels": list(phone_set.labels),
        "char_labels": list(char_set.labels),
        "frame_rate": cfg.features.sample_rate / cfg.features.hop_length / cfg.model.subsample,
        "metrics": metrics or {},
    }
    return save_checkpoint(out_dir, model=sd, config=cfg, step=step, extra=extra, data_summary=data_summary)


def _init_checkpoint(source: str):
    """The exported ASR named by ``source`` (asset name or folder) for a warm start; not an ASR -> SpeechLMError."""
    from speechlm.asr.transcriber import resolve_model_dir
    from speechlm.train.checkpoint import load_checkpoint

    ckpt = load_checkpoint(resolve_model_dir(source))
    if ckpt.meta.get("extra", {}).get("kind") != MODEL_KIND:
        raise SpeechLMError(f"init: {ckpt.path} is not an exported ASR model")
    return ckpt


def _time_steps(model: ConformerCTC, stream: BatchStream, device: torch.device, n: int = 8) -> float:
    """Seconds per training step (forward + backward) on a copy of the model on ``device`` (the one the
    trainer will use), for the wall-clock budget. The first two steps (allocator and thread-pool or kernel
    warm-up) are not counted."""
    import copy

    probe = copy.deepcopy(model).to(device).train()
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    it = iter(stream)
    times = []
    for _ in range(n):
        batch = next(it, None)
        if batch is None:
            break
        t = time.perf_counter()
        losses = ctc_losses(probe, batch.to(device))
        sum(losses.values()).backward()
        sync()
        times.append(time.perf_counter() - t)
    times = times[2:] or times
    return float(np.median(times)) * 1.05 if times else 1.0  # + optimizer step and logging


def train(
    cfg: ASRTrainConfig, manifests: Sequence[str | Path], out_dir: str | Path, show: bool = True
) -> Path:
    """Train (or resume) on ``manifests`` and export; returns the exported model folder (``OUT/final``)."""
    from speechlm.train.checkpoint import latest_checkpoint, load_checkpoint
    from speechlm.train.config import load_config
    from speechlm.train.distributed import init_distributed
    from speechlm.train.loop import Trainer
    from speechlm.train.seed import seed_everything

    torch.set_num_threads(cfg.num_threads)
    seed_everything(cfg.train.seed)
    out_dir = Path(out_dir)
    char_set = default_char_labels()
    phone_set = None
    resume = latest_checkpoint(out_dir) if cfg.train.resume else None
    init = _init_checkpoint(cfg.init) if cfg.init else None
    if resume is not None:  # the label sets are part of the model: take them from the run, not built again
        saved = load_checkpoint(resume).meta["data_summary"]
        phone_set = LabelSet(tuple(saved["phone_labels"]))
        char_set = LabelSet(tuple(saved.get("char_labels") or char_set.labels))
    elif init is not None:
        phone_set = LabelSet(tuple(init.meta["extra"]["phone_labels"]))
        char_set = LabelSet(tuple(init.meta["extra"]["char_labels"]))
    if init is not None:  # the warm start's architecture wins over the recipe's
        saved_model = load_config(init.config["model"], CTCModelConfig)
        cfg = replace(cfg, model=saved_model)
    t0 = time.time()
    train_ex, phone_set, summary = load_corpus(
        manifests,
        ("train",),
        cfg,
        phone_set,
        char_set,
        cfg.aug_copies,
        cfg.train.seed,
        cfg.max_train_utts,
        show,
    )
    try:
        valid_ex, _, _ = load_corpus(
            manifests, ("valid",), cfg, phone_set, char_set, 0, cfg.train.seed, cfg.max_valid_utts, show
        )
    except SpeechLMError:
        valid_ex = []
    summary["phone_labels"] = list(phone_set.labels)
    if init is not None:  # "default" names another model once a new one ships: keep which weights it was
        summary["init_weights_sha256"] = init.weights_sha256
    summary["char_labels"] = list(char_set.labels)
    print(
        f"asr: {len(train_ex)} training items ({summary['hours']} h, aug copies {summary['aug_copies']}), "
        f"{len(valid_ex)} valid; data ready in {time.time() - t0:.0f} s",
        file=sys.stderr,
    )
    model, cfg = build_model(cfg, phone_set, char_set)
    if init is not None and resume is None:
        model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in init.state_dict.items()})
        print(f"asr: warm start from {init.path} (step {init.step})", file=sys.stderr)
    oc = cfg.optim
    max_frames = int(oc.batch_seconds * cfg.features.sample_rate / cfg.features.hop_length)
    stream = BatchStream(train_ex, max_frames, cfg.train.seed, cfg.spec_augment)
    dist = init_distributed()  # the device the trainer will use (CUDA when there is one)
    if oc.max_minutes > 0 and resume is None:
        per_step = _time_steps(model, stream, dist.device)
        steps = max(10, int(oc.max_minutes * 60 / per_step))
        if steps < cfg.train.max_steps:
            print(
                f"asr: {per_step:.2f} s/step: {steps} steps fit in {oc.max_minutes} min "
                f"(of max_steps {cfg.train.max_steps})",
                file=sys.stderr,
            )
            cfg = replace(cfg, train=replace(cfg.train, max_steps=steps))
    elif oc.max_minutes > 0:  # resuming a time-budgeted run: keep the step count its schedule was made for
        saved_steps = load_checkpoint(resume).config["train"]["max_steps"]
        cfg = replace(cfg, train=replace(cfg.train, max_steps=saved_steps))
    print(
        f"asr: model {count_parameters(model) / 1e6:.2f} M parameters, {len(phone_set)} phone labels, "
        f"{len(char_set)} char labels, {cfg.train.max_steps} steps",
        file=sys.stderr,
    )
    opt = torch.optim.AdamW(model.parameters(), lr=oc.lr, weight_decay=oc.weight_decay, betas=(0.9, 0.98))
    # cosine from step 0 under the warm-up ramp, to 5 % of the peak: the schedule the shipped model was trained with
    lam = warmup_cosine(oc.warmup_steps, cfg.train.max_steps, 0.05, decay_under_warmup=True)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lam)
    trainer = Trainer(
        out_dir,
        cfg.train,
        model=model,
        optimizer=opt,
        scheduler=sched,
        loss_fn=ctc_losses,
        loss_weights={"ctc/phone": oc.phone_weight, "ctc/char": 1 - oc.phone_weight},
        eval_fn=(lambda tr: score_examples(tr.raw["model"], valid_ex)) if valid_ex else None,
        model_config=cfg,
        data_summary=summary,
        dist=dist,
    )
    t1 = time.time()
    result = trainer.fit(stream)
    metrics = score_examples(model, valid_ex) if valid_ex else {}
    metrics = {
        **metrics,
        "train_seconds": round(time.time() - t1, 1),
        "steps": result.step,
        "final_loss": result.metrics.get("loss"),
    }
    print(f"asr: {result.step} steps in {(time.time() - t1) / 60:.1f} min; {metrics}", file=sys.stderr)
    return export_model(model, cfg, phone_set, char_set, out_dir / "final", result.step, summary, metrics)
