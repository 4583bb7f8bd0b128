"""A harmonic oscillator bank inside the iSTFT decoder's frames (harmonic-plus-noise decoding).

A Vocos-style head predicts a phase per STFT bin and frame; on a CPU training budget it does not learn to keep
harmonics coherent from frame to frame, so the decoder settles on a noise-excited (whispered) output and the
encoder stops carrying pitch. This branch gives the decoder an explicit source: per frame it predicts F0, a
voicing probability, a loudness and a distribution over ``K`` harmonics; each frame becomes ``n_fft`` samples of
``sum_k A_k sin(k * psi(n))`` whose phase ``psi`` runs continuously from frame to frame (the phase at each frame
centre is the running sum of the mean F0 between centres). The frames are added to the iSTFT frames before the
overlap-add, so the noise/aperiodic part and streaming are unchanged. Training supervises F0 and voicing with
YIN (:func:`speechlm.audio.features.f0`), so the codes must carry pitch.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from speechlm.tokenizers.codec.streaming import StreamingModule

F0_MIN, F0_MAX = 50.0, 550.0


class HarmonicControls(nn.Module):
    """Decoder features ``[B, F', W]`` -> F0 Hz ``[B, F']``, voicing logit ``[B, F']``, amplitudes ``[B, K, F']``."""

    def __init__(self, width: int, n_harmonics: int) -> None:
        super().__init__()
        self.n_harmonics = n_harmonics
        self.proj = nn.Linear(width, 3 + n_harmonics)
        # Not silent at the start: a magnitude loss's gradient for the amplitude of a component added to an
        # uncorrelated signal is proportional to that amplitude, so a branch started near zero stays there.
        with torch.no_grad():
            self.proj.bias.zero_()

    def forward(self, h: torch.Tensor, sample_rate: int, f0_ref: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """``f0_ref`` ``[B, F']`` (Hz, 0 where unknown) replaces the predicted F0 of the oscillators where > 0
        (teacher forcing in training); ``f0`` in the result stays the prediction (for its loss)."""
        p = self.proj(h)  # [B, F', 3 + K]
        f0 = F0_MIN * (F0_MAX / F0_MIN) ** torch.sigmoid(p[..., 0])
        # The oscillators get F0 without a gradient: through sin(k * phase) the reconstruction loss's gradient
        # with respect to F0 is large and oscillating, and drowns the F0 loss (F0 stopped learning with it).
        f0_osc = f0.detach() if f0_ref is None else torch.where(f0_ref > 0, f0_ref.clamp(F0_MIN, F0_MAX), f0.detach())
        voiced_logit = p[..., 1]
        loudness = F.softplus(p[..., 2])
        k = torch.arange(1, self.n_harmonics + 1, device=h.device, dtype=h.dtype)
        above = k[None, None, :] * f0_osc[..., None] >= sample_rate / 2  # harmonics past Nyquist are silent
        dist = torch.softmax(p[..., 3:].masked_fill(above, -1e4), dim=-1)
        amps = (loudness * torch.sigmoid(voiced_logit))[..., None] * dist
        return {"f0": f0, "f0_osc": f0_osc, "voiced_logit": voiced_logit, "amps": amps.transpose(1, 2)}


class HarmonicFrames(StreamingModule):
    """Controls per frame -> time-domain frames ``[B, n_fft, F']`` of a phase-continuous harmonic sum.

    Frame ``i`` holds ``sum_k A[k, i] sin(k * (psi_i + 2 pi f0_i (n - n_fft / 2) / sr))`` for ``n < n_fft``, with
    ``psi_i = psi_{i-1} + 2 pi hop (f0_{i-1} + f0_i) / (2 sr)`` (``psi_0 = 0``). Streaming carries ``psi`` and
    the last F0 (the phase sum runs in float64, wrapped to one turn, so chunked equals offline up to the float32
    rounding of the F0 it is given).
    """

    def __init__(self, n_fft: int, hop: int, sample_rate: int) -> None:
        super().__init__()
        self.n_fft, self.hop, self.sample_rate = n_fft, hop, sample_rate
        self.register_buffer("offsets", torch.arange(n_fft, dtype=torch.float32) - n_fft / 2, persistent=False)

    def forward(self, f0: torch.Tensor, amps: torch.Tensor) -> torch.Tensor:
        """f0 ``[B, F']`` Hz, amps ``[B, K, F']`` -> frames ``[B, n_fft, F']``."""
        b, n_frames = f0.shape
        f64 = f0.detach().double()
        prev = self._state.get("f0") if self._state is not None else None
        prev = f64[:, :1] if prev is None else prev
        steps = math.tau * self.hop * (torch.cat([prev, f64[:, :-1]], dim=1) + f64) / (2 * self.sample_rate)
        if self._state is None or "psi" not in self._state:
            steps[:, 0] = 0.0
            start = torch.zeros(b, 1, dtype=torch.float64, device=f0.device)
        else:
            start = self._state["psi"]
        psi = torch.remainder(start + torch.cumsum(steps, dim=1), math.tau)  # [B, F'] phase at each centre
        if self._state is not None:
            self._state["psi"] = psi[:, -1:]
            self._state["f0"] = f64[:, -1:]
        # Phase inside frame i: psi_i + the F0 ramp around the frame centre.
        ramp = math.tau * f0[:, None, :] * self.offsets[None, :, None] / self.sample_rate  # [B, n_fft, F']
        theta = psi.to(f0.dtype)[:, None, :] + ramp
        out = torch.zeros_like(theta)
        for k in range(amps.shape[1]):  # one partial at a time: memory stays at one [B, n_fft, F'] buffer
            out = out + amps[:, k, None, :] * torch.sin((k + 1) * theta)
        return out
