"""DNSMOS P.835 computed once per clip instead of once per 9.01-s window (:func:`speechlm.eval.mos.dnsmos`).

The network frames 16-kHz audio into 320-sample frames every 160 samples (a window: 900 frames), then runs four
3x3 convolutions at the frame rate (96 % of its work) and a cheap rest at 1/2-1/8 of it (pooling, three small
convolutions, a global max over time, a dense head). The frame-rate part is translation-equivariant, so:

- a clip longer than a window: its frame-rate features are computed once (in blocks of 30 windows), each
  window takes its 900 frames of them, and only the 4 frames at each edge of a window, which see the window's
  zero padding, are recomputed from 0.13-s pieces; the rest of the network runs per window;
- a clip shorter than a window is tiled to one (as the reference does); when its length is a whole number of
  frames, the tiled window repeats every ``period`` frames, so the features of one period (plus the window's
  last frames) stand for all 900.

Both give the per-window loop's numbers (to about 1e-5; tested). The graph is cut in memory with the ``onnx``
package (:func:`load` returns None without it, or for another version of the model).

``bf16=True``: the frame-rate convolutions run in bfloat16 through torch (oneDNN) instead of onnxruntime, 1.8x
faster where the CPU computes bfloat16 natively (AMX or AVX512-BF16; :func:`native_bf16`), not the same numbers
(OVRL within a few thousandths; ``benchmarks/dnsmos_fast.py``).
"""

from __future__ import annotations

import functools

import numpy as np

HALF = 160  # samples: half a frame, the frame hop
WINDOW_FRAMES = 900
WINDOW_SAMPLES = HALF * (WINDOW_FRAMES + 1)  # 9.01 s
EDGE = 4  # frames at each edge of a window whose frame-rate features see its zero padding (four 3x3 layers)
PIECE_FRAMES = 3 * EDGE  # the edge pieces' length in frames
SHORT_FRAMES_MAX = 800  # onnxruntime: a tiled clip of up to 8 s is scored from one period (longer: no gain)
SPLIT_AT = "mos_estimator_logpow/conv2d_3/Relu:0"  # [1, 32, frames, 161], the last frame-rate layer
_CONVS = ("conv2d", "conv2d_1", "conv2d_2", "conv2d_3")
_BLOCK = 30  # windows per shared pass: bounds memory (about 20 MB of features a second of audio)


def native_bf16() -> bool:
    """Whether this CPU computes bfloat16 natively (AMX or AVX512-BF16) and torch's oneDNN can use it (oneDNN
    alone would say yes on any AVX-512 CPU, emulating bfloat16, which is no faster)."""
    try:
        import torch

        native = torch.cpu._is_amx_tile_supported() or torch.cpu._is_avx512_bf16_supported()
        return bool(native and torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (ImportError, AttributeError, RuntimeError):
        return False


class SharedP835:
    """The P.835 network cut at :data:`SPLIT_AT`: ``front`` maps audio ``[n]`` (``n`` a multiple of 160) to
    frame-rate features ``[32, n // 160 - 1, 161]``; ``back`` a window's ``[1, 32, 900, 161]`` of them to the raw
    ``(sig, bak, ovr)``."""

    def __init__(self, front, back, bf16: bool) -> None:
        self._front, self._back, self.bf16 = front, back, bf16

    def pays(self, n: int, n_windows: int) -> bool:
        """Whether sharing is exact and cheaper for a clip of ``n`` samples scored on ``n_windows``."""
        if self.bf16:
            return True  # the front costs half the fused network: even one plain window gains
        if n >= WINDOW_SAMPLES:
            return n_windows > 1
        return n % HALF == 0 and n // HALF <= SHORT_FRAMES_MAX

    def raw(self, x: np.ndarray, starts: list[int], sr: int = 16000) -> list[np.ndarray]:
        """Raw ``(sig, bak, ovr)`` of the windows of ``x [T]`` the per-window loop scores: the tiled clip's first
        window if ``x`` is shorter than one, else those starting at ``starts`` seconds."""
        from speechlm.eval.mos import _tiled

        if x.size < WINDOW_SAMPLES:
            window = _tiled(x)[:WINDOW_SAMPLES]
            period = x.size // HALF
            if x.size % HALF or period + 2 * EDGE + 2 > WINDOW_FRAMES - PIECE_FRAMES:
                return [self._run_back(self._features(window))]
            head = self._features(window[: HALF * (period + 2 * EDGE + 2)])  # frames 0 .. period + 2 EDGE
            k = np.arange(WINDOW_FRAMES)
            feats = head[:, np.where(k <= period + EDGE, k, EDGE + (k - EDGE) % period)]
            return [self._run_back(self._with_edges(feats, window))]
        out = []
        for b in range(0, len(starts), _BLOCK):
            block = starts[b: b + _BLOCK]
            feats = self._features(x[block[0] * sr: block[-1] * sr + WINDOW_SAMPLES])
            for s in block:
                f0 = (s - block[0]) * sr // HALF
                window = x[s * sr: s * sr + WINDOW_SAMPLES]
                out.append(self._run_back(self._with_edges(feats[:, f0: f0 + WINDOW_FRAMES].copy(), window)))
        return out

    def _features(self, audio: np.ndarray) -> np.ndarray:
        if self.bf16:
            return self._front(audio)
        return self._front.run(None, {"input_1": audio[None, :]})[0][0]

    def _run_back(self, feats: np.ndarray) -> np.ndarray:
        return self._back.run(None, {SPLIT_AT: np.ascontiguousarray(feats, np.float32)[None]})[0][0]

    def _with_edges(self, feats: np.ndarray, window: np.ndarray) -> np.ndarray:
        """``feats [32, 900, 161]`` with the :data:`EDGE` frames at each end replaced by those of ``window``
        scored alone (zero padding beyond its ends, as the reference sees it)."""
        feats[:, :EDGE] = self._features(window[: HALF * (PIECE_FRAMES + 1)])[:, :EDGE]
        feats[:, WINDOW_FRAMES - EDGE:] = self._features(window[HALF * (WINDOW_FRAMES - PIECE_FRAMES):])[:, -EDGE:]
        return feats


@functools.lru_cache(maxsize=2)
def load(model_path: str, bf16: bool = False) -> SharedP835 | None:
    """The split network of the P.835 model at ``model_path`` (one thread), or None without ``onnx``, on another
    model, or (``bf16``) without native bfloat16 in torch."""
    try:
        import onnx
        import onnxruntime as ort
        from onnx import numpy_helper
    except ImportError:
        return None
    if bf16 and not native_bf16():
        return None
    model = onnx.load(model_path)
    free = {"shape_tensor": [1, -1, HALF], "shape_tensor1": [1, -1, HALF],  # [frames, 160]: halves of frames
            "input_1:01_cropping_end": [np.iinfo(np.int64).max, -HALF]}  # the first half: all but the last 160
    found = 0
    for init in model.graph.initializer:
        if init.name in free:
            init.CopyFrom(numpy_helper.from_array(np.asarray(free[init.name], np.int64), init.name))
            found += 1
    if found != len(free) or SPLIT_AT not in {o for n in model.graph.node for o in n.output}:
        return None
    model.graph.input[0].type.tensor_type.shape.dim[1].dim_param = "samples"
    split = onnx.helper.make_tensor_value_info(SPLIT_AT, onnx.TensorProto.FLOAT, [1, 32, "frames", 161])
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1

    def session(m):
        return ort.InferenceSession(m.SerializeToString(), opts, providers=["CPUExecutionProvider"])

    back = session(_subgraph(model, [split], model.graph.output[0].name))
    if bf16:
        weights = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
        return SharedP835(_TorchFront(weights), back, bf16=True)
    return SharedP835(session(_subgraph(model, [model.graph.input[0]], SPLIT_AT)), back, bf16=False)


def _subgraph(model, inputs: list, output: str):
    """The part of ``model`` that computes ``output`` from the value infos ``inputs``."""
    import onnx

    known = {i.name for i in inputs} | {i.name for i in model.graph.initializer}
    keep, need = [], {output}
    for node in reversed(model.graph.node):
        if need & set(node.output):
            keep.append(node)
            need |= {i for i in node.input if i and i not in known}
    keep.reverse()
    used = {i for n in keep for i in n.input}
    graph = onnx.helper.make_graph(
        keep, "part", inputs, [onnx.helper.make_tensor_value_info(output, onnx.TensorProto.FLOAT, None)],
        [i for i in model.graph.initializer if i.name in used])
    return onnx.helper.make_model(graph, opset_imports=model.opset_import, ir_version=model.ir_version)


class _TorchFront:
    """The front in torch from the ONNX graph's own weights: the STFT (two matrix products) and log power in
    float32, the four frame-rate convolutions in bfloat16, channels-last (oneDNN's fast layout)."""

    def __init__(self, w: dict[str, np.ndarray]) -> None:
        import torch

        self.torch = torch
        self.stft = torch.from_numpy(np.concatenate(
            [w["time2freq/stft-real/kernel:0"][:, :, 0], w["time2freq/stft-imag/kernel:0"][:, :, 0]]).T.copy())
        self.power = float(w["mos_estimator_logpow/pow/y:0"])
        self.floor = float(w["mos_estimator_logpow/Maximum/x:0"])
        self.divisor = float(w["mos_estimator_logpow/truediv/y:0"])
        self.convs = []
        for name in _CONVS:
            k = torch.from_numpy(w[f"{name}/kernel:0"].copy())
            conv = torch.nn.Conv2d(k.shape[1], k.shape[0], 3, padding=1)
            conv.weight.data, conv.bias.data = k, torch.from_numpy(w[f"{name}/bias:0"].copy())
            self.convs.append(conv.to(torch.bfloat16).to(memory_format=torch.channels_last).eval())

    def __call__(self, audio: np.ndarray) -> np.ndarray:
        torch = self.torch
        with torch.inference_mode():
            frames = torch.from_numpy(np.ascontiguousarray(audio, np.float32)).unfold(0, 2 * HALF, HALF)
            spec = frames @ self.stft  # [frames, 2 * 161]: real and imaginary parts
            re, im = spec.chunk(2, dim=1)
            mag = torch.sqrt(re * re + im * im)
            h = (torch.log(torch.clamp(mag ** self.power, min=self.floor)) / self.divisor)[None, None]
            h = h.to(torch.bfloat16).contiguous(memory_format=torch.channels_last)
            for conv in self.convs:
                h = torch.relu(conv(h))
            return h[0].float().contiguous().numpy()
