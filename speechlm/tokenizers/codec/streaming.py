"""Streaming building blocks: causal convolutions that can run chunk by chunk, carrying their state.

Every module here has one offline ``forward``; inside ``with streaming(model):`` the same ``forward`` consumes
consecutive chunks and carries what it needs from the previous chunk (left context of a convolution, the
overlapping tail of a transposed convolution / overlap-add). The concatenated chunk outputs equal the offline
output (``tests/test_codec_streaming.py``). Batch size must stay fixed while streaming.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import weight_norm


class StreamingModule(nn.Module):
    """A module whose ``forward`` can run offline or on consecutive chunks (``self._state`` not None)."""

    def __init__(self) -> None:
        super().__init__()
        self._state: dict[str, torch.Tensor] | None = None

    @property
    def is_streaming(self) -> bool:
        return self._state is not None


def set_streaming(model: nn.Module, on: bool) -> None:
    for m in model.modules():
        if isinstance(m, StreamingModule):
            m._state = {} if on else None


@contextlib.contextmanager
def streaming(model: nn.Module) -> Iterator[nn.Module]:
    """Run ``model`` chunk by chunk inside the block; state is dropped when it ends."""
    set_streaming(model, True)
    try:
        yield model
    finally:
        set_streaming(model, False)


def remove_weight_norm(model: nn.Module) -> None:
    """Fold weight-norm parametrizations into plain weights (faster inference; same outputs)."""
    from torch.nn.utils import parametrize

    for m in model.modules():
        if parametrize.is_parametrized(m, "weight"):
            parametrize.remove_parametrizations(m, "weight", leave_parametrized=True)


class CausalConv1d(StreamingModule):
    """Conv1d padded on the left only, so output frame t sees input up to ``(t + 1) * stride``.

    Input ``[B, Cin, T]`` -> output ``[B, Cout, T // stride]`` (offline; T should be a multiple of stride).
    """

    def __init__(
        self,
        cin: int,
        cout: int,
        kernel_size: int,
        stride: int = 1,
        dilation: int = 1,
        groups: int = 1,
        bias: bool = True,
        norm: bool = True,
    ) -> None:
        super().__init__()
        conv = nn.Conv1d(cin, cout, kernel_size, stride=stride, dilation=dilation, groups=groups, bias=bias)
        self.conv = weight_norm(conv) if norm else conv
        self.stride = stride
        self.eff_kernel = (kernel_size - 1) * dilation + 1
        # Left padding making the frame count T // stride and the layer causal.
        self.pad = self.eff_kernel - stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self._state is None:
            return self.conv(F.pad(x, (self.pad, 0)))
        buf = self._state.get("buf")
        if buf is None:
            buf = x.new_zeros(x.shape[0], x.shape[1], self.pad)
        buf = torch.cat([buf, x], dim=-1)
        n_out = (
            (buf.shape[-1] - self.eff_kernel) // self.stride + 1 if buf.shape[-1] >= self.eff_kernel else 0
        )
        if n_out <= 0:
            self._state["buf"] = buf
            return x.new_zeros(x.shape[0], self.conv.out_channels, 0)
        y = self.conv(buf[..., : (n_out - 1) * self.stride + self.eff_kernel])
        self._state["buf"] = buf[..., n_out * self.stride :]
        return y


class CausalConvTranspose1d(StreamingModule):
    """Transposed conv whose output sample j depends on input frames <= j // stride.

    Input ``[B, Cin, T]`` -> output ``[B, Cout, T * stride]``. The overlapping tail (kernel - stride) is
    carried to the next chunk when streaming.
    """

    def __init__(self, cin: int, cout: int, kernel_size: int, stride: int, norm: bool = True) -> None:
        super().__init__()
        if kernel_size < stride:
            raise ValueError("kernel_size must be >= stride")
        conv = nn.ConvTranspose1d(cin, cout, kernel_size, stride=stride, bias=False)
        self.conv = weight_norm(conv) if norm else conv
        self.bias = nn.Parameter(torch.zeros(cout))
        self.stride = stride
        self.trim = kernel_size - stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x)
        n = x.shape[-1] * self.stride
        if self._state is not None:
            tail = self._state.get("tail")
            if tail is not None and self.trim:
                y = torch.cat([y[..., : self.trim] + tail, y[..., self.trim :]], dim=-1)
            self._state["tail"] = y[..., n:]
        return y[..., :n] + self.bias[:, None]


class OverlapAdd(StreamingModule):
    """Inverse STFT by windowed overlap-add of frames ``[B, n_fft, F]`` -> samples ``[B, F * hop]``.

    Output sample j is read ``n_fft - hop`` samples after frame ``j // hop`` starts, so each one is complete
    (all overlapping windows added): the head's look-ahead, part of the codec's algorithmic latency.
    Streaming drops the first ``n_fft - hop`` samples once and carries the overlapping tail; ``flush`` returns
    the last samples at the end of a stream.
    """

    def __init__(self, n_fft: int, hop: int) -> None:
        super().__init__()
        self.n_fft, self.hop = n_fft, hop
        self.delay = n_fft - hop
        self.register_buffer("window", torch.hann_window(n_fft, periodic=True), persistent=False)
        # A periodic Hann window overlap-added at hop n_fft/4 sums to n_fft / (2 * hop); normalise it to 1.
        self.scale = 2.0 * hop / n_fft

    def _ola(self, frames: torch.Tensor) -> torch.Tensor:
        b, n, f = frames.shape
        frames = frames * self.window[None, :, None] * self.scale
        out = F.fold(
            frames, output_size=(1, (f - 1) * self.hop + n), kernel_size=(1, n), stride=(1, self.hop)
        )
        return out.reshape(b, -1)

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        if frames.shape[-1] == 0:
            return frames.new_zeros(frames.shape[0], 0)
        y = self._ola(frames)
        f = frames.shape[-1]
        if self._state is None:
            return y[:, self.delay : self.delay + f * self.hop]
        tail = self._state.get("tail")
        if tail is not None:
            y = torch.cat([y[:, : self.delay] + tail, y[:, self.delay :]], dim=-1)
        self._state["tail"] = y[:, f * self.hop :]
        out = y[:, : f * self.hop]
        skip = int(self._state.get("skip", torch.tensor(self.delay)))
        if skip:
            cut = min(skip, out.shape[-1])
            out = out[:, cut:]
            self._state["skip"] = torch.tensor(skip - cut)
        return out

    def flush(self) -> torch.Tensor:
        """At the end of a stream: the samples still held back (as offline decoding would produce them)."""
        if self._state is None or self._state.get("tail") is None:
            return torch.zeros(0)
        tail = self._state["tail"]
        skip = int(self._state.get("skip", torch.tensor(0)))
        return tail[:, skip : self.delay]


def stream_state(model: nn.Module) -> list[dict[str, torch.Tensor] | None]:
    """A copy of every streaming module's carried state, in module order (restore it with :func:`load_stream_state`)."""
    return [None if m._state is None else {k: v.clone() for k, v in m._state.items()}
            for m in model.modules() if isinstance(m, StreamingModule)]


def load_stream_state(model: nn.Module, state: list[dict[str, torch.Tensor] | None]) -> None:
    """Put back a state taken by :func:`stream_state` from the same model (copied, so it can be reused)."""
    mods = [m for m in model.modules() if isinstance(m, StreamingModule)]
    if len(mods) != len(state):
        raise ValueError(f"stream state has {len(state)} modules, the model {len(mods)}")
    for m, s in zip(mods, state, strict=True):
        m._state = None if s is None else {k: v.clone() for k, v in s.items()}
