"""A development set for speech editing: 40 development sentences read by flite's awb, rms, slt and kal16 voices
in turn, at 8 kHz like the held-out telephone recordings (never the held-out recordings themselves).

    .venv/bin/python benchmarks/edit_dev_set.py --out runs/edit_dev
    .venv/bin/python benchmarks/edit_eval.py --out runs/edit_dev_eval --sentences runs/edit_dev/manifest.jsonl \
        --n 40 --no-anchor --threads 1

Sentences: :func:`tts_decode_ablation.dev_sentences` (Debian fortunes, not in the held-out set) of at least 4
words. Writes OUT/wavs/*.wav and OUT/manifest.jsonl.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import tempfile
from pathlib import Path

VOICES = ("awb", "rms", "slt", "kal16")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True)
    p.add_argument("--n", type=int, default=40)
    args = p.parse_args()

    from tts_decode_ablation import dev_sentences

    from speechlm.audio.io import load_audio, save_audio

    out = Path(args.out)
    (out / "wavs").mkdir(parents=True, exist_ok=True)
    rows = []
    for i, text in enumerate(dev_sentences(args.n + 20)):
        if len(text.split()) < 4:
            continue
        voice = VOICES[i % len(VOICES)]
        with tempfile.NamedTemporaryFile(suffix=".wav") as f:
            subprocess.run(["flite", "-voice", voice, "-t", text, "-o", f.name], check=True)
            wav, _ = load_audio(f.name, sr=8000)
        save_audio(out / "wavs" / f"dev{i:03d}.wav", wav[0], 8000)
        rows.append({"id": f"dev{i:03d}", "audio": f"wavs/dev{i:03d}.wav", "text": text, "lang": "en",
                     "speaker": f"flite_{voice}", "duration": len(wav[0]) / 8000})
        if len(rows) == args.n:
            break
    (out / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    print(f"{len(rows)} recordings in {out / 'manifest.jsonl'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
