"""How much a codec's resynthesis costs an ASR judge: WER of held-out real speech vs its codec round trips.

    .venv/bin/python benchmarks/codec_intelligibility.py --manifest data/real/asterisk_core_en/manifest.jsonl \
        --model sf --bitrate 1.35 --bitrate 2.85 --bitrate 3.85 --also pitch --also codec_default \
        --opus 6 --codec2 3200 --n 40 --out runs/codec_intel

``--n`` utterances evenly spaced over the manifest's ``test`` split (held-out recordings: asterisk-core-sounds,
pocketsphinx-testdata; ``scripts/get_real_speech.sh`` imports them), each resynthesised by every condition and
transcribed by the judge (default Whisper base, :mod:`speechlm.eval.whisper`). A codec LM cannot be more
intelligible than its codec's resynthesis, so this table bounds the TTS targets from above. OUT/index.html puts
the round trips of the first utterances side by side for listening. The target of the
default codec (issue 18): WER at most 1.2x the originals' + 0.01. Writes OUT/results.json and OUT/results.md.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch


def main() -> int:
    from tqdm import tqdm

    from speechlm.audio.io import load_audio, save_audio
    from speechlm.data.manifest import Utterance, manifest_root, read_manifest, write_manifest
    from speechlm.eval.codec_bench import codec2_roundtrip, entropy_model_or_none, opus_roundtrip
    from speechlm.eval.tts import evaluate_tts
    from speechlm.tokenizers.codec.api import Codec

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--manifest", required=True, help="held-out manifest (its split=test lines are used)")
    p.add_argument("--model", default="default", help="the codec under test")
    p.add_argument("--bitrate", type=float, action="append", default=[], help="its kbps (repeatable; default all)")
    p.add_argument("--thin-bitrate", type=float, action="append", default=[],
                   help="also this kbps as 'codec encode -o X.slc' packs it: quiet frames thinned, the audio decoded "
                   "from what the packed file holds (repeatable; source-filter codec)")
    p.add_argument("--also", action="append", default=[], help="another codec at all its codebooks (repeatable)")
    p.add_argument("--opus", type=int, action="append", default=[], help="also Opus VBR at this many kbps")
    p.add_argument("--codec2", action="append", default=[], help="also Codec2 in this mode (3200, 1600, 700C)")
    p.add_argument("--judge", default="whisper-base", help="ASR judge (speechlm eval's --judge names)")
    p.add_argument("--n", type=int, default=40)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", required=True)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    root = manifest_root(args.manifest)
    utts = [u for u in read_manifest(args.manifest) if u.split == "test" and u.text.strip()]
    idx = np.unique(np.linspace(0, len(utts) - 1, min(args.n, len(utts))).round().astype(int))
    chosen = [utts[i] for i in idx]
    write_manifest(out / "manifest.jsonl", [
        Utterance(id=u.id, audio=str(u.audio_path(root)), text=u.text, lang=u.lang, speaker=u.speaker,
                  duration=u.duration, split="test") for u in chosen])

    conds: dict[str, callable] = {"original": lambda x: x}
    codec = Codec.load(args.model)
    entropy = entropy_model_or_none(args.model, codec.tokenizer_id)
    packed: dict[str, list[float]] = {}  # condition -> [payload bits, seconds] of its packed tokens

    def through(x, br, cond, thin=False):
        tok = codec.encode(x, 16000, br)
        if entropy is not None:
            from speechlm.tokenizers.packed import pack

            depth = codec.frame_depth(tok.codes) if thin else None
            info = pack(tok, entropy, depth)[1]
            acc = packed.setdefault(cond, [0.0, 0.0])
            acc[0] += info.payload_bytes * 8
            acc[1] += tok.duration
            if depth is not None:
                tok = dataclasses.replace(tok, codes=depth.apply(tok.codes))
        return codec.decode(tok)[0]

    if args.thin_bitrate and (entropy is None or not hasattr(codec, "frame_depth")):
        raise SystemExit("--thin-bitrate needs the source-filter codec with its token entropy model")
    for br in args.bitrate or codec.bitrates:
        cond = f"{codec.name} {codec.encode(np.zeros(1600, np.float32), 16000, br).bitrate:g} kbps"
        conds[cond] = lambda x, br=br, cond=cond: through(x, br, cond)
    for br in args.thin_bitrate:
        cond = f"{codec.name} {codec.encode(np.zeros(1600, np.float32), 16000, br).bitrate:g} kbps .slc"
        conds[cond] = lambda x, br=br, cond=cond: through(x, br, cond, thin=True)
    for m in args.also:
        other = Codec.load(m)
        conds[f"{other.name} {other.bitrates[-1]:g} kbps"] = lambda x, c=other: c.decode(c.encode(x, 16000))[0]
    tmp = Path(tempfile.mkdtemp())
    for k in args.opus:
        conds[f"opus {k} kbps"] = lambda x, k=k: opus_roundtrip(x, k, tmp)[0]
    for mode in args.codec2:
        conds[f"codec2 {mode}"] = lambda x, mode=mode: codec2_roundtrip(x, mode, tmp)[0]
    rows = {}
    for cond, fn in conds.items():
        d = out / cond.replace(" ", "_")
        d.mkdir(exist_ok=True)
        t0 = time.time()
        for u in tqdm(chosen, desc=cond, unit="utt"):
            x = load_audio(u.audio_path(root), sr=16000)[0].mean(0)
            save_audio(d / f"{u.id}.wav", np.clip(np.asarray(fn(x), np.float32)[: len(x)], -1, 1), 16000)
        rep = evaluate_tts(out / "manifest.jsonl", d, asr=args.judge, groups=("asr",), n_resamples=200)
        wer = rep.metric("wer")
        rows[cond] = {"wer": wer.value, "wer_ci": [wer.low, wer.high] if hasattr(wer, "low") else None,
                      "cer": rep.metric("cer").value, "seconds_to_make": round(time.time() - t0, 1)}
        if cond in packed:
            rows[cond]["packed_kbps"] = round(packed[cond][0] / packed[cond][1] / 1000, 3)
    res = {"n": len(chosen), "manifest": args.manifest, "judge": args.judge, "rows": rows,
           "entropy_model": None if entropy is None else entropy.id,
           "command": ".venv/bin/python benchmarks/codec_intelligibility.py " + " ".join(sys.argv[1:]),
           "date": time.strftime("%Y-%m-%d")}
    from render_tables import codec_intel

    lines = codec_intel(res).splitlines()
    (out / "results.json").write_text(json.dumps(res, indent=2) + "\n")
    (out / "results.md").write_text("\n".join(lines) + "\n")
    write_page(out, chosen, list(rows), lines)
    print("\n".join(lines))
    return 0


def write_page(out: Path, utts: list, conds: list[str], table: list[str], n: int = 12,
               title: str = "Codec round trips of held-out speech") -> Path:
    """OUT/index.html: the first ``n`` utterances, one row each, every condition's audio side by side (paths
    relative to OUT, so the folder can be copied or served as it is), under the results table and ``title``."""
    import html

    head = "".join(f"<th>{html.escape(c)}</th>" for c in conds)
    body = []
    for u in utts[:n]:
        cells = "".join(f'<td><audio controls preload="none" src="{c.replace(" ", "_")}/{html.escape(u.id)}.wav">'
                        "</audio></td>" for c in conds)
        body.append(f"<tr><td>{html.escape(u.text)}</td>{cells}</tr>")
    page = (f"<!doctype html><meta charset='utf-8'><title>{html.escape(title)}</title>"
            "<style>body{font-family:sans-serif}td,th{border:1px solid #ccc;padding:4px;font-size:13px}"
            f"audio{{width:150px}}td:first-child{{min-width:280px}}</style><h1>{html.escape(title)}</h1>"
            f"<pre>{html.escape(chr(10).join(table))}</pre><table><tr><th>transcript</th>{head}</tr>"
            + "".join(body) + "</table>")
    (out / "index.html").write_text(page)
    return out / "index.html"


if __name__ == "__main__":
    raise SystemExit(main())
