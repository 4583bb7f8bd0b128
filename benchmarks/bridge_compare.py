"""Compare semantic-to-codec bridges by ear-proxies: each bridge resynthesises the same held-out utterances from
their semantic units, prompted with another utterance of the same voice.

    .venv/bin/python benchmarks/bridge_compare.py --bridge default --bridge OTHER_DIR --n 24 --out runs/bridge_cmp

Per bridge: share of voiced frames (YIN, 20 ms frames; the source's share printed beside), speaker similarity
to the prompt (resemblyzer), DNSMOS OVRL / SIG / P.808, the project CTC model's CER and Whisper base's CER (told
the language; the source recordings' own CER beside) against the text. ``--json NAME``: also
docs/results/bridge_compare__NAME.json (rendered into the docs).
Held-out data: the ``test`` split of the manifest (held-out voices), every 9th utterance whose speaker has another.
Writes OUT/<bridge>/ (wavs), OUT/targets.jsonl, OUT/results.json and prints a markdown table.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

import numpy as np
import torch

MANIFEST = "data/synth_v3/manifest.jsonl"


def voiced_share(wav: np.ndarray, sr: int) -> float:
    from speechlm.audio.features import f0

    f = np.asarray(f0(torch.from_numpy(np.asarray(wav, np.float32)), sr, sr // 50)[0])
    return float((f > 0).mean())


def main() -> int:
    from tqdm import tqdm

    from speechlm.audio.io import load_audio, save_audio
    from speechlm.data.manifest import manifest_root, read_manifest
    from speechlm.eval.tts import evaluate_tts
    from speechlm.eval.whisper import WhisperJudge
    from speechlm.text.wer import char_errors
    from speechlm.tokenizers.semantic.bridge import Bridge

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--bridge", action="append", required=True, help="bridge name or folder (repeatable)")
    p.add_argument("--manifest", default=MANIFEST)
    p.add_argument("--n", type=int, default=24)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", required=True)
    p.add_argument("--json", default=None, metavar="NAME",
                   help="also write docs/results/bridge_compare__NAME.json (rendered into the docs)")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    out = Path(a.out)
    root = manifest_root(a.manifest)
    utts = [u for u in read_manifest(a.manifest) if u.split == "test"]
    by_spk: dict[str, list] = {}
    for u in utts:
        by_spk.setdefault(u.speaker, []).append(u)
    sel = [u for u in utts if len(by_spk[u.speaker]) > 1][::9][: a.n]
    prompts = out / "prompts"
    prompts.mkdir(parents=True, exist_ok=True)
    rows = []
    for u in sel:
        src = next(o for o in by_spk[u.speaker] if o.id != u.id)
        wav, sr = load_audio(src.audio_path(root), sr=16000)
        save_audio(prompts / f"{u.id}.wav", wav[0], sr)
        rows.append({"id": u.id, "audio": str(u.audio_path(root)), "text": u.text, "lang": u.lang,
                     "speaker": u.speaker, "duration": u.duration, "split": "test"})
    (out / "targets.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    judge = WhisperJudge.load("base", threads=a.threads)

    def whisper_cer(wavs: list[np.ndarray]) -> float:
        counts = [char_errors(r["text"], judge.transcribe(w, 16000, r["lang"]), r["lang"]) for r, w in zip(rows, wavs)]
        return sum(c.errors for c in counts) / max(sum(c.ref_len for c in counts), 1)

    src_wavs = [load_audio(r["audio"], sr=16000)[0][0] for r in rows]
    src_voiced = float(np.mean([voiced_share(w, 16000) for w in src_wavs]))
    results = {"kind": "bridge_compare", "command": shlex.join(["benchmarks/bridge_compare.py", *sys.argv[1:]]),
               "manifest": a.manifest, "source_voiced": src_voiced, "source_whisper_cer": whisper_cer(src_wavs),
               "n": len(rows), "bridges": {}}
    for i, name in enumerate(a.bridge):
        bridge = Bridge.load(name)
        gen = out / f"bridge{i}"
        gen.mkdir(exist_ok=True)
        voiced, outs = [], []
        for u in tqdm(sel, desc=f"bridge {name}", unit="utt"):
            wav, sr = load_audio(u.audio_path(root), sr=16000)
            pw, _ = load_audio(prompts / f"{u.id}.wav", sr=16000)
            y, ysr = bridge.decode(bridge.semantic.encode(wav[0], sr), pw[0], sr, seed=0)
            save_audio(gen / f"{u.id}.wav", y, ysr)
            voiced.append(voiced_share(y, ysr))
            outs.append(y if ysr == 16000 else load_audio(gen / f"{u.id}.wav", sr=16000)[0][0])
        rep = evaluate_tts(out / "targets.jsonl", gen, asr="ctc", prompts_dir=prompts, groups=("asr", "speaker", "mos"))
        row = {"bridge": bridge.model_id, "units": bridge.semantic.tokenizer_id, "codec": bridge.codec.tokenizer_id,
               "voiced": float(np.mean(voiced)),
               "whisper_cer": whisper_cer(outs)}
        for key in ("spk_sim", "dnsmos_ovrl", "dnsmos_sig", "dnsmos_p808", "cer"):
            m = rep.metric(key)
            row[key] = None if m is None else float(m.value)
        results["bridges"][name] = row
    (out / "results.json").write_text(json.dumps(results, indent=2))
    if a.json:
        Path(f"docs/results/bridge_compare__{a.json}.json").write_text(json.dumps(results, indent=2) + "\n")
    print(f"\n{len(rows)} held-out utterances; voiced frames in the source: {src_voiced:.3f}, Whisper-base CER "
          f"{results['source_whisper_cer']:.3f}\n")
    print("| bridge | codec | voiced | spk sim | DNSMOS OVRL | SIG | P.808 | CTC CER | Whisper CER |")
    print("|---|---|---|---|---|---|---|---|---|")
    fmt = lambda v: "–" if v is None else f"{v:.3f}"  # noqa: E731
    for name, r in results["bridges"].items():
        print(f"| {name} | {r['codec']} | {r['voiced']:.3f} | {fmt(r['spk_sim'])} | {fmt(r['dnsmos_ovrl'])} | "
              f"{fmt(r['dnsmos_sig'])} | {fmt(r['dnsmos_p808'])} | {fmt(r['cer'])} | {r['whisper_cer']:.3f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
