"""Where a codec's quality goes: magnitude or phase, codes or decoder.

    .venv/bin/python benchmarks/codec_error_split.py --model pitch \
        --data /work/data/real/asterisk_core_en/manifest.jsonl --clips 12

For each clip (resampled to 16 kHz) the codec's output is scored against the input (PESQ-WB, STOI), and so are
hybrids built in the STFT domain (512-point Hann, hop 128): the output's magnitude with the input's phase, the
input's magnitude with the output's phase, and the input's magnitude with a phase found by 60 Griffin-Lim
iterations (what a perfect magnitude alone would give). Rows for 1, half and all codebooks show how much the
bitrate matters. If "output magnitude + input phase" stays low, the decoder's spectral envelope is what to fix;
if "input magnitude + output phase" is low, the phase is.
"""

from __future__ import annotations

import argparse
import json

import numpy as np

N_FFT, HOP = 512, 128


def _stft(x: np.ndarray, win):
    import torch

    return torch.stft(torch.from_numpy(x), N_FFT, HOP, window=win, return_complex=True)


def _istft(spec, n: int, win) -> np.ndarray:
    import torch

    return torch.istft(spec, N_FFT, HOP, window=win, length=n).numpy()


def griffin_lim(mag, n: int, win, iters: int = 60, seed: int = 0) -> np.ndarray:
    """A waveform whose STFT magnitude approaches ``mag`` ``[F, T]`` (random initial phase, seeded)."""
    import torch

    g = torch.Generator().manual_seed(seed)
    spec = mag * torch.exp(1j * 2 * torch.pi * torch.rand(mag.shape, generator=g))
    for _ in range(iters):
        spec = mag * torch.exp(1j * torch.angle(_stft(_istft(spec, n, win), win)))
    return _istft(spec, n, win)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="pitch", help="codec name or folder")
    p.add_argument("--data", required=True, help="manifest of clips to score")
    p.add_argument("--clips", type=int, default=12)
    p.add_argument("--threads", type=int, default=1)
    a = p.parse_args()
    import soundfile as sf
    import torch
    from tqdm import tqdm

    from speechlm.audio.io import resample
    from speechlm.eval.metrics import pesq_score, stoi_score
    from speechlm.tokenizers.codec.api import Codec

    torch.set_num_threads(a.threads)
    codec = Codec.load(a.model)
    rows = [json.loads(line) for line in open(a.data, encoding="utf-8") if line.strip()][: a.clips]
    win = torch.hann_window(N_FFT)
    kbps = codec.config.kbps_per_codebook
    levels = sorted({1, codec.num_codebooks // 2, codec.num_codebooks})
    scores: dict[str, list[tuple[float, float]]] = {}

    def add(name: str, ref: np.ndarray, y: np.ndarray) -> None:
        n = min(len(ref), len(y))
        scores.setdefault(name, []).append((pesq_score(ref[:n], y[:n], 16000), stoi_score(ref[:n], y[:n], 16000)))

    for r in tqdm(rows, desc="clips", unit="clip"):
        wav, sr = sf.read(r["audio"], dtype="float32", always_2d=True)
        x = wav.mean(1)
        x = resample(x, sr, 16000) if sr != 16000 else x
        n = len(x)
        for k in levels:
            y = codec.decode(codec.encode(x, 16000, bitrate=k * kbps))[0][:n]
            add(f"output, {k} codebook(s)", x, y)
        spec_x, spec_y = _stft(x, win), _stft(y, win)
        add("output magnitude + input phase", x, _istft(spec_y.abs() * torch.exp(1j * torch.angle(spec_x)), n, win))
        add("input magnitude + output phase", x, _istft(spec_x.abs() * torch.exp(1j * torch.angle(spec_y)), n, win))
        add("input magnitude + Griffin-Lim phase", x, griffin_lim(spec_x.abs(), n, win))
    print(f"{codec.tokenizer_id}, {len(rows)} clips of {a.data}; hybrids use all {codec.num_codebooks} codebooks\n")
    print("| signal | PESQ-WB | STOI |\n|---|---|---|")
    for name, v in scores.items():
        m = np.mean(v, axis=0)
        print(f"| {name} | {m[0]:.3f} | {m[1]:.3f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
