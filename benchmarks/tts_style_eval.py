"""Does `speechlm tts --description` speak as described? TextrolSpeech-style control accuracy, judged by the data
pipeline's own taggers (gender classifier, pitch, pitch range, speaking rate, SNR and reverberation estimates).

    .venv/bin/python benchmarks/tts_style_eval.py --n 100 --out runs/tts_style.json

For each of ``--n`` held-out sentences (the texts of `benchmarks/tts_eval.py`) a random set of style tags is drawn
(each tag mentioned with probability 0.7, its value uniform), written as a description by the pipeline's own
:func:`speechlm.pipeline.describe.describe` and spoken by the default TTS with ``description=``; the tags measured
on the output (:func:`speechlm.pipeline.tags.tag`) are compared with the described ones. Beside it, the same
sentences without a description (the default voice: what ignoring the description would score). Whisper base
hears both (WER against the sentence; the noisy descriptions' noise costs words by design, so the WER is also
given over the sentences that asked for no noise). Prints a table; ``--out`` writes the JSON the docs' table is
rendered from.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

VALUES = {"gender": ("female", "male"), "pitch_bin": ("low", "moderate", "high"),
          "range_bin": ("monotone", "moderate", "expressive"), "rate_bin": ("slow", "moderate", "fast"),
          "noise_bin": ("quiet", "slightly noisy", "noisy"), "reverb_bin": ("close", "slightly distant", "distant")}
RANGE_ST = {"monotone": 2.0, "moderate": 6.0, "expressive": 12.0}  # what describe() is given for each range


def draw_tags(rng: random.Random) -> dict:
    """Tags for :func:`describe`: each mentioned with probability 0.7 (a pitch only with a gender, as the
    pipeline's bins are relative to it)."""
    tags = {t: (rng.choice(v) if rng.random() < 0.7 else None) for t, v in VALUES.items()}
    if tags["gender"] is None:
        tags["pitch_bin"] = None
    r = tags.pop("range_bin")
    tags["pitch_range_st"] = RANGE_ST[r] if r else None
    return tags


def measured(wav: np.ndarray, sr: int, text: str) -> dict:
    from speechlm.pipeline.describe import range_bin
    from speechlm.pipeline.tags import tag

    t = tag(wav, sr, text)
    return {"gender": t.get("gender"), "pitch_bin": t.get("pitch_bin"), "range_bin": range_bin(t.get("pitch_range_st")),
            "rate_bin": t.get("rate_bin"), "noise_bin": t.get("noise_bin"), "reverb_bin": t.get("reverb_bin"),
            "pitch_mean_hz": t.get("pitch_mean_hz"), "pitch_range_st": t.get("pitch_range_st"),
            "speaking_rate": t.get("speaking_rate"), "snr_db": t.get("snr_db"), "reverb_rt60_s": t.get("reverb_rt60_s")}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=100, help="sentences (default 100)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", default=None, help="write the results as JSON here")
    p.add_argument("--page", default=None, metavar="DIR",
                   help="also write a listening page: DIR/index.html with the first 20 sentences, described and not")
    p.add_argument("--dev", action="store_true", help="development sentences (benchmarks/tts_decode_ablation.py's "
                   "pool) instead of the held-out texts: for design runs")
    args = p.parse_args()

    import torch
    from tqdm import tqdm
    from tts_eval import SENTENCES, pick_sentences

    from speechlm.audio.io import save_audio
    from speechlm.eval.whisper import WhisperJudge
    from speechlm.pipeline.describe import describe
    from speechlm.tasks.tts import TTS
    from speechlm.text.style import parse_description
    from speechlm.text.wer import word_errors

    torch.set_num_threads(args.threads)
    if args.dev:
        from types import SimpleNamespace

        from tts_decode_ablation import dev_sentences

        utts = [SimpleNamespace(id=f"dev_{i}", text=t) for i, t in enumerate(dev_sentences(args.n))]
    else:
        utts = pick_sentences(str(ROOT / SENTENCES), args.n)
    if not utts:
        raise SystemExit(f"no sentences: {SENTENCES} is missing (scripts/get_real_speech.sh)")
    tts = TTS.load()
    judge = WhisperJudge.load("base", threads=args.threads)
    rng = random.Random(args.seed)
    items = []
    for i, u in enumerate(tqdm(utts, desc="sentences")):
        desc = describe(draw_tags(rng), args.seed * 100003 + i)
        asked = parse_description(desc).tags
        item = {"id": u.id, "text": u.text, "description": desc, "asked": asked}
        for system, kw in (("described", {"description": desc}), ("plain", {})):
            wav = tts.generate(u.text, **kw).wav
            if args.page and i < PAGE_N:
                save_audio(Path(args.page) / system / f"{u.id}.wav", wav, tts.sample_rate)
            c = word_errors(u.text, judge.transcribe(wav, tts.sample_rate, "en"))
            item[system] = {"tags": measured(wav, tts.sample_rate, u.text), "errors": c.errors, "words": c.ref_len}
        items.append(item)
    whisper = whisper_check(tts, judge, [u.text for u in utts[:20]])
    res = {"kind": "tts_style_eval", "n": len(items), "model": tts.am.model_id, "judge": "whisper-base",
           "sentences": "development sentences" if args.dev else SENTENCES,
           "command": "benchmarks/tts_style_eval.py " + " ".join(sys.argv[1:]),
           "rows": summarise(items), "whisper": whisper, "items": items}
    print(to_markdown(res))
    if args.page:
        from types import SimpleNamespace

        from codec_intelligibility import write_page

        rows = [SimpleNamespace(id=it["id"], text=f"{it['text']} | asked: {it['description']} | heard by the "
                                f"tagger: {_heard(it['described']['tags'], it['asked'])}") for it in items]
        print("listening page:", write_page(Path(args.page), rows, ["described", "plain"],
                                            to_markdown(res).splitlines(), n=PAGE_N,
                                            title="Style descriptions: described and not"))
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(res, indent=1) + "\n")
    return 0


PAGE_N = 20


def _heard(tags: dict, asked: dict) -> str:
    return ", ".join(f"{t.removesuffix('_bin')} {tags.get(t)}" for t in asked)


def whisper_check(tts, judge, texts: list[str]) -> dict:
    """"Someone whispers." against no description on ``texts``: YIN's voiced frames (the pipeline's pitch track)
    and Whisper-base WER."""
    from speechlm.pipeline.tags import pitch_track
    from speechlm.text.wer import word_errors

    out = {"n": len(texts)}
    for system, kw in (("whispered", {"description": "Someone whispers."}), ("plain", {})):
        voiced = errors = words = 0
        for t in texts:
            wav = tts.generate(t, **kw).wav
            voiced += pitch_track(wav, tts.sample_rate).size
            c = word_errors(t, judge.transcribe(wav, tts.sample_rate, "en"))
            errors, words = errors + c.errors, words + c.ref_len
        out[system] = {"voiced_frames": voiced, "wer": errors / max(words, 1)}
    return out


def summarise(items: list[dict]) -> dict:
    """Per tag: how many sentences asked for it and how often each system's output measured as asked (and per
    value); WER of each system overall and over the sentences that asked for no noise."""
    rows: dict = {}
    for t in VALUES:
        asked = [it for it in items if t in it["asked"]]
        row = {"asked": len(asked)}
        for s in ("described", "plain"):
            row[s] = sum(it[s]["tags"][t] == it["asked"][t] for it in asked) / max(len(asked), 1)
            row[f"{s}_by_value"] = {v: [sum(it[s]["tags"][t] == v for it in asked if it["asked"][t] == v),
                                        sum(it["asked"][t] == v for it in asked)] for v in VALUES[t]}
        rows[t] = row
    quiet = [it for it in items if it["asked"].get("noise_bin") in (None, "quiet")]
    for s in ("described", "plain"):
        rows[f"wer_{s}"] = sum(it[s]["errors"] for it in items) / max(sum(it[s]["words"] for it in items), 1)
        rows[f"wer_{s}_no_noise"] = (sum(it[s]["errors"] for it in quiet) / max(sum(it[s]["words"] for it in quiet), 1))
    rows["no_noise_sentences"] = len(quiet)
    return rows


NAMES = {"gender": "gender", "pitch_bin": "pitch (low / moderate / high for the gender)",
         "range_bin": "pitch range (monotone / moderate / expressive)", "rate_bin": "pace (slow / moderate / fast)",
         "noise_bin": "background noise (quiet / slightly noisy / noisy)",
         "reverb_bin": "room (close / slightly distant / distant)"}


def to_markdown(res: dict) -> str:
    r = res["rows"]
    where = ("development sentences" if res["sentences"] == "development sentences"
             else f"held-out sentences (`{res['sentences']}`)")
    lines = [f"{res['n']} {where}, each with a random description written by the "
             f"data pipeline's `describe`; `{res['model']}`; the pipeline's taggers measure the output", "",
             "| described tag | sentences | measured as described: with the description | without (default voice) "
             "| per value, with the description |", "|---|---|---|---|---|"]
    for t, name in NAMES.items():
        row = r[t]
        per = ", ".join(f"{v} {a}/{b}" for v, (a, b) in row["described_by_value"].items() if b)
        lines.append(f"| {name} | {row['asked']} | **{row['described']:.2f}** | {row['plain']:.2f} | {per} |")
    lines += ["", f"Whisper-base WER: with the descriptions {r['wer_described']:.3f} (over the "
              f"{r['no_noise_sentences']} sentences that asked for no noise {r['wer_described_no_noise']:.3f}); the "
              f"same sentences without {r['wer_plain']:.3f} ({r['wer_plain_no_noise']:.3f})."]
    w = res.get("whisper")
    if w:
        lines += ["", f"\"Someone whispers.\" on the first {w['n']} sentences: {w['whispered']['voiced_frames']} "
                  f"frames the tagger's pitch tracker calls voiced (without the description "
                  f"{w['plain']['voiced_frames']}); Whisper-base WER {w['whispered']['wer']:.3f} "
                  f"({w['plain']['wer']:.3f})."]
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
