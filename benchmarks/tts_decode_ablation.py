"""Where the default TTS loses intelligibility between its prediction and the audio: Whisper-base WER of the same
predicted source-filter parameters heard through different decoders, on unseen English sentences.

    .venv/bin/python benchmarks/tts_decode_ablation.py --n 40 --out runs/tts_decode_ablation.json

Variants (one model pass per sentence, every variant from the same parameters):
  tokens      the codec_sf tokens decoded by the codec (quantised F0, voicing, aperiodicity and envelope; refiner)
  parameters  the unquantised parameters synthesised directly (the default ``speechlm tts`` path)
  q_norefine  the tokens' decoded parameters without the codec's envelope refiner
  q_env_only  quantised envelope, unquantised F0 / voicing / aperiodicity
  q_src_only  quantised F0 / voicing / aperiodicity, unquantised envelope

Sentences: the offline English pool (Debian fortunes) with seed 123, 5-18 words, none of the first 8200 drawn
with seed 0 (the pool the 8000-sentence training corpus was drawn from; results before commit 9378ef4 excluded only
the first 4000) — a development set, not the held-out test sentences.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

TRAIN_POOL = 8200  # seed-0 draws that cover data/piper_joe's 8000 training sentences (the last is draw 8103)
VARIANTS = ("tokens", "parameters", "q_norefine", "q_env_only", "q_src_only")


def dev_sentences(n: int) -> list[str]:
    from speechlm.data.sentences import SentenceSampler
    from speechlm.data.sentences import norm_text as norm

    train = {norm(x.text) for x in SentenceSampler("en", 0).take(TRAIN_POOL)}
    sampler, out = SentenceSampler("en", 123), []
    while len(out) < n:
        t = sampler.take(1)[0].text
        if 5 <= len(t.split()) <= 18 and norm(t) not in train and t not in out:
            out.append(t)
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=40)
    p.add_argument("--variants", default=",".join(VARIANTS))
    p.add_argument("--out", default=None, help="write the results as JSON here")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--model", default=None, help="acoustic model (name, folder or training run; default: shipped)")
    args = p.parse_args()

    import torch

    from speechlm.eval.mos import dnsmos
    from speechlm.eval.whisper import WhisperJudge
    from speechlm.tasks.tts import TTS
    from speechlm.text.wer import word_errors
    from speechlm.tokenizers.source_filter.world import Frames, synthesize, to_analysis_rate

    torch.set_num_threads(args.threads)
    variants = [v for v in args.variants.split(",") if v]
    if set(variants) - set(VARIANTS):
        p.error(f"unknown variants {sorted(set(variants) - set(VARIANTS))}; choose from {', '.join(VARIANTS)}")
    tts = TTS.load(args.model)
    judge = WhisperJudge.load("base", threads=args.threads)
    q = tts.codec.quantizer
    sents = dev_sentences(args.n)
    counts = {v: [0, 0] for v in variants}
    mos = {v: [] for v in variants}

    def synth(fr: Frames, hop: int = 4) -> np.ndarray:
        a = fr if hop == 1 else to_analysis_rate(fr, hop, len(fr) * hop)
        return synthesize(a.f0, a.mcep, a.bap).astype(np.float32)

    from tqdm import tqdm

    for text in tqdm(sents, desc="sentences"):
        audio = {v: [] for v in variants}
        for _, ids in tts.text_chunks(text):
            feat, _ = tts.am.features(ids)
            fine = tts.am.to_frames(feat)  # the model's own rate (20 ms, or 5 ms with 4 sub-frames)
            fr = tts.am.token_frames(fine)
            codes = tts.am.to_codes(feat, tts.codec)  # the tokens `speechlm tts` makes
            dq = q.decode(codes)
            for v in variants:
                if v == "tokens":
                    w = np.concatenate(list(tts.codec.decode_stream(codes, codes.shape[1] * tts.codec.hop)))
                elif v == "parameters":
                    w = synth(fine, 4 // tts.am.sub_frames)
                elif v == "q_norefine":
                    w = synth(dq)
                elif v == "q_env_only":
                    w = synth(Frames(fr.f0, dq.mcep, fr.bap))
                else:
                    w = synth(Frames(dq.f0, fr.mcep, dq.bap))
                audio[v].append(w)
        for v in variants:
            wav = np.concatenate(audio[v])
            mos[v].append(dnsmos(wav, tts.sample_rate).ovrl)
            c = word_errors(text, judge.transcribe(wav, tts.sample_rate, "en"))
            counts[v][0] += c.errors
            counts[v][1] += c.ref_len
    rows = {v: round(e / max(r, 1), 4) for v, (e, r) in counts.items()}
    ovrl = {v: round(float(np.mean(m)), 3) for v, m in mos.items()}
    print("| variant | Whisper-base WER | DNSMOS OVRL |\n|---|---|---|")
    for v, w in rows.items():
        print(f"| {v} | {w:.3f} | {ovrl[v]:.2f} |")
    if args.out:
        res = {"kind": "tts_decode_ablation", "n": len(sents), "model": tts.am.model_id, "judge": "whisper-base",
               "command": f"benchmarks/tts_decode_ablation.py --n {args.n}"
               + (f" --model {args.model}" if args.model else ""), "wer": rows,
               "dnsmos_ovrl": ovrl}
        Path(args.out).write_text(json.dumps(res, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
