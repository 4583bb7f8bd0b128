"""TTS on held-out English sentences: ours (default voice; prompted, shifted towards the prompt as by default and
also adapted to it; heard through its codec_sf tokens) beside Piper joe, flite slt and the recordings, judged by
Whisper base, in one run.

    .venv/bin/python benchmarks/tts_eval.py --out runs/tts_eval            # 100 sentences, ~15 min on 2 cores
    .venv/bin/python benchmarks/tts_eval.py --out runs/tts_eval --n 20 --systems ours,piper_joe
    .venv/bin/python benchmarks/tts_eval.py --out runs/tts_eval_aligned --systems ours_aligned \
        --aligned-model runs/aligned_lm/small --threads 1   # the aligned codec LM (only when named)

Sentences: ``--n`` evenly spaced asterisk-core-sounds-en prompts of at least 4 words (held out: never trained on;
their recordings are the ground truth, 8 kHz telephone speech). Prompted rows take a held-out human voice: the
wideband pocketsphinx-testdata and codec2-examples clips of 3 s or more (cut to 10 s) and other asterisk-core
recordings of the same speaker as the sentence, in turn. ``ours_adapted`` adapts the decoder to each prompt
(``ADAPT_STEPS``) on what Whisper base hears in it, as for a user who gives no transcript; the time to make each
prompt's voice (analysis, transcription, adaptation) is reported apart from the generation time (``voice_s``).

Scored per row: Whisper-base WER, insertion + deletion rate (skipped/repeated words), DNSMOS OVRL, resemblyzer
similarity to the prompt (for ``ours`` the unprompted output against the same prompts, the +0.1 target's
baseline), real-time factor on ``--threads`` threads, and for ours the time to the first streamed block.
Writes OUT/results.json, OUT/results.md and OUT/index.html (20 sentences side by side) and prints the table.
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

SR = 16000
SENTENCES = "data/real/asterisk_core_en/manifest.jsonl"
PROMPT_SOURCES = ("data/real/pocketsphinx_testdata/manifest.jsonl", "data/real/codec2_examples/manifest.jsonl")
SYSTEMS = ("ours", "ours_prompted", "ours_adapted", "ours_tokens", "piper_joe", "flite_slt", "ground_truth")
OPTIONAL = ("ours_aligned",)  # run only when named: the aligned codec LM of --aligned-model (not shipped)


def pick_sentences(path: str, n: int) -> list:
    from speechlm.data.manifest import read_manifest

    utts = [u for u in read_manifest(path) if len(u.text.split()) >= 4]
    idx = np.linspace(0, len(utts) - 1, min(n, len(utts))).round().astype(int)
    return [utts[i] for i in idx]


def pick_prompts(sentences: list, root: Path) -> list[tuple[np.ndarray, str]]:
    """One (16 kHz prompt audio of 3-10 s, its source id) per sentence."""
    from speechlm.audio.io import load_audio
    from speechlm.data.manifest import manifest_root, read_manifest
    from speechlm.lm.acoustic_data import frame_features

    def voiced_s(path) -> float:  # a prompt needs a voice: music, noise or whisper is skipped
        wav = load_audio(path, sr=SR)[0][0][: 10 * SR]
        return float((frame_features(wav.astype(np.float64))[:, 41] > 0.5).sum() / 50)

    pool = []
    for m in PROMPT_SOURCES:
        if Path(m).is_file():
            r = manifest_root(m)
            pool += [(u.audio_path(r), u.id) for u in read_manifest(m)
                     if u.duration >= 3.0 and voiced_s(u.audio_path(r)) >= 1.0]
    own = [(u.audio_path(root), u.id) for u in read_manifest(SENTENCES) if 3.0 <= u.duration <= 10.0]
    out = []
    for i, s in enumerate(sentences):
        if i % 2 == 0 and pool:
            path, pid = pool[(i // 2) % len(pool)]
        else:
            cands = [c for c in own if c[1] != s.id]
            path, pid = cands[(i * 7) % len(cands)]
        wav, _ = load_audio(path, sr=SR)
        out.append((wav[0][: 10 * SR], pid))
    return out


def time_first_block(tts, text: str, times: list[float]) -> float:
    """Seconds from ``tts.stream(text)`` to its first audio block, appended to ``times`` and returned (so the
    caller can leave it out of the generation time)."""
    t1 = time.perf_counter()
    next(iter(tts.stream(text)))
    times.append(time.perf_counter() - t1)
    return times[-1]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True)
    p.add_argument("--n", type=int, default=100)
    p.add_argument("--model", default=None, help="our TTS model (default: the shipped default)")
    p.add_argument("--systems", default=",".join(SYSTEMS),
                   help=f"comma-separated, of {', '.join(SYSTEMS + OPTIONAL)} (default: all but {', '.join(OPTIONAL)})")
    p.add_argument("--aligned-model", default=None, metavar="RUN",
                   help="ours_aligned: an aligned codec LM (a run or checkpoint of `speechlm acoustic train-lm`), "
                        "greedy, heard through its codec_sf tokens")
    p.add_argument("--adapt-blend", type=float, default=1.0,
                   help="ours_adapted: how far the adapted frames move the shifted ones (default 1.0, the "
                   "full adaptation; `speechlm tts --adapt-steps` uses 0.7)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--page", type=int, default=20, help="sentences on the listening page")
    args = p.parse_args()

    import torch

    from speechlm.audio.io import load_audio, resample, save_audio
    from speechlm.data.manifest import manifest_root
    from speechlm.eval.mos import dnsmos
    from speechlm.eval.speaker import cosine_similarity, load_embedder
    from speechlm.eval.whisper import WhisperJudge
    from speechlm.tasks.tts import TTS
    from speechlm.tasks.tts_duration import ADAPT_STEPS
    from speechlm.text.wer import word_errors

    torch.set_num_threads(args.threads)
    systems = [s for s in args.systems.split(",") if s]
    unknown = [s for s in systems if s not in SYSTEMS + OPTIONAL]
    if unknown:
        p.error(f"unknown system(s) {', '.join(unknown)}; choose from {', '.join(SYSTEMS + OPTIONAL)}")
    if "ours_aligned" in systems and not args.aligned_model:
        p.error("ours_aligned needs --aligned-model RUN")
    out = Path(args.out)
    for s in systems:
        (out / s).mkdir(parents=True, exist_ok=True)
    (out / "prompts").mkdir(parents=True, exist_ok=True)
    sents = pick_sentences(SENTENCES, args.n)
    root = manifest_root(SENTENCES)
    prompts = pick_prompts(sents, root)
    for u, (w, _) in zip(sents, prompts):
        save_audio(out / "prompts" / f"{u.id}.wav", w, SR)
    tts = TTS.load(args.model) if {"ours", "ours_prompted", "ours_adapted", "ours_tokens"} & set(systems) else None
    voice_time: dict[str, list[float]] = {"ours_prompted": [], "ours_adapted": []}  # seconds to make each voice
    if "ours_adapted" in systems:  # the prompt's transcript for adaptation: what Whisper base hears, as in the CLI
        hearer = WhisperJudge.load("base", threads=args.threads)
        tts.hear = lambda w, lang: hearer.transcribe(w, SR, lang)
    aligned = None
    if "ours_aligned" in systems:
        from speechlm.tasks.tts_aligned import AlignedTTS

        aligned = AlignedTTS.load(args.aligned_model)
    gen_time = {s: 0.0 for s in systems}
    first_audio: dict[str, list[float]] = {"ours": [], "ours_aligned": []}  # seconds to the first streamed block
    from tqdm import tqdm

    for i, u in enumerate(tqdm(sents, desc="generate")):
        for s in systems:
            t0 = time.perf_counter()
            if s == "ours":
                wav = tts.generate(u.text).wav
                if i < 20:
                    t0 += time_first_block(tts, u.text, first_audio[s])
            elif s in ("ours_prompted", "ours_adapted"):  # shifted to the prompt (the default), or also adapted
                voice = tts.voice(prompts[i][0], SR, adapt_steps=ADAPT_STEPS if s == "ours_adapted" else 0,
                                  adapt_blend=args.adapt_blend)
                voice_time[s].append(time.perf_counter() - t0)
                t0 = time.perf_counter()
                wav = tts.generate(u.text, prompt=voice).wav
            elif s == "ours_aligned":
                wav = aligned.generate(u.text).wav
                if i < 20:
                    t0 += time_first_block(aligned, u.text, first_audio[s])
            elif s == "ours_tokens":  # the same model heard through its codec_sf tokens
                tts.via_tokens = True
                wav = tts.generate(u.text).wav
                tts.via_tokens = False
            elif s == "piper_joe":
                from speechlm.data.piper import joe

                v = joe(threads=args.threads)
                wav = resample(v.synthesize(u.text, noise_scale=0.667, noise_w=0.8), v.sample_rate, SR)
            elif s == "flite_slt":
                with tempfile.NamedTemporaryFile(suffix=".wav") as f:
                    subprocess.run(["flite", "-voice", "slt", "-t", u.text, "-o", f.name], check=True)
                    wav = load_audio(f.name, sr=SR)[0][0]
            else:
                wav = load_audio(u.audio_path(root), sr=SR)[0][0]
            gen_time[s] += time.perf_counter() - t0
            save_audio(out / s / f"{u.id}.wav", wav, SR)

    judge = WhisperJudge.load("base", threads=args.threads)
    emb = load_embedder(None)
    prompt_emb = [emb.embed(resample(w, SR, emb.sample_rate)) for w, _ in prompts]
    rows, per_utt = {}, {}
    for s in systems:
        errs = ins_del = ref = 0
        mos, sims, dur = [], [], 0.0
        for i, u in enumerate(tqdm(sents, desc=f"score {s}")):
            wav = load_audio(out / s / f"{u.id}.wav", sr=SR)[0][0]
            dur += len(wav) / SR
            hyp = judge.transcribe(wav, SR, "en")
            c = word_errors(u.text, hyp)
            errs, ins_del, ref = errs + c.errors, ins_del + c.insertions + c.deletions, ref + c.ref_len
            mos.append(dnsmos(wav, SR).ovrl)
            if s in ("ours", "ours_prompted", "ours_adapted"):
                sims.append(cosine_similarity(emb.embed(resample(wav, SR, emb.sample_rate)), prompt_emb[i]))
            per_utt.setdefault(u.id, {"text": u.text, "prompt": prompts[i][1]})[s] = {"hyp": hyp, "wer": c.rate}
        rows[s] = {"wer": errs / max(ref, 1), "ins_del": ins_del / max(ref, 1), "dnsmos_ovrl": float(np.nanmean(mos)),
                   "spk_sim": float(np.mean(sims)) if sims else None,
                   "rtf": gen_time[s] / dur if s != "ground_truth" else None, "audio_s": dur}
    for s, times in first_audio.items():
        if times:
            rows[s]["first_audio_s"] = float(np.median(times))
    for s, times in voice_time.items():
        if times:
            rows[s]["voice_s"] = float(np.mean(times))
    command = shlex.join(["benchmarks/tts_eval.py", *sys.argv[1:]])
    ours = getattr(tts, "am", None) or getattr(tts, "lm", None)  # the duration model, or a codec LM
    res = {"kind": "tts_eval", "command": command, "n": len(sents), "sentences": SENTENCES,
           "judge": "whisper-base", "threads": args.threads,
           "model": None if ours is None else ours.model_id, "rows": rows, "utterances": per_utt}
    if "ours_adapted" in rows:
        res["adapt"] = {"steps": ADAPT_STEPS, "blend": args.adapt_blend}
    if aligned is not None:
        res["aligned_model"] = aligned.model_id
    (out / "results.json").write_text(json.dumps(res, indent=2, ensure_ascii=False) + "\n")
    lines = ["| system | WER | ins+del | DNSMOS OVRL | spk sim to prompt | RTF |", "|---|---|---|---|---|---|"]
    for s, r in rows.items():
        sim = "" if r["spk_sim"] is None else f"{r['spk_sim']:.3f}"
        rtf = "" if r["rtf"] is None else f"{r['rtf']:.3f}"
        lines.append(f"| {s} | {r['wer']:.3f} | {r['ins_del']:.3f} | {r['dnsmos_ovrl']:.2f} | {sim} | {rtf} |")
    for s, times in first_audio.items():
        if times:
            lines.append(f"\n{s}: first streamed audio after {1000 * rows[s]['first_audio_s']:.0f} ms (median of "
                         f"{len(times)} sentences, {args.threads} threads)")
    (out / "results.md").write_text("\n".join(lines) + "\n")
    from codec_intelligibility import write_page

    write_page(out, sents, ["prompts", *systems], lines, n=args.page, title="TTS on held-out sentences")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
