"""Voice conversion (`speechlm vc`) on held-out recordings: does the voice move towards the target while the
words stay? Beside it, in the same run: the recording itself, the same recording through the vocoder with no
shift (what the analysis/synthesis alone costs), and the semantic route (`semantic_asr` units + the target as
the prompt, decoded by `bridge_default`: `speechlm semantic decode`).

    .venv/bin/python benchmarks/vc_eval.py --n 40 --out runs/vc_eval.json

Sources: the held-out sentences of `benchmarks/tts_eval.py` (asterisk-core English prompts, one voice, 8-kHz
telephone speech); targets: held-out wideband recordings of other speakers (pocketsphinx-testdata and
codec2-examples, 3 s or longer with at least 1 s voiced), cycled. Measured per system: resemblyzer similarity to
the target clip and to the source recording, Whisper-base WER against the sentence, DNSMOS OVRL; and the style
route: "A man speaks in a deep voice." (the source voice is a woman's) read by the pipeline's gender tagger.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SR = 16000
SYSTEMS = ("source", "resynthesis", "ours_vc", "bridge")
STYLE = "A man speaks in a deep voice."


def targets() -> list[tuple[np.ndarray, str]]:
    """Held-out wideband recordings of other speakers: (16-kHz audio of at most 10 s, id)."""
    from tts_eval import PROMPT_SOURCES

    from speechlm.audio.io import load_audio
    from speechlm.data.manifest import manifest_root, read_manifest
    from speechlm.lm.acoustic_data import frame_features

    out = []
    for m in PROMPT_SOURCES:
        if not (ROOT / m).is_file():
            continue
        r = manifest_root(ROOT / m)
        for u in read_manifest(ROOT / m):
            if u.duration < 3.0:
                continue
            wav = load_audio(u.audio_path(r), sr=SR)[0][0][: 10 * SR]
            if (frame_features(wav.astype(np.float64))[:, 41] > 0.5).sum() / 50 >= 1.0:
                out.append((wav, u.id))
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=40)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", default=None, help="write the results as JSON here")
    args = p.parse_args()

    import torch
    from tqdm import tqdm
    from tts_eval import SENTENCES, pick_sentences

    from speechlm.audio.io import load_audio, resample
    from speechlm.data.manifest import manifest_root
    from speechlm.eval.mos import dnsmos
    from speechlm.eval.speaker import cosine_similarity, load_embedder
    from speechlm.eval.whisper import WhisperJudge
    from speechlm.pipeline.tags import tag
    from speechlm.tasks.tts import TTS
    from speechlm.tasks.vc import analyse, convert_voice
    from speechlm.text.wer import word_errors
    from speechlm.tokenizers.semantic.api import SemanticTokenizer
    from speechlm.tokenizers.semantic.bridge import Bridge

    torch.set_num_threads(args.threads)
    utts = pick_sentences(str(ROOT / SENTENCES), args.n)
    pool = targets()
    if not utts or not pool:
        raise SystemExit("no held-out recordings: run scripts/get_real_speech.sh first")
    root = manifest_root(ROOT / SENTENCES)
    tts = TTS.load()
    units, bridge = SemanticTokenizer.load("semantic_asr"), Bridge.load()
    judge = WhisperJudge.load("base", threads=args.threads)
    emb = load_embedder()
    items = []
    for i, u in enumerate(tqdm(utts, desc="recordings")):
        src = load_audio(u.audio_path(root), sr=SR)[0][0]
        tgt, tid = pool[i % len(pool)]
        outs = {"source": src,
                "resynthesis": np.concatenate(list(tts.render(analyse(tts, src))[1]))[: len(src)],
                "ours_vc": convert_voice(tts, src, SR, tgt, SR).wav}
        w, wsr = bridge.decode(units.encode(src, SR), tgt, SR)
        outs["bridge"] = w if wsr == SR else resample(w, wsr, SR)
        styled = convert_voice(tts, src, SR, description=STYLE).wav
        e_t, e_s = emb.embed(tgt), emb.embed(src)
        item = {"id": u.id, "target": tid, "text": u.text}
        for k, wav in outs.items():
            e = emb.embed(wav)
            c = word_errors(u.text, judge.transcribe(wav, SR, "en"))
            item[k] = {"sim_target": cosine_similarity(e, e_t), "sim_source": cosine_similarity(e, e_s),
                       "errors": c.errors, "words": c.ref_len, "dnsmos": dnsmos(wav, SR).ovrl}
        t = tag(styled, SR, u.text)
        c = word_errors(u.text, judge.transcribe(styled, SR, "en"))
        item["style"] = {"gender": t.get("gender"), "pitch_bin": t.get("pitch_bin"),
                         "pitch_mean_hz": t.get("pitch_mean_hz"), "errors": c.errors, "words": c.ref_len,
                         "source_gender": tag(src, SR, u.text).get("gender")}
        items.append(item)
    res = {"kind": "vc_eval", "n": len(items), "model": tts.am.model_id, "bridge": bridge.model_id,
           "sentences": SENTENCES, "targets": len({it["target"] for it in items}), "style": STYLE,
           "command": "benchmarks/vc_eval.py " + " ".join(sys.argv[1:]), "rows": summarise(items), "items": items}
    print(to_markdown(res))
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(res, indent=1) + "\n")
    return 0


def summarise(items: list[dict]) -> dict:
    rows = {}
    for s in SYSTEMS:
        rows[s] = {"sim_target": float(np.mean([it[s]["sim_target"] for it in items])),
                   "sim_source": float(np.mean([it[s]["sim_source"] for it in items])),
                   "wer": sum(it[s]["errors"] for it in items) / max(sum(it[s]["words"] for it in items), 1),
                   "dnsmos_ovrl": float(np.mean([it[s]["dnsmos"] for it in items]))}
    st = [it["style"] for it in items]
    rows["style"] = {"male": sum(x["gender"] == "male" for x in st) / max(len(st), 1),
                     "low_or_moderate": sum(x["pitch_bin"] in ("low", "moderate") for x in st) / max(len(st), 1),
                     "source_female": sum(x["source_gender"] == "female" for x in st) / max(len(st), 1),
                     "wer": sum(x["errors"] for x in st) / max(sum(x["words"] for x in st), 1)}
    return rows


NAMES = {"source": "the recording (unconverted)", "resynthesis": "the recording through the vocoder, no shift",
         "ours_vc": "**ours (`speechlm vc --target`)**", "bridge": "semantic units + prompt (`bridge_default`)"}


def to_markdown(res: dict) -> str:
    r = res["rows"]
    lines = [f"{res['n']} held-out recordings (`{res['sentences']}`, one telephone voice) converted to {res['targets']}"
             f" held-out wideband voices of other speakers; `{res['model']}`, `{res['bridge']}`", "",
             "| system | speaker similarity to the target | to the source | Whisper-base WER | DNSMOS OVRL |",
             "|---|---|---|---|---|"]
    for s in SYSTEMS:
        x = r[s]
        lines.append(f"| {NAMES[s]} | {x['sim_target']:.3f} | {x['sim_source']:.3f} | {x['wer']:.3f} | "
                     f"{x['dnsmos_ovrl']:.2f} |")
    st = r["style"]
    lines += ["", f"Described instead (`--description \"{res['style']}\"`): the pipeline's gender tagger hears a "
              f"man in {st['male']:.2f} of them (the recordings: a woman in {st['source_female']:.2f}), a low or "
              f"moderate male pitch in {st['low_or_moderate']:.2f}; Whisper-base WER {st['wer']:.3f}."]
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
