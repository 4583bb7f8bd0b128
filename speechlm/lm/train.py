"""The codec-LM training recipe on precomputed token shards, on the shared :class:`~speechlm.train.Trainer`.

``speechlm lm train --config configs/lm/default.yaml --data SHARDS_OR_MANIFEST --out DIR`` (or
``python -m speechlm.lm.train``; under ``torchrun`` it runs data-parallel). ``--data`` is a shard folder from
``speechlm lm shards``; a manifest is first encoded into ``DIR/shards`` with the shipped codec. Resumes from
the newest checkpoint in ``DIR``. Metrics: ``lm/loss``, ``lm/ce_K`` (voicecraft) or ``ar/ce``, ``nar/ce``
(valle), ``valid/loss`` in ``DIR/metrics.jsonl``.

The codec tokenizer id, the phoneme table hash and the data's frames-per-phone rate are saved in every
checkpoint; the model refuses tokens from another codec.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch

from speechlm.errors import SpeechLMError
from speechlm.lm.data import TokenData, Utt, collate_valle, collate_voicecraft
from speechlm.lm.model import LMConfig, build_lm, valle_loss, voicecraft_loss
from speechlm.train.config import load_config
from speechlm.train.distributed import ShardedBatchSampler, cleanup, init_distributed
from speechlm.train.loop import TrainConfig, Trainer
from speechlm.train.schedule import warmup_cosine
from speechlm.train.seed import seed_everything


@dataclass(frozen=True)
class LMTrainConfig:
    """Recipe settings (``lm:`` in the YAML)."""

    batch_size: int = 16
    lr: float = 1e-3
    weight_decay: float = 0.01
    warmup_steps: int = 100
    final_lr_ratio: float = 0.1
    p_tts: float = 0.5  # share of training sequences laid out as continuation (one span to the end)
    max_spans: int = 2
    max_frames: int = 600  # longer utterances are left out (12 s at 50 Hz)
    valid_items: int = 32
    num_threads: int = 0
    # codec that encodes a manifest given as --data (a shard folder carries its own): the shipped LM's codec
    codec: str = "codec_sf"


@dataclass(frozen=True)
class LMRecipeConfig:
    model: LMConfig = field(default_factory=LMConfig)
    lm: LMTrainConfig = field(default_factory=LMTrainConfig)
    train: TrainConfig = field(default_factory=TrainConfig)


class _Items(torch.utils.data.Dataset):
    def __init__(self, utts: list[Utt]) -> None:
        self.utts = utts

    def __len__(self) -> int:
        return len(self.utts)

    def __getitem__(self, i: int) -> Utt:
        return self.utts[i]


def resolve_data(data: str | Path, out_dir: Path, n_q: int, show_progress: bool = True,
                 codec: str = "codec_sf") -> Path:
    """A shard folder as is; a manifest (``.jsonl``) is encoded with ``codec`` (``lm.codec``) into ``out/shards``."""
    p = Path(data)
    if p.is_dir():
        return p
    if p.is_file() and p.suffix == ".jsonl":
        shards = out_dir / "shards"
        if not (shards / "index.json").is_file():
            from speechlm.lm.data import build_shards
            from speechlm.tokenizers.codec.api import Codec

            build_shards([p], shards, Codec.load(codec), n_q=n_q, show_progress=show_progress)
        return shards
    raise SpeechLMError(f"--data {data}: not a token shard folder or a .jsonl manifest")


def make_collate(cfg: LMRecipeConfig, n_symbols: int):
    m, c = cfg.model, cfg.lm
    if m.layout == "voicecraft":
        return lambda utts: collate_voicecraft(utts, m.n_codebooks, m.vocab, m.langs, n_symbols, c.p_tts,
                                               c.max_spans)
    return lambda utts: collate_valle(utts, m.n_codebooks, m.vocab, m.langs, n_symbols)


def make_loss(cfg: LMRecipeConfig):
    m = cfg.model
    if m.layout == "voicecraft":
        w = m.weights(m.n_codebooks)
        return lambda model, batch: voicecraft_loss(model, batch, w, m.vocab.pad)

    def loss(model, batch):
        stage = int(torch.randint(1, m.n_codebooks, ())) if m.n_codebooks > 1 else 0
        return valle_loss(model, batch, m.vocab.pad, m.vocab.eog, stage)

    return loss


def train(config: str | Path | None, data: str | Path, out_dir: str | Path, overrides: Sequence[str] = (),
          show_progress: bool = True) -> dict:
    """Train (or resume) a codec LM; returns the last metrics. See the module docstring."""
    from speechlm.text.symbols import default_symbols

    cfg = load_config(config, LMRecipeConfig, overrides)
    if cfg.lm.num_threads:
        torch.set_num_threads(cfg.lm.num_threads)
    dist = init_distributed()
    seed_everything(cfg.train.seed, dist.rank)
    out_dir = Path(out_dir)
    shard_dir = resolve_data(data, out_dir, cfg.model.n_codebooks, show_progress and dist.is_main, cfg.lm.codec)
    t0 = time.time()
    all_data = TokenData.load(shard_dir)
    index = all_data.index
    if cfg.model.n_codebooks > index["n_codebooks"]:
        raise SpeechLMError(f"model.n_codebooks={cfg.model.n_codebooks} but the shards hold {index['n_codebooks']}")
    if cfg.model.card != index["cardinality"]:
        raise SpeechLMError(f"model.card={cfg.model.card} but the codec has {index['cardinality']} codes")
    symbols = default_symbols()
    if index["symbols"] != symbols.hash:
        raise SpeechLMError("the shards were made with another phoneme table; rebuild them")
    cards = tuple(index.get("cardinalities", ()))[: cfg.model.n_codebooks]
    cards = () if all(c == cfg.model.card for c in cards) else cards  # an RVQ's: one size for all
    model_cfg = dataclasses.replace(cfg.model, text_vocab=len(symbols) + len(cfg.model.langs), cards=cards)
    cfg = dataclasses.replace(cfg, model=model_cfg)
    base_langs = set(model_cfg.langs)
    keep = [u for u in all_data.utts if u.codes.shape[1] <= cfg.lm.max_frames and u.codes.shape[1] >= 2
            and u.lang.split("-")[0] in base_langs]
    train_utts = [u for u in keep if u.split == "train"] or keep
    valid_utts = [u for u in keep if u.split == "valid"][: cfg.lm.valid_items] or train_utts[: cfg.lm.valid_items]
    if not train_utts:
        raise SpeechLMError(f"{shard_dir}: no usable utterance (<= {cfg.lm.max_frames} frames, known language)")
    collate = make_collate(cfg, len(symbols))
    loss_fn = make_loss(cfg)
    gen = torch.get_rng_state()
    torch.manual_seed(12345)  # a fixed validation batch (fixed spans/prompts)
    valid_batches = [collate(valid_utts[i : i + cfg.lm.batch_size])
                     for i in range(0, len(valid_utts), cfg.lm.batch_size)]
    torch.set_rng_state(gen)
    hours = sum(u.codes.shape[1] for u in train_utts) / index["frame_rate"] / 3600
    if dist.is_main:
        print(f"data: {len(train_utts)} train / {len(valid_utts)} valid utterances, {hours:.2f} h "
              f"({time.time() - t0:.1f} s to load), tokenizer {index['tokenizer']}", flush=True)

    model = build_lm(model_cfg)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lm.lr, weight_decay=cfg.lm.weight_decay, betas=(0.9, 0.95))
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, warmup_cosine(cfg.lm.warmup_steps, cfg.train.max_steps, cfg.lm.final_lr_ratio))
    sampler = ShardedBatchSampler(len(train_utts), cfg.lm.batch_size, seed=cfg.train.seed)
    loader = torch.utils.data.DataLoader(_Items(train_utts), batch_sampler=sampler, collate_fn=collate)

    def evaluate(tr: Trainer) -> dict[str, float]:
        torch_state = torch.get_rng_state()
        torch.manual_seed(0)  # valle picks a NAR stage at random: the same ones every evaluation
        tot = sum(float(loss_fn(tr.model, tr.to_device(b))["lm/loss"]) for b in valid_batches)
        torch.set_rng_state(torch_state)
        return {"valid/loss": tot / max(len(valid_batches), 1)}

    summary = {"shards": str(shard_dir), "tokenizer": index["tokenizer"], "symbols": index["symbols"],
               "frames_per_phone": index["frames_per_phone"], "frame_rate": index["frame_rate"],
               "train_hours": round(hours, 3), "train_utterances": len(train_utts)}
    # the step returns the per-codebook terms for logging and their weighted mean "lm/loss", which alone trains
    k = model_cfg.n_codebooks
    logged = ([f"lm/ce_{i}" for i in range(k)] if model_cfg.layout == "voicecraft"
              else ["ar/ce"] + (["nar/ce"] if k > 1 else []))
    trainer = Trainer(out_dir, cfg.train, model=model, optimizer=opt, scheduler=sched, loss_fn=loss_fn,
                      loss_weights={name: 0.0 for name in logged}, eval_fn=evaluate, model_config=cfg,
                      data_summary=summary, dist=dist)
    if dist.is_main:
        n = sum(p.numel() for p in model.parameters())
        print(f"lm: {model_cfg.layout}, {n / 1e6:.2f} M params, {model_cfg.n_codebooks} codebooks", flush=True)
    result = trainer.fit(loader)
    model.eval()
    with torch.no_grad():
        final = evaluate(trainer) if valid_batches else {}
    cleanup()
    return {**result.metrics, **final, "checkpoint": str(result.checkpoint)}


def export_model(src: str | Path, dest: str | Path, half: bool = True, prompt_audio: str | None = None,
                 prompt_text: str | None = None, prompt_lang: str = "en") -> Path:
    """Write an inference-only LM folder (e.g. ``speechlm/assets/lm_default``) from a run or checkpoint:
    weights (float16 with ``half``), the config, and the codec tokenizer id it was trained on. With
    ``prompt_audio``/``prompt_text``, also the default voice (``prompt.npz`` codes of the codec the LM was
    trained on, ``prompt.json`` transcript and phonemes) used when ``speechlm tts`` gets no prompt."""
    from speechlm.train.checkpoint import latest_checkpoint, load_checkpoint, save_checkpoint

    p = Path(src)
    if not (p / "model.safetensors").exists():
        latest = latest_checkpoint(p)
        if latest is None:
            raise SpeechLMError(f"{src}: no checkpoint")
        p = latest
    ckpt = load_checkpoint(p)
    sd = {k: v.half() if half and v.is_floating_point() else v for k, v in ckpt.state_dict.items()}
    if prompt_audio and not prompt_text:
        raise SpeechLMError("a default prompt needs its transcript")
    tokenizer = (ckpt.meta.get("data_summary") or {}).get("tokenizer")

    def write_prompt(folder: Path) -> None:  # part of the checkpoint: written before it is moved into place
        _write_default_prompt(folder, prompt_audio, prompt_text, prompt_lang, tokenizer,
                              int(ckpt.config["model"]["n_codebooks"]))

    save_checkpoint(dest, model=sd, config={"model": ckpt.config["model"]}, step=ckpt.step,
                    extra={"name": Path(dest).name, "weights": "fp16" if half else "fp32", "source": str(p),
                           "train_config": ckpt.config, **(ckpt.meta.get("data_summary") or {})},
                    data_summary=ckpt.meta.get("data_summary"), write_extra=write_prompt if prompt_audio else None)
    return Path(dest)


def _write_default_prompt(dest: Path, audio: str, text: str | None, lang: str, tokenizer: str | None,
                          n_q: int) -> None:
    import json

    from speechlm.audio.io import load_audio
    from speechlm.text.g2p import phonemize
    from speechlm.text.normalize import normalize_text
    from speechlm.tokenizers.base import encode_streams
    from speechlm.tokenizers.codec.api import Codec
    from speechlm.utils.atomic import atomic_write_text

    if not text:
        raise SpeechLMError("a default prompt needs its transcript")
    codec = Codec.for_tokenizer(tokenizer) if tokenizer else Codec.load()
    wav, sr = load_audio(audio, sr=codec.sample_rate)
    encode_streams(codec, wav[0], sr, n_q).save(dest / "prompt.npz")
    info = {"text": text, "lang": lang, "phonemes": phonemize([normalize_text(text, lang)], lang)[0],
            "source": str(audio)}
    atomic_write_text(dest / "prompt.json", json.dumps(info, ensure_ascii=False, indent=2))


def main(argv: list[str] | None = None) -> int:
    from speechlm.train.config import recipe_parser

    p = recipe_parser("Train a speechlm codec LM (python -m / torchrun entry point).", many_data=False)
    a = p.parse_args(argv)
    print(train(a.config, a.data, a.out, a.set))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
