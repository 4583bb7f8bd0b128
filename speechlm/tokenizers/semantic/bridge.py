"""The bridge from semantic units to sound: units (+ a voice prompt's codec tokens) -> codec tokens -> audio.

A bidirectional transformer predicts the codec's RVQ levels one at a time, VALL-E-NAR style: level ``k`` of every
frame is predicted from the frame's semantic unit, the levels ``< k`` already chosen, and a prefix holding the
prompt (its codec tokens and units). So the units carry what is said and the prompt carries who says it. Inference
is ``n_q`` passes, greedy. Semantic and codec frames share the 50 Hz grid, so there is no length model.

``Bridge.load(name_or_dir)`` (``speechlm/assets/bridge_NAME``) loads the model with the semantic tokenizer and the
codec it was trained for, and refuses to run if either differs (their ids are stored in the checkpoint).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from speechlm.errors import CheckpointError, SpeechLMError
from speechlm.tokenizers.tokens import Tokens, TokensFileError

ASSETS = Path(__file__).resolve().parents[2] / "assets"


@dataclass(frozen=True)
class BridgeConfig:
    """Sizes of the bridge."""

    n_units: int = 500
    n_q: int = 8
    codebook_size: int = 1024
    dim: int = 192
    layers: int = 4
    heads: int = 4
    ff_mult: int = 4
    dropout: float = 0.1
    pos_kernel: int = 15
    cards: tuple[int, ...] = ()  # codes of each level when they differ (a source-filter codec); () = codebook_size


class BridgeModel(nn.Module):
    """(units ``[B, T]``, codes of levels < k ``[B, n_q, T]``, prompt units ``[B, P]``, prompt codes
    ``[B, n_q, P]``, level ``k``) -> logits of level k ``[B, T, codebook_size]``."""

    def __init__(self, cfg: BridgeConfig) -> None:
        super().__init__()
        d = cfg.dim
        self.cfg = cfg
        self.unit_emb = nn.Embedding(cfg.n_units, d)
        self.code_emb = nn.Embedding(cfg.n_q * cfg.codebook_size, d)  # level j, code c -> row j * size + c
        self.level_emb = nn.Embedding(cfg.n_q, d)
        self.seg_emb = nn.Embedding(2, d)  # 0: prompt, 1: target
        self.pos_conv = nn.Conv1d(d, d, cfg.pos_kernel, padding=cfg.pos_kernel // 2, groups=16)
        self.layers = nn.ModuleList(
            nn.TransformerEncoderLayer(d, cfg.heads, cfg.ff_mult * d, cfg.dropout, activation="gelu",
                                       batch_first=True, norm_first=True)
            for _ in range(cfg.layers)
        )
        self.norm = nn.LayerNorm(d)
        self.heads = nn.Parameter(torch.randn(cfg.n_q, d, cfg.codebook_size) * d**-0.5)

    def _codes_sum(self, codes: torch.Tensor, upto: torch.Tensor) -> torch.Tensor:
        """Sum of code embeddings of levels ``< upto[b]``: codes ``[B, n_q, T]`` -> ``[B, T, dim]``."""
        offs = (torch.arange(self.cfg.n_q, device=codes.device) * self.cfg.codebook_size)[None, :, None]
        e = self.code_emb(codes + offs)  # [B, n_q, T, d]
        keep = (torch.arange(self.cfg.n_q, device=codes.device)[None] < upto[:, None]).to(e.dtype)
        return (e * keep[:, :, None, None]).sum(1)

    def forward(self, units: torch.Tensor, codes: torch.Tensor, prompt_units: torch.Tensor,
                prompt_codes: torch.Tensor, level: torch.Tensor) -> torch.Tensor:
        """Shapes in the class docstring; ``level`` ``[B]`` int (codes at levels >= level are ignored)."""
        b, p = prompt_units.shape
        full = torch.full((b,), self.cfg.n_q, device=units.device)
        xp = self.unit_emb(prompt_units) + self._codes_sum(prompt_codes, full) + self.seg_emb.weight[0]
        xt = (self.unit_emb(units) + self._codes_sum(codes, level) + self.seg_emb.weight[1]
              + self.level_emb(level)[:, None])
        x = torch.cat([xp, xt], dim=1)
        x = x + self.pos_conv(x.transpose(1, 2)).transpose(1, 2)
        for layer in self.layers:
            x = layer(x)
        h = self.norm(x[:, p:])
        return torch.einsum("btd,bdc->btc", h, self.heads[level])

    @torch.no_grad()
    def generate(self, units: torch.Tensor, prompt_units: torch.Tensor, prompt_codes: torch.Tensor,
                 temperature: float = 0.0, generator: torch.Generator | None = None,
                 voicing_level: int = -1) -> torch.Tensor:
        """Level by level: units ``[B, T]`` -> codes ``[B, n_q, T]`` (greedy, or sampled at ``temperature``).

        ``voicing_level``: the level that is an F0 stream (code 0 = unvoiced; -1: none), whose greedy choice
        decides the voicing first (:func:`~speechlm.tokenizers.source_filter.quantizer.greedy_pick`)."""
        from speechlm.tokenizers.source_filter.quantizer import greedy_pick

        b, t = units.shape
        codes = torch.zeros(b, self.cfg.n_q, t, dtype=torch.long, device=units.device)
        for k in range(self.cfg.n_q):
            logits = self(units, codes, prompt_units, prompt_codes, torch.full((b,), k, device=units.device))
            if k < len(self.cfg.cards):  # only the level's own codes
                logits[..., self.cfg.cards[k]:] = float("-inf")
            if temperature > 0:
                probs = torch.softmax(logits / temperature, -1).reshape(-1, logits.shape[-1])
                codes[:, k] = torch.multinomial(probs, 1, generator=generator).reshape(b, t)
            else:
                codes[:, k] = greedy_pick(logits.reshape(b * t, -1), k == voicing_level).reshape(b, t)
        return codes


def resolve_bridge_dir(name_or_dir: str | os.PathLike | None) -> Path:
    """``None``/``"default"`` -> ``speechlm/assets/bridge_default``; ``NAME`` -> ``bridge_NAME``; a folder (a
    checkpoint or a run folder, whose ``final/`` or newest checkpoint is used)."""
    from speechlm.utils.checkpoint import latest_checkpoint

    name = str(name_or_dir) if name_or_dir is not None else "default"
    p = Path(name)
    if not p.exists() and "/" not in name and (ASSETS / f"bridge_{name}").is_dir():
        p = ASSETS / f"bridge_{name}"
    if p.is_dir() and not (p / "model.safetensors").exists():
        p = p / "final" if (p / "final" / "model.safetensors").exists() else (latest_checkpoint(p) or p)
    if not (p / "model.safetensors").is_file():
        raise CheckpointError(f"bridge model {name!r} not found (a name under speechlm/assets or a folder)")
    return p


class Bridge:
    """A loaded bridge with its semantic tokenizer and codec. Build with :meth:`load`."""

    def __init__(self, model: BridgeModel, semantic, codec, model_id: str = "bridge@unsaved") -> None:
        self.model, self.semantic, self.codec = model.eval(), semantic, codec
        self.model_id = model_id  # ``NAME@HASH`` of the checkpoint it was loaded from

    @classmethod
    def load(cls, name_or_dir: str | os.PathLike | None = None) -> Bridge:
        from speechlm.tokenizers.codec.api import Codec
        from speechlm.tokenizers.semantic.api import SemanticTokenizer
        from speechlm.utils.checkpoint import load_checkpoint, model_id

        path = resolve_bridge_dir(name_or_dir)
        ckpt = load_checkpoint(path)
        meta = ckpt.config.get("bridge_meta") or ckpt.meta.get("extra", {})
        try:
            if meta.get("kind") == "regress":  # units -> source-filter parameters (bridge_regress)
                from speechlm.tokenizers.semantic.bridge_regress import RegressConfig, UnitRegressor

                model = UnitRegressor(RegressConfig(**ckpt.config["model"]))
            else:
                model = BridgeModel(BridgeConfig(**ckpt.config["model"]))
            model.load_state_dict({k: v.float() for k, v in ckpt.state_dict.items()})
        except (KeyError, TypeError, RuntimeError) as exc:
            raise CheckpointError(f"{path}: not a bridge checkpoint ({str(exc)[:200]})") from None
        semantic = SemanticTokenizer.load(meta.get("semantic_model") or None)
        codec = Codec.load(meta.get("codec_model") or None)
        for what, tok, want in (("semantic tokenizer", semantic, meta.get("semantic_id")),
                                ("codec", codec, meta.get("codec_id"))):
            if want and tok.tokenizer_id != want:
                raise CheckpointError(f"{path}: trained for {what} {want}, but {tok.tokenizer_id} is installed; "
                                      "retrain the bridge (speechlm.tokenizers.semantic.bridge_train)")
        return cls(model, semantic, codec, model_id(ckpt.meta, path))

    def _prompt_audio(self, wav: np.ndarray, sr: int) -> np.ndarray:
        """A prompt (``[T]`` or ``[C, T]`` at ``sr``) as mono float32 at the codec's rate."""
        from speechlm.audio.io import resample

        wav = np.asarray(wav, np.float32)
        wav = wav.mean(0) if wav.ndim == 2 else wav
        return resample(wav, int(sr), self.codec.sample_rate) if sr != self.codec.sample_rate else wav

    def prompt_tokens(self, wav: np.ndarray, sr: int, max_seconds: float = 3.0) -> tuple[np.ndarray, np.ndarray]:
        """A voice prompt -> (units ``[P]``, codec codes ``[n_q, P]``), the first ``max_seconds``."""
        wav = self._prompt_audio(wav, sr)[: int(max_seconds * self.codec.sample_rate)]
        units = self.semantic.encode(wav, self.codec.sample_rate).codes[0]
        codes = self.codec.encode(wav, self.codec.sample_rate).codes
        n = min(len(units), codes.shape[1])
        return units[:n].astype(np.int64), codes[:, :n].astype(np.int64)

    def to_codec_tokens(self, tokens: Tokens, prompt_wav: np.ndarray, prompt_sr: int, seed: int = 0,
                        temperature: float = 0.0) -> Tokens:
        """Semantic tokens (from this bridge's semantic tokenizer, not deduplicated) -> codec Tokens."""
        if tokens.tokenizer != self.semantic.tokenizer_id:  # say which units this bridge hears
            raise TokensFileError(f"these units were made by {tokens.tokenizer!r}; this bridge decodes "
                                  f"{self.semantic.tokenizer_id!r} units (speechlm semantic encode --model "
                                  f"{self.semantic.name})")
        if tokens.num_codebooks != 1 or abs(tokens.frame_rate - self.semantic.frame_rate) > 1e-6:
            raise TokensFileError("the bridge needs undeduplicated 50 Hz semantic tokens (encode without --dedup)")
        units = torch.from_numpy(tokens.codes.astype(np.int64))
        if isinstance(self.model, BridgeModel):
            pu, pc = self.prompt_tokens(prompt_wav, prompt_sr)
            names = list(getattr(self.codec, "stream_names", None) or [])
            codes = self.model.generate(units, torch.from_numpy(pu)[None], torch.from_numpy(pc)[None], temperature,
                                        torch.Generator().manual_seed(seed),
                                        names.index("f0") if "f0" in names else -1)[0].numpy()
        else:
            codes = self._regressed_codes(units, prompt_wav, prompt_sr)
        n_frames = getattr(self.codec, "n_frames", None)  # a codec that counts its frames from the samples
        if n_frames is not None and codes.shape[1]:  # e.g. one more than the units at a multiple of the hop
            need = int(n_frames(tokens.n_samples))
            codes = np.pad(codes[:, :need], ((0, 0), (0, max(0, need - codes.shape[1]))), mode="edge")
        return Tokens(codes=codes.astype(np.int16), sample_rate=self.codec.sample_rate,
                      frame_rate=self.codec.frame_rate, n_samples=tokens.n_samples,
                      tokenizer=self.codec.tokenizer_id, bitrate=self._kbps(len(codes)))

    def _kbps(self, n_q: int) -> float:
        """The codec's bitrate for its first ``n_q`` streams."""
        rates = self.codec.bitrates
        return float(rates[n_q - (self.codec.num_codebooks - len(rates) + 1)])

    def _regressed_codes(self, units: torch.Tensor, prompt_wav: np.ndarray, prompt_sr: int) -> np.ndarray:
        """The regression bridge: units ``[1, T]`` + the prompt's voice -> parameters -> codes ``[K, T]`` (every
        envelope stage, quantised as the codec encodes)."""
        from speechlm.tokenizers.semantic.bridge_regress import features_of_codes, voice_vector
        from speechlm.tokenizers.source_filter.features import frames_from_features

        codes = self.codec.encode(self._prompt_audio(prompt_wav, prompt_sr), self.codec.sample_rate).codes
        n_mcep = self.model.cfg.n_mcep
        voice = voice_vector(features_of_codes(self.codec, codes), n_mcep)
        feat = self.model.features(units, torch.from_numpy(voice)[None])[0].numpy()
        return self.codec.quantize(frames_from_features(feat, n_mcep), self.codec.envelope_streams)

    def decode(self, tokens: Tokens, prompt_wav: np.ndarray, prompt_sr: int, seed: int = 0) -> tuple[np.ndarray, int]:
        """Semantic tokens + a voice prompt -> (wav float32 ``[n_samples]``, sample rate)."""
        return self.codec.decode(self.to_codec_tokens(tokens, prompt_wav, prompt_sr, seed))

    def decode_to_file(self, tokens: Tokens, prompt: str | os.PathLike, path: str | os.PathLike, seed: int = 0
                       ) -> None:
        from speechlm.audio.io import load_audio

        wav, sr = load_audio(prompt, sr=self.codec.sample_rate)
        if wav.size == 0:
            raise SpeechLMError(f"prompt {prompt} has no audio")
        self.codec.decode_to_file(self.to_codec_tokens(tokens, wav, sr, seed), path)
