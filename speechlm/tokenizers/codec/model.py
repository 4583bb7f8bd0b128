"""The codec network: causal encoder -> residual VQ -> decoder, with offline, batched and streaming paths."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from speechlm.tokenizers.codec.decoder import ISTFTDecoder
from speechlm.tokenizers.codec.quantizer import QuantizerOutput, ResidualVQ
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
    """

    def __init__(
        self, encoder: nn.Module, quantizer: ResidualVQ, decoder: nn.Module, sample_rate: int
    ) -> None:
        super().__init__()
        self.encoder = encoder
        self.quantizer = quantizer
        self.decoder = decoder
        self.sample_rate = sample_rate
        self.hop = encoder.hop

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
            q = self.quantizer(z, n_q=n_q)
        if getattr(self.decoder, "harmonics", 0):
            wav, controls = self.decoder(q.z, return_controls=True, f0_ref=f0_ref)
            return CodecOutput(wav=wav[..., :t], q=q, controls=controls)
        return CodecOutput(wav=self.decoder(q.z)[..., :t], q=q)

    def freeze_tokens(self) -> None:
        """Hold the token space fixed (encoder, quantizer projections and codebooks): only the decoder trains,
        so tokens made before stay valid (see :attr:`speechlm.tokenizers.codec.api.Codec.tokenizer_id`)."""
        for p in (*self.encoder.parameters(), *self.quantizer.parameters()):
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
        codes = self.quantizer.encode(self.encoder(wav), n_q)
        frames = (lengths + self.hop - 1) // self.hop
        valid = torch.arange(codes.shape[-1])[None, :] < frames[:, None]
        return codes.masked_fill(~valid[:, None, :], -1), frames

    @torch.no_grad()
    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """codes ``[B, K, F]`` -> wav ``[B, 1, F * hop]``."""
        return self.decoder(self.quantizer.decode(codes))

    @torch.no_grad()
    def encode_stream(self, chunks, n_q: int | None = None):
        """Yield codes ``[B, n_q, f]`` per wav chunk ``[B, 1, t]``; equals :meth:`encode` of their concat.

        The last partial frame is emitted by padding the final chunk; give chunks whose lengths are multiples
        of the hop except possibly the last.
        """
        with streaming(self.encoder):
            for chunk in chunks:
                yield self.quantizer.encode(self.encoder(chunk), n_q)

    @torch.no_grad()
    def decode_stream(self, code_chunks):
        """Yield wav ``[B, 1, t]`` for each codes chunk ``[B, K, f]``; the concat equals :meth:`decode`."""
        with streaming(self.decoder):
            for codes in code_chunks:
                yield self.decoder(self.quantizer.decode(codes))
            if isinstance(self.decoder, ISTFTDecoder):
                yield self.decoder.flush()
