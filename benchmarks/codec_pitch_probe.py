"""Does a codec keep pitch? Voicing and F0 of its output against its input, and how much F0 its codes carry.

    .venv/bin/python benchmarks/codec_pitch_probe.py --model default --data /work/data/synth_v2/manifest.jsonl

Over every 7th utterance of the manifest's ``test`` split (at most ``--max-utts``): YIN
(:func:`speechlm.audio.features.f0`, one frame per codec frame) on the input and on the codec's full-bitrate
resynthesis gives

- ``voiced_kept``: the share of input-voiced frames that are voiced in the output (a whispering codec: ~0);
- ``voiced_added``: the share of input-unvoiced frames voiced in the output;
- ``f0_cents_median``: median absolute F0 error where both are voiced;
- ``latent_f0_r2``: R^2 of a ridge probe from the quantized latent (one vector per frame) to log F0 on voiced
  frames (80 % of frames to fit, every 5th to test), beside the same probe from an 80-band log-mel (``mel_f0_r2``).

With ``--pesq-data M`` it also scores PESQ-WB and STOI of the resynthesis on up to ``--pesq-clips`` clips of M
(all splits), and for a harmonic decoder (``harmonics > 0``) once more with the oscillators at YIN's F0 of the
input (``*_oracle_f0``): what sending F0 as side information would give.

Prints one markdown row per model (``--model`` repeatable) and writes ``--out`` JSON if given.
"""

from __future__ import annotations

import argparse
import json

import numpy as np
import torch
from tqdm import tqdm


def probe(x: np.ndarray, voiced: np.ndarray, f0: np.ndarray) -> float:
    """Held-out R^2 of a ridge regression from ``x`` ``[N, D]`` to log F0 on voiced frames."""
    xs, t = x[voiced], np.log(f0[voiced])
    test = np.arange(len(t)) % 5 == 0
    a = np.c_[xs, np.ones(len(xs))]
    w = np.linalg.solve(a[~test].T @ a[~test] + 1e-2 * np.eye(a.shape[1]), a[~test].T @ t[~test])
    pred = a[test] @ w
    return float(1 - np.mean((pred - t[test]) ** 2) / np.var(t[test]))


def measure(model: str, manifest: str, max_utts: int) -> dict:
    from speechlm.audio.features import f0 as yin
    from speechlm.audio.features import log_mel
    from speechlm.audio.io import load_audio
    from speechlm.data.manifest import manifest_root, read_manifest
    from speechlm.tokenizers.codec.api import Codec

    codec = Codec.load(model)
    hop = codec.model.hop
    root = manifest_root(manifest)
    utts = [u for u in read_manifest(manifest) if u.split == "test"][::7][:max_utts]
    lat, mel, fx, vx, fy, vy = [], [], [], [], [], []
    for u in tqdm(utts, desc=f"probe {model}", unit="utt"):
        wav, _ = load_audio(u.audio_path(root), sr=codec.sample_rate)
        x = wav[0]
        with torch.no_grad():
            codes, _ = codec.model.encode(torch.from_numpy(x)[None, None])
            z = codec.model.quantizer.decode(codes)[0].T.numpy()  # [F, D]
            out = codec.model.decode(codes)[0, 0, : len(x)].numpy()
        f_in, v_in = yin(x, codec.sample_rate, hop)
        f_out, v_out = yin(out, codec.sample_rate, hop)
        m = log_mel(torch.from_numpy(x), codec.sample_rate, n_fft=1024, hop_length=hop, n_mels=80).numpy()
        m = m.reshape(80, -1).T
        n = min(len(z), len(f_in), len(f_out), len(m))
        lat.append(z[:n]), mel.append(m[:n]), fx.append(f_in[:n]), vx.append(v_in[:n])
        fy.append(f_out[:n]), vy.append(v_out[:n])
    lat, mel, fx, vx, fy, vy = (np.concatenate(a) for a in (lat, mel, fx, vx, fy, vy))
    vx, vy = vx & (fx > 0), vy & (fy > 0)
    both = vx & vy
    return {
        "model": codec.tokenizer_id,
        "utterances": len(utts),
        "frames": int(len(fx)),
        "input_voiced": float(vx.mean()),
        "voiced_kept": float((vx & vy).sum() / max(vx.sum(), 1)),
        "voiced_added": float((~vx & vy).sum() / max((~vx).sum(), 1)),
        "f0_cents_median": float(np.median(np.abs(1200 * np.log2(fy[both] / fx[both])))) if both.any() else None,
        "latent_f0_r2": probe(lat, vx, fx),
        "mel_f0_r2": probe(mel, vx, fx),
    }


def quality(model: str, manifest: str, n_clips: int) -> dict:
    """Mean PESQ-WB / STOI of the full-bitrate resynthesis (and with oracle F0 for harmonic decoders)."""
    from pesq import pesq
    from pystoi import stoi

    from speechlm.audio.io import load_audio
    from speechlm.data.manifest import manifest_root, read_manifest
    from speechlm.tokenizers.codec.api import Codec
    from speechlm.tokenizers.codec.train import yin_targets

    codec = Codec.load(model)
    m, sr = codec.model, codec.sample_rate
    harmonic = bool(getattr(m.decoder, "harmonics", 0))
    root = manifest_root(manifest)
    utts = list(read_manifest(manifest))
    utts = utts[:: max(1, len(utts) // n_clips)][:n_clips]
    rows = []
    for u in tqdm(utts, desc=f"PESQ/STOI {model}", unit="clip"):
        wav, _ = load_audio(u.audio_path(root), sr=sr)
        x = wav[0][: len(wav[0]) // m.hop * m.hop]
        xt = torch.from_numpy(x)[None, None]
        with torch.no_grad():
            codes, _ = m.encode(xt)
            y = m.decode(codes)[0, 0, : len(x)].numpy()
            row = [pesq(sr, x, y, "wb"), stoi(x, y, sr)]
            if harmonic:
                n_frames = codes.shape[-1] * (m.hop // m.decoder.stft_hop)
                f0_ref, _ = yin_targets(xt, sr, m.decoder.stft_hop, n_frames)
                yo = m.decoder(m.quantizer.decode(codes), f0_ref=f0_ref)[0, 0, : len(x)].numpy()
                row += [pesq(sr, x, yo, "wb"), stoi(x, yo, sr)]
        rows.append(row)
    r = np.array(rows).mean(axis=0)
    out = {"clips": len(rows), "pesq_wb": float(r[0]), "stoi": float(r[1])}
    if harmonic:
        out.update({"pesq_wb_oracle_f0": float(r[2]), "stoi_oracle_f0": float(r[3])})
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", action="append", default=None, help="codec name or folder (repeatable)")
    p.add_argument("--data", default="/work/data/synth_v2/manifest.jsonl", help="manifest with a test split")
    p.add_argument("--max-utts", type=int, default=60)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", default=None, help="JSON output path")
    p.add_argument("--pesq-data", default=None, help="manifest for PESQ/STOI (e.g. held-out human recordings)")
    p.add_argument("--pesq-clips", type=int, default=20)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    rows = [measure(m, a.data, a.max_utts) for m in (a.model or ["default"])]
    if a.pesq_data:
        for r, m in zip(rows, a.model or ["default"]):
            r.update(quality(m, a.pesq_data, a.pesq_clips))
    print("| model | frames | input voiced | voiced kept | voiced added | F0 error (cents, median) | latent F0 R² "
          "| log-mel F0 R² |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        cents = "–" if r["f0_cents_median"] is None else f"{r['f0_cents_median']:.0f}"
        print(f"| {r['model']} | {r['frames']} | {r['input_voiced']:.2f} | {r['voiced_kept']:.3f} | "
              f"{r['voiced_added']:.3f} | {cents} | {r['latent_f0_r2']:.2f} | {r['mel_f0_r2']:.2f} |")
    if a.pesq_data:
        print("\n| model | clips | PESQ-WB | STOI | PESQ-WB, oracle F0 | STOI, oracle F0 |\n|---|---|---|---|---|---|")
        for r in rows:
            o = [f"{r[k]:.3f}" if k in r else "–" for k in ("pesq_wb_oracle_f0", "stoi_oracle_f0")]
            print(f"| {r['model']} | {r['clips']} | {r['pesq_wb']:.3f} | {r['stoi']:.3f} | {o[0]} | {o[1]} |")
    if a.out:
        from speechlm.utils.atomic import atomic_write_text

        atomic_write_text(a.out, json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
