"""Does `speechlm tts` say what people write? Sentences with telephone numbers, addresses, dates, fractions,
temperatures, clock times, ranges, version numbers, units and Roman numerals, spoken by the default TTS with the
current English normaliser and with the normaliser of an earlier revision (``--baseline``, read from git), judged
by Whisper base.

    .venv/bin/python benchmarks/tts_text_patterns.py [--baseline 6352e22] [--json runs/tts_text_patterns.json]

Both systems are scored with the current ``normalize_for_wer`` on both sides (so "555-1234" from Whisper and
"five five five, one two three four" in the reference compare alike); the reference is the written sentence.
Prints a table and each sentence's transcripts.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from contextlib import contextmanager, nullcontext
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SENTENCES = [
    "Call me at 555-1234 after lunch.",
    "The office number is (212) 555-0187.",
    "Visit www.debian.org for the release notes.",
    "Send the file to anna.smith@example.com today.",
    "The meeting moved to 12/15/2026 in the small room.",
    "Her birthday is on 2025-03-08.",
    "Add 3/4 cup of sugar and 1/2 cup of milk.",
    "The pipe is 5/8 of an inch wide.",
    "It was 95°F in the shade yesterday.",
    "Water freezes at 0 °C.",
    "The store opens at 9am and closes at 6pm.",
    "The train leaves at 7:45 p.m. sharp.",
    "He worked there from 1998-2004.",
    "Read pages 12-20 before class.",
    "Install version 3.11.2 of the tool.",
    "The help desk is open 24/7.",
    "Dial 1-800-555-0199 for support.",
    "We paid $4.99 for 2 coffees on 11/3/2024.",
    "Check https://example.org/docs for details.",
    "The recipe needs 2/3 of a cup of flour.",
    "Drive 60 mph for the last 5 km.",
    "The parcel weighs 1.5 kg.",
    "The new phone has 128 GB of storage.",
    "They signed a $5m deal on Monday.",
    "Henry VIII had six wives.",
    "World War II ended in 1945.",
]


@contextmanager
def normaliser_from(rev: str):
    """``speechlm.text.normalize.normalize_text`` replaced by the one at git revision ``rev`` (for TTS input)."""
    from speechlm.text import normalize as N

    src = subprocess.run(["git", "-C", str(ROOT), "show", f"{rev}:speechlm/text/normalize.py"], check=True,
                         capture_output=True, text=True).stdout
    ns: dict = {"__name__": f"speechlm_text_normalize_{rev}"}
    exec(compile(src, f"normalize@{rev}", "exec"), ns)  # noqa: S102 - our own file at an earlier commit
    saved = N.normalize_text
    N.normalize_text = ns["normalize_text"]
    try:
        yield
    finally:
        N.normalize_text = saved


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--baseline", default="6352e22", help="git revision of the earlier normaliser")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--json", default=None)
    args = p.parse_args()
    import torch

    from speechlm.eval.whisper import WhisperJudge
    from speechlm.tasks.tts import TTS
    from speechlm.text.wer import corpus_wer, normalize_text, word_errors

    torch.set_num_threads(args.threads)
    tts = TTS.load()
    judge = WhisperJudge.load("base", threads=args.threads)
    systems: dict[str, list[str]] = {}
    inputs: dict[str, list[str]] = {}
    for name in ("current", f"baseline {args.baseline}"):
        wavs = []
        with normaliser_from(args.baseline) if name != "current" else nullcontext():
            from speechlm.text import normalize as N

            inputs[name] = [N.normalize_text(s, "en") for s in SENTENCES]
            for s in SENTENCES:
                r = tts.generate(s)
                wavs.append((r.wav.astype(np.float32), r.sample_rate))
        systems[name] = [judge.transcribe(w, sr, "en") for w, sr in wavs]
    res = {"kind": "tts_text_patterns", "n": len(SENTENCES), "judge": "whisper-base", "model": tts.am.model_id,
           "command": "python benchmarks/tts_text_patterns.py " + " ".join(sys.argv[1:]), "rows": {}}
    for name, hyps in systems.items():
        counts = [word_errors(r, h, "en") for r, h in zip(SENTENCES, hyps, strict=True)]
        ins_del = sum(c.insertions + c.deletions for c in counts) / max(sum(c.ref_len for c in counts), 1)
        res["rows"][name] = {"wer": corpus_wer(SENTENCES, hyps, "en"), "ins_del": ins_del,
                             "sentences_right": sum(c.errors == 0 for c in counts),
                             "transcripts": hyps, "tts_input": inputs[name]}
    print(to_markdown(res) + "\n")
    for i, s in enumerate(SENTENCES):
        print(f"- {s}\n" + "".join(f"  - {k}: {normalize_text(v['transcripts'][i])}\n" for k, v in res["rows"].items()))
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(res, indent=1) + "\n")
    return 0


def to_markdown(res: dict) -> str:
    lines = [f"{res['n']} sentences with written-out patterns (`benchmarks/tts_text_patterns.py`), "
             f"`{res['model']}`, judge Whisper base", "",
             "| normaliser | WER | insertions + deletions | sentences heard right |", "|---|---|---|---|"]
    for name, r in res["rows"].items():
        lines.append(f"| {name} | {r['wer']:.3f} | {r['ins_del']:.3f} | {r['sentences_right']} / {res['n']} |")
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
