#!/usr/bin/env python3
"""Pack manifests into a small, self-contained copy: Ogg Opus audio at a fixed bitrate + phonemes filled in.

Used to carry a training corpus to a remote GPU machine whose upload is size-capped (7 h of 16 kHz speech is
850 MB as PCM16, about 45 MB as 14 kbps Opus) and which has no espeak-ng (the manifest's ``phonemes`` field is
filled here, so the ASR recipe never calls the G2P there). Audio paths in the packed manifests are relative to
each manifest's folder, so the folder can be moved anywhere.

    .venv/bin/python scripts/pack_opus.py --data /work/data/synth_v2/manifest.jsonl --out .devdata \
        --splits train,valid --max-seconds 8 --kbps 14 --jobs 2

Writes OUT/<name>/manifest.jsonl and OUT/<name>/audio/*.opus, one folder per input manifest (<name> is the
manifest's parent folder name). Needs ``opusenc`` (Debian: opus-tools).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

from tqdm import tqdm

from speechlm.asr.train import phonemize_utterances
from speechlm.audio.io import load_audio, save_audio
from speechlm.data.manifest import Utterance, manifest_root, read_manifest
from speechlm.errors import SpeechLMError


def _encode(src: Path, dest: Path, kbps: float, tmp_dir: Path) -> None:
    """Any readable audio -> 16 kHz mono PCM16 WAV (temporary) -> Ogg Opus at ``kbps`` (written atomically)."""
    wav, sr = load_audio(src, sr=16000)
    tmp_wav = tmp_dir / (dest.stem + ".wav")
    save_audio(tmp_wav, wav, sr)
    part = dest.with_suffix(".opus.part")
    subprocess.run(["opusenc", "--quiet", "--bitrate", str(kbps), "--comp", "10", str(tmp_wav), str(part)], check=True)
    tmp_wav.unlink()
    os.replace(part, dest)


def _packed_name(u: Utterance) -> str:
    """A file name that follows the utterance (not its position), so a rerun into the same folder with other
    filters never reuses another utterance's audio."""
    return "audio/" + hashlib.sha1(u.id.encode("utf-8")).hexdigest()[:20] + ".opus"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", action="append", required=True, help="manifest.jsonl (repeatable)")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--splits", default="train,valid", help="splits kept (default train,valid)")
    p.add_argument("--max-seconds", type=float, default=0.0, help="drop longer utterances (0 = keep all)")
    p.add_argument("--kbps", type=float, default=14.0, help="Opus bitrate in kbit/s (default 14)")
    p.add_argument("--jobs", type=int, default=2, help="opusenc processes at once (default 2)")
    args = p.parse_args(argv)
    if shutil.which("opusenc") is None:
        print("pack_opus: opusenc not found (apt-get install opus-tools)", file=sys.stderr)
        return 2
    try:
        total = _pack(args)
    except (SpeechLMError, OSError, subprocess.CalledProcessError) as exc:
        print(f"pack_opus: error: {exc}", file=sys.stderr)
        return 2
    print(f"pack_opus: {total / 2**20:.1f} MiB in all", file=sys.stderr)
    return 0


def _pack(args: argparse.Namespace) -> int:
    """Pack every ``--data`` manifest; returns the bytes of audio written in all."""
    splits = set(args.splits.split(","))
    out = Path(args.out)
    total = 0
    for m in args.data:
        root = manifest_root(m)
        utts = [
            u
            for u in read_manifest(m)
            if u.split in splits and (not args.max_seconds or u.duration <= args.max_seconds)
        ]
        phonemes = phonemize_utterances(utts, show=True)
        dest_dir = out / Path(m).resolve().parent.name
        (dest_dir / "audio").mkdir(parents=True, exist_ok=True)
        tmp_dir = dest_dir / "_tmp"
        tmp_dir.mkdir(exist_ok=True)
        jobs = []
        for u in utts:
            dest = dest_dir / _packed_name(u)
            if not dest.exists():  # a rerun resumes
                jobs.append((u.audio_path(root), dest))
        with ThreadPoolExecutor(args.jobs) as pool:
            futures = [pool.submit(_encode, src, dest, args.kbps, tmp_dir) for src, dest in jobs]
            for f in tqdm(futures, desc=dest_dir.name, file=sys.stderr):
                f.result()
        shutil.rmtree(tmp_dir)
        lines = [replace(u, audio=_packed_name(u), phonemes=ph).to_json() + "\n" for u, ph in zip(utts, phonemes)]
        tmp = dest_dir / "manifest.jsonl.part"
        tmp.write_text("".join(lines), encoding="utf-8")
        os.replace(tmp, dest_dir / "manifest.jsonl")
        size = sum((dest_dir / _packed_name(u)).stat().st_size for u in utts)
        total += size
        hours = sum(u.duration for u in utts) / 3600
        print(f"pack_opus: {dest_dir}: {len(utts)} utterances, {hours:.2f} h, {size / 2**20:.1f} MiB", file=sys.stderr)
    return total


if __name__ == "__main__":
    sys.exit(main())
