"""How much a codec's resynthesis costs an ASR: WER/CER of ground truth vs codec round trips, side by side.

    .venv/bin/python benchmarks/codec_intelligibility.py --model pitch --model default --model hybrid \
        --opus 6 --n 100 --out runs/codec_intel

The same held-out sentences as ``benchmarks/lm_tts_eval.py`` (synth_v2 ``test``: every English flite/festival
utterance first, then evenly spaced others). Each condition is scored by the project's CTC ASR (every language)
and by pocketsphinx on the English flite/festival voices, with ``speechlm.eval.tts``. A codec LM cannot be more
intelligible than its codec's resynthesis of real speech, so this table bounds the TTS targets from above.
Writes OUT/results.json and prints a markdown table.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from lm_tts_eval import MANIFEST, pick  # noqa: E402  (the same sentences)


def main() -> int:
    from tqdm import tqdm

    from speechlm.audio.io import load_audio, save_audio
    from speechlm.data.manifest import Utterance, manifest_root, read_manifest, write_manifest
    from speechlm.eval.tts import evaluate_tts
    from speechlm.tokenizers.codec.api import Codec
    from speechlm.tokenizers.codec.bench import opus_roundtrip

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", action="append", default=[], help="codec name or folder (repeatable)")
    p.add_argument("--bitrate", type=float, default=None, help="kbps for every model (default: all codebooks)")
    p.add_argument("--opus", type=int, action="append", default=[], help="also Opus at this many kbps (repeatable)")
    p.add_argument("--manifest", default=MANIFEST)
    p.add_argument("--n", type=int, default=100)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", required=True)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    utts = [u for u in read_manifest(args.manifest) if u.split == "test"]
    root = manifest_root(args.manifest)
    chosen = [u for u, _ in pick(utts, args.n)]
    rows_m = [Utterance(id=u.id, audio=str(u.audio_path(root)), text=u.text, lang=u.lang, speaker=u.speaker,
                        duration=u.duration, split="test") for u in chosen]
    write_manifest(out / "manifest.jsonl", rows_m)
    judged = [r for r in rows_m if r.lang == "en" and not r.speaker.startswith("espeak")]  # flite/festival
    write_manifest(out / "manifest_en.jsonl", judged)
    conds: dict[str, callable] = {"ground truth": lambda x: x}
    for m in args.model:
        codec = Codec.load(m)
        name = f"{codec.name} {codec.n_q_for(args.bitrate) * codec.config.kbps_per_codebook:g} kbps"
        conds[name] = lambda x, c=codec: c.decode(c.encode(x, 16000, args.bitrate))[0]
    tmp = Path(tempfile.mkdtemp())
    for k in args.opus:
        conds[f"opus {k} kbps"] = lambda x, k=k: opus_roundtrip(x, k, tmp)[0]
    rows = {}
    for cond, fn in conds.items():
        d = out / cond.replace(" ", "_")
        d.mkdir(exist_ok=True)
        t0 = time.time()
        for u in tqdm(chosen, desc=cond, unit="utt"):
            x = load_audio(u.audio_path(root), sr=16000)[0].mean(0)
            save_audio(d / f"{u.id}.wav", np.asarray(fn(x), np.float32)[: len(x)], 16000)
        row = {"seconds_to_make": round(time.time() - t0, 1)}
        ctc = evaluate_tts(out / "manifest.jsonl", d, asr="ctc", groups=("asr",), n_resamples=200)
        row.update(wer_ctc=ctc.metric("wer").value, cer_ctc=ctc.metric("cer").value)
        ps = evaluate_tts(out / "manifest_en.jsonl", d, asr="pocketsphinx", groups=("asr",), n_resamples=200)
        row.update(wer_pocketsphinx=ps.metric("wer").value, n_pocketsphinx=ps.meta["utterances"])
        rows[cond] = row
    res = {"n": len(chosen), "manifest": args.manifest, "rows": rows}
    (out / "results.json").write_text(json.dumps(res, indent=2))
    gt = rows["ground truth"]
    print(f"{len(chosen)} held-out utterances of {args.manifest} (test split; pocketsphinx: the "
          f"{len(judged)} English flite/festival ones); ratios to ground truth\n")
    print("| condition | CTC WER | CTC CER (× GT) | pocketsphinx WER, English (× GT) |\n|---|---|---|---|")
    for cond, r in rows.items():
        print(f"| {cond} | {r['wer_ctc']:.3f} | {r['cer_ctc']:.3f} ({r['cer_ctc'] / gt['cer_ctc']:.2f}×) | "
              f"{r['wer_pocketsphinx']:.3f} ({r['wer_pocketsphinx'] / max(gt['wer_pocketsphinx'], 1e-9):.2f}×) |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
