"""The codec network: causal encoder -> residual VQ -> decoder, with offline, batched and streaming paths."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from speechlm.errors import SpeechLMError
from speechlm.tokenizers.codec.decoder import ISTFTDecoder
from speechlm.tokenizers.codec.quantizer import QuantizerOutput, ResidualVQ, stage_counts
from speechlm.tokenizers.codec.streaming import streaming


@dataclass(frozen=True)
class CodecOutput:
    """Result of :meth:`CodecModel.forward`.

    Attributes:
        wav: reconstruction ``[B, 1, T]`` (same T as the input).
        q: the quantizer's output (codes ``[B, K, F]``, commitment/codebook losses, n_q per item).
        controls: a harmonic decoder's F0 / voicing / amplitudes (see ``ISTFTDecoder.forward``), else None.
    """

    wav: torch.Tensor
    q: QuantizerOutput
    controls: dict[str, torch.Tensor] | None = None


class CodecModel(nn.Module):
    """Encoder, quantizer and decoder built by :func:`speechlm.tokenizers.codec.builder.build_codec`.

    Frame rate is ``sample_rate / hop``; each codebook costs ``log2(codebook_size) * frame_rate`` bits/s.

    With a ``unit_level`` (:class:`speechlm.tokenizers.codec.unit_level.UnitLevel`), codebook 1 is the semantic unit
    of the input and ``quantizer`` holds the other ``n_q - 1`` levels, which quantise the latent minus the unit's
    embedding; such a codec encodes offline only (the unit needs the whole input).
    """

    def __init__(
        self, encoder: nn.Module, quantizer: ResidualVQ, decoder: nn.Module, sample_rate: int,
        unit_level: nn.Module | None = None,
    ) -> None:
        super().__init__()
        self.encoder = encoder
        self.quantizer = quantizer
        self.decoder = decoder
        self.sample_rate = sample_rate
        self.hop = encoder.hop
        self.unit_level = unit_level

    @property
    def n_q(self) -> int:
        """Codebooks in all (the unit level included)."""
        return self.quantizer.n_q + (self.unit_level is not None)

    @property
    def frame_rate(self) -> float:
        return self.sample_rate / self.hop

    @property
    def latency_samples(self) -> int:
        """Algorithmic latency: one frame to fill the encoder's hop, plus the decoder's look-ahead."""
        return self.hop + int(getattr(self.decoder, "lookahead", 0))

    def _pad(self, wav: torch.Tensor) -> torch.Tensor:
        rem = (-wav.shape[-1]) % self.hop
        return F.pad(wav, (0, rem)) if rem else wav

    def forward(self, wav: torch.Tensor, n_q: int | None = None, f0_ref: torch.Tensor | None = None) -> CodecOutput:
        """wav ``[B, 1, T]`` -> :class:`CodecOutput` (quantizer dropout in training if ``n_q`` is None).

        ``f0_ref``: a harmonic decoder's oscillator F0 per iSTFT frame (teacher forcing, see ``ISTFTDecoder``)."""
        t = wav.shape[-1]
        # A frozen token space (decoder fine-tuning): no graph through the encoder and quantizer.
        tokens_trainable = any(p.requires_grad for p in (*self.encoder.parameters(), *self.quantizer.parameters()))
        with torch.set_grad_enabled(torch.is_grad_enabled() and tokens_trainable):
            z = self.encoder(self._pad(wav))
            q = self.quantizer(z, n_q=n_q) if self.unit_level is None else self._quantize_with_units(wav, z, n_q)
        if getattr(self.decoder, "harmonics", 0):
            wav, controls = self.decoder(q.z, return_controls=True, f0_ref=f0_ref)
            return CodecOutput(wav=wav[..., :t], q=q, controls=controls)
        return CodecOutput(wav=self.decoder(q.z)[..., :t], q=q)

    def _quantize_with_units(self, wav: torch.Tensor, z: torch.Tensor, n_q: int | None) -> QuantizerOutput:
        """Level 1 = the units of ``wav`` ``[B, 1, T]``; the quantizer's levels on ``z - embed(units)``."""
        b, f = z.shape[0], z.shape[-1]
        units = self.unit_level.units(wav, f)
        e1 = self.unit_level.decode(units)
        nq = stage_counts(b, self.n_q, n_q, self.training * self.quantizer.dropout, z.device)  # over all levels
        if int(nq.max()) <= 1:
            zero = z.new_zeros(())
            return QuantizerOutput(z=e1, codes=units[:, None], commit_loss=zero, codebook_loss=zero, n_q=nq)
        rest = self.quantizer(z - e1, nq=nq - 1) if n_q is None else self.quantizer(z - e1, n_q=n_q - 1)
        return QuantizerOutput(z=e1 + rest.z, codes=torch.cat([units[:, None], rest.codes], 1),
                               commit_loss=rest.commit_loss, codebook_loss=rest.codebook_loss, n_q=nq)

    def quantize(self, z: torch.Tensor, n_q: int | None = None, units: torch.Tensor | None = None) -> torch.Tensor:
        """Latent ``[B, D, F]`` -> codes ``[B, n_q, F]``; a unit codec needs the input's ``units`` ``[B, F]``."""
        if self.unit_level is None:
            return self.quantizer.encode(z, n_q)
        if units is None:
            raise SpeechLMError("this codec's first codebook is a semantic unit: it needs the units of the input")
        n_q = n_q or self.n_q
        if n_q == 1:
            return units[:, None]
        rest = self.quantizer.encode(z - self.unit_level.decode(units), n_q - 1)
        return torch.cat([units[:, None], rest], 1)

    def dequantize(self, codes: torch.Tensor) -> torch.Tensor:
        """codes ``[B, K, F]`` (K <= n_q) -> latent ``[B, D, F]``."""
        if self.unit_level is None:
            return self.quantizer.decode(codes)
        e1 = self.unit_level.decode(codes[:, 0])
        return e1 if codes.shape[1] == 1 else e1 + self.quantizer.decode(codes[:, 1:])

    def freeze_tokens(self) -> None:
        """Hold the token space fixed (encoder, quantizer projections and codebooks): only the decoder trains,
        so tokens made before stay valid (see :attr:`speechlm.tokenizers.codec.api.Codec.tokenizer_id`)."""
        unit_params = self.unit_level.parameters() if self.unit_level is not None else ()
        for p in (*self.encoder.parameters(), *self.quantizer.parameters(), *unit_params):
            p.requires_grad_(False)
        for layer in self.quantizer.layers:
            layer.frozen = True

    @torch.no_grad()
    def encode(
        self, wav: torch.Tensor, n_q: int | None = None, lengths: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """wav ``[B, 1, T]`` (right-padded) -> (codes ``[B, n_q, F]``, frames ``[B]``).

        ``lengths`` (samples, ``[B]``) marks each item's true length: everything after it is zeroed before
        encoding, so a padded item gets exactly the codes it gets alone (causal encoder), and frames past
        ``ceil(length / hop)`` are set to -1.
        """
        b, _, t = wav.shape
        if lengths is None:
            lengths = torch.full((b,), t, dtype=torch.long)
        mask = torch.arange(t)[None, :] < lengths[:, None]
        wav = self._pad(wav * mask[:, None, :].to(wav.dtype))
        z = self.encoder(wav)
        units = self.unit_level.units(wav, z.shape[-1], lengths) if self.unit_level is not None else None
        codes = self.quantize(z, n_q, units)
        frames = (lengths + self.hop - 1) // self.hop
        valid = torch.arange(codes.shape[-1])[None, :] < frames[:, None]
        return codes.masked_fill(~valid[:, None, :], -1), frames

    @torch.no_grad()
    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """codes ``[B, K, F]`` -> wav ``[B, 1, F * hop]``."""
        return self.decoder(self.dequantize(codes))

    @torch.no_grad()
    def encode_stream(self, chunks, n_q: int | None = None):
        """Yield codes ``[B, n_q, f]`` per wav chunk ``[B, 1, t]``; equals :meth:`encode` of their concat.

        The last partial frame is emitted by padding the final chunk; give chunks whose lengths are multiples
        of the hop except possibly the last. Not for a unit codec (its units need the whole input).
        """
        if self.unit_level is not None:
            raise SpeechLMError("a codec whose first codebook is a semantic unit encodes whole inputs, not streams")
        with streaming(self.encoder):
            for chunk in chunks:
                yield self.quantizer.encode(self.encoder(chunk), n_q)

    @torch.no_grad()
    def decode_stream(self, code_chunks):
        """Yield wav ``[B, 1, t]`` for each codes chunk ``[B, K, f]``; the concat equals :meth:`decode`."""
        with streaming(self.decoder):
            for codes in code_chunks:
                yield self.decoder(self.dequantize(codes))
            if isinstance(self.decoder, ISTFTDecoder):
                yield self.decoder.flush()
