"""Measure the codec-LM targets: zero-shot TTS (WER, speaker similarity, cap hits, RTF) and editing.

    .venv/bin/python benchmarks/lm_tts_eval.py --model default --n-tts 30 --n-edit 20 --out runs/lm_eval

Held-out data: the ``test`` split of synth_v3 (held-out speakers). Each target sentence is prompted with another
utterance of the same (held-out) voice. Three conditions are scored with ``speechlm.eval.tts`` (the project CTC
ASR for every language, pocketsphinx for the English flite/festival voices; resemblyzer similarity to the
prompt): the generated speech, the ground-truth recording, and the codec resynthesis of the ground truth (with
the LM's codebooks). Edits: 1-3 contiguous words of a test sentence replaced by words of another sentence of the
same language; scored by the WER of the edited audio against the target text (vs the original recording against
its text), and the waveform correlation of the audio outside the regenerated span with the original.
Writes OUT/results.json and prints a markdown table.
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

import numpy as np
import torch

MANIFEST = "data/synth_v3/manifest.jsonl"


def pick(utts, n: int):
    """All English flite/festival test utterances first (pocketsphinx can judge them), then evenly spaced
    others; each with a prompt: another utterance of the same speaker of 2-10 s."""
    by_spk: dict[str, list] = {}
    for u in utts:
        by_spk.setdefault(u.speaker, []).append(u)
    pairs = []
    for u in utts:
        cands = [p for p in by_spk[u.speaker] if p.id != u.id and 2.0 <= p.duration <= 10.0]
        if cands:
            pairs.append((u, cands[0] if cands[0].id != u.id else cands[-1]))
    judged = [p for p in pairs if p[0].lang == "en" and not p[0].speaker.startswith("espeak")]
    rest = [p for p in pairs if p not in judged]
    step = max(1, len(rest) // max(1, n - len(judged)))
    return (judged + rest[::step])[:n]


def run_tts(args, tts, utts, root, out: Path) -> dict:
    from speechlm.audio.io import load_audio, save_audio
    from speechlm.data.manifest import Utterance, write_manifest
    from speechlm.eval.tts import evaluate_tts

    pairs = pick(utts, args.n_tts)
    dirs = {k: out / k for k in ("gen", "gt", "resynth", "prompts")}
    for d in dirs.values():
        d.mkdir(parents=True, exist_ok=True)
    rows, gen_s, audio_s, caps, failures = [], 0.0, 0.0, 0, []
    k = tts.lm.config.n_codebooks
    from tqdm import tqdm

    for u, p in tqdm(pairs, desc="tts", unit="utt"):
        shutil.copy(p.audio_path(root), dirs["prompts"] / f"{u.id}.wav")
        shutil.copy(u.audio_path(root), dirs["gt"] / f"{u.id}.wav")
        wav, sr = load_audio(u.audio_path(root), sr=16000)
        tok = tts.codec.encode(wav[0], sr)
        save_audio(dirs["resynth"] / f"{u.id}.wav", tts.decode(torch.from_numpy(tok.codes[:k].astype(np.int64))),
                   16000)
        try:
            res = tts.generate(u.text, prompt=str(p.audio_path(root)), prompt_text=p.text, lang=u.lang,
                               seed=args.seed, temperature=args.temperature, top_k=args.top_k, top_p=args.top_p)
        except Exception as exc:  # noqa: BLE001 - a benchmark row, reported
            failures.append(f"{u.id}: {exc}")
            continue
        save_audio(dirs["gen"] / f"{u.id}.wav", res.wav, res.sample_rate)
        gen_s += res.seconds
        audio_s += res.duration
        caps += sum(res.hit_cap)
        rows.append(Utterance(id=u.id, audio=str(u.audio_path(root)), text=u.text, lang=u.lang, speaker=u.speaker,
                              duration=u.duration, split=args.split))
    sub = out / "targets.jsonl"
    write_manifest(sub, rows)
    result: dict = {"n": len(rows), "failures": failures, "cap_hits": caps, "rtf": gen_s / max(audio_s, 1e-9),
                    "gen_audio_s": audio_s, "gt_audio_s": sum(r.duration for r in rows)}
    for cond in ("gen", "gt", "resynth"):
        rep = evaluate_tts(sub, dirs[cond], asr="ctc", prompts_dir=dirs["prompts"], groups=("asr", "speaker"),
                           n_resamples=200)
        result[f"{cond}/wer_ctc"] = rep.metric("wer").value
        result[f"{cond}/cer_ctc"] = rep.metric("cer").value
        result[f"{cond}/spk_sim"] = rep.metric("spk_sim").value
        if any(r.lang == "en" and not r.speaker.startswith("espeak") for r in rows):
            en = out / "targets_en.jsonl"
            write_manifest(en, [r for r in rows if r.lang == "en" and not r.speaker.startswith("espeak")])
            rep = evaluate_tts(en, dirs[cond], asr="pocketsphinx", groups=("asr",), n_resamples=200)
            result[f"{cond}/wer_pocketsphinx"] = rep.metric("wer").value
            result["n_pocketsphinx"] = rep.meta["utterances"]
    return result


def run_edits(args, tts, utts, root, out: Path) -> dict:
    from speechlm.audio.io import load_audio, save_audio
    from speechlm.eval.asr import transcribe
    from speechlm.tasks.edit import XFADE_S, edit
    from speechlm.text.wer import char_errors, word_errors

    rng = np.random.default_rng(args.seed)
    cands = [u for u in utts if 2.0 <= u.duration <= 8.0 and len(u.text.split()) >= 5]
    idx = np.linspace(0, len(cands) - 1, min(args.n_edit, len(cands))).astype(int)
    (out / "edits").mkdir(parents=True, exist_ok=True)
    corr, err_e, n_e, err_o, n_o, secs, caps, failures = [], 0, 0, 0, 0, 0.0, 0, []
    cerr_e = cn_e = cerr_o = cn_o = 0
    from tqdm import tqdm

    for i in tqdm(idx, desc="edit", unit="utt"):
        u = cands[i]
        words = u.text.split()
        donors = [w for v in cands if v.lang == u.lang and v.id != u.id for w in v.text.split()]
        n = int(rng.integers(1, 4))
        s = int(rng.integers(0, len(words) - n + 1))
        new = [str(rng.choice(donors)) for _ in range(n)]
        target = " ".join(words[:s] + new + words[s + n :])
        wav, sr = load_audio(u.audio_path(root), sr=16000)
        x = wav[0]
        try:
            res = edit(tts, x, sr, u.text, target, lang=u.lang, seed=args.seed)
        except Exception as exc:  # noqa: BLE001 - a benchmark row, reported
            failures.append(f"{u.id}: {exc}")
            continue
        save_audio(out / "edits" / f"{u.id}.wav", res.wav, 16000)
        secs += res.seconds
        caps += int(res.hit_cap)
        xf = int(XFADE_S * 16000)
        a, b = res.in_spans[0][0], res.in_spans[-1][1]
        head = slice(0, max(0, a - xf))
        tail_n = max(0, len(x) - b - xf)
        orig = np.concatenate([x[head], x[len(x) - tail_n :]])
        got = np.concatenate([res.wav[head], res.wav[len(res.wav) - tail_n :]])
        if len(orig) > 100:
            corr.append(float(np.corrcoef(orig, got)[0, 1]))
        hyp_e, hyp_o = transcribe(res.wav, 16000, "ctc", None, u.lang), transcribe(x, 16000, "ctc", None, u.lang)
        we, wo = word_errors(target, hyp_e, u.lang), word_errors(u.text, hyp_o, u.lang)
        ce, co = char_errors(target, hyp_e, u.lang), char_errors(u.text, hyp_o, u.lang)
        err_e, n_e, err_o, n_o = err_e + we.errors, n_e + we.ref_len, err_o + wo.errors, n_o + wo.ref_len
        cerr_e, cn_e, cerr_o, cn_o = cerr_e + ce.errors, cn_e + ce.ref_len, cerr_o + co.errors, cn_o + co.ref_len
    return {"n": len(corr), "failures": failures, "corr_min": min(corr) if corr else None,
            "corr_mean": float(np.mean(corr)) if corr else None, "wer_edited_ctc": err_e / max(n_e, 1),
            "wer_original_ctc": err_o / max(n_o, 1), "cer_edited_ctc": cerr_e / max(cn_e, 1),
            "cer_original_ctc": cerr_o / max(cn_o, 1), "cap_hits": caps, "seconds": secs}


def main() -> int:
    from speechlm.data.manifest import manifest_root, read_manifest
    from speechlm.tasks.tts import TTS

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default=None)
    p.add_argument("--codec", default=None, help="codec (default: the shipped codec the LM was trained on)")
    p.add_argument("--manifest", default=MANIFEST)
    p.add_argument("--n-tts", type=int, default=30)
    p.add_argument("--n-edit", type=int, default=20)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--split", default="test", help="manifest split to draw sentences from (tune on 'valid')")
    p.add_argument("--temperature", type=float, default=1.0, help="TTS sampling temperature (speechlm tts's default)")
    p.add_argument("--top-k", type=int, default=50)
    p.add_argument("--top-p", type=float, default=0.9)
    p.add_argument("--out", required=True)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    utts = [u for u in read_manifest(args.manifest) if u.split == args.split]
    root = manifest_root(args.manifest)
    tts = TTS.load(args.model, args.codec)
    t0 = time.time()
    res: dict = {"model": str(tts.lm.path), "layout": tts.lm.config.layout, "params_M": tts.lm.n_params / 1e6,
                 "codec": tts.codec.tokenizer_id, "threads": args.threads, "split": args.split,
                 "sampling": {"temperature": args.temperature, "top_k": args.top_k, "top_p": args.top_p}}
    if args.n_tts:
        res["tts"] = run_tts(args, tts, utts, root, out)
    if args.n_edit:
        res["edit"] = run_edits(args, tts, utts, root, out)
    res["wall_s"] = time.time() - t0
    (out / "results.json").write_text(json.dumps(res, indent=2))
    print(json.dumps(res, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
