"""Speech editing on held-out recordings: one word replaced per sentence, judged by Whisper base.

    .venv/bin/python benchmarks/edit_eval.py --out runs/edit_eval            # 50 edits, ~5 min on 2 cores

    .venv/bin/python benchmarks/edit_eval.py --out runs/edit_plausible --edits plausible

Sentences: ``--n`` evenly spaced asterisk-core-sounds-en prompts of at least 4 words (held out). In each, one
word (not the first) is replaced (seeded): by default by any word of another of those sentences, which makes odd
targets ("Press 5 to done the current message") that Whisper's language model resists; with ``--edits
plausible`` by a word that follows the previous word (and, where one exists, precedes the next) somewhere in the
prompt texts (:func:`plausible_edit`: "followed by the pound [sign]"). Scored: Whisper-base WER of the edited
audio against the target text, beside the WER of the unedited recording against its transcript; whether the new
word itself is heard (:func:`new_word_heard`); the waveform correlation of the audio before the first and after
the last edited span (crossfades excluded) with the original, which the method copies unchanged. The same target
sentences are read whole by Piper ``en_US-joe-medium`` as an anchor for what they allow (``--no-anchor`` skips
it). Writes OUT/results.json, OUT/index.html and the audio.
"""

from __future__ import annotations

import argparse
import html
import json
import random
import shlex
import sys
from pathlib import Path

import numpy as np

SR = 16000


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True)
    p.add_argument("--n", type=int, default=50)
    p.add_argument("--model", default=None, help="TTS model (default: the shipped default)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--no-anchor", action="store_true", help="skip Piper reading the target sentences whole")
    p.add_argument("--sentences", default=None, metavar="MANIFEST",
                   help="recordings to edit (default: the held-out asterisk-core-sounds-en prompts); for "
                   "development runs, e.g. a manifest of flite voices")
    p.add_argument("--no-match-pace", dest="match_pace", action="store_false",
                   help="duration model: speak the new words at the model's pace, not the recording's")
    p.add_argument("--no-match-f0", dest="match_f0", action="store_false",
                   help="duration model: leave the new words' pitch where the model puts it")
    p.add_argument("--adapt-steps", type=int, default=0,
                   help="duration model: also adapt its decoder to each recording for this many steps (default 0)")
    p.add_argument("--context-words", type=int, default=None,
                   help="duration model: unchanged words regenerated each side of a change (default: the shipped "
                        "setting, speechlm.tasks.edit.CONTEXT_WORDS)")
    p.add_argument("--pause-s", type=float, default=None,
                   help="duration model: ... stopping at a pause at least this long (default: PAUSE_S)")
    p.add_argument("--edits", choices=("random", "plausible"), default="random",
                   help="random: any word of the other sentences; plausible: a word that follows the previous "
                   "word (and precedes the next) somewhere in the prompt texts (see plausible_edit)")
    args = p.parse_args()

    import torch
    from tqdm import tqdm
    from tts_eval import SENTENCES, pick_sentences

    from speechlm.audio.io import load_audio, save_audio
    from speechlm.data.manifest import manifest_root
    from speechlm.errors import SpeechLMError
    from speechlm.eval.whisper import WhisperJudge
    from speechlm.tasks.edit import XFADE_S, edit, edit_duration
    from speechlm.tasks.tts import TTS, tts_kind

    torch.set_num_threads(args.threads)
    out = Path(args.out)
    (out / "edited").mkdir(parents=True, exist_ok=True)
    (out / "original").mkdir(parents=True, exist_ok=True)
    sentences = args.sentences or SENTENCES
    sents = pick_sentences(sentences, args.n)
    root = manifest_root(sentences)
    rng = random.Random(args.seed)
    vocab = sorted({w.strip(".,?!").lower() for s in sents for w in s.text.split() if w.strip(".,?!").isalpha()
                    and len(w) > 3})
    tts = TTS.load(args.model)
    duration_model = tts_kind(args.model) == "acoustic"
    context = {k: v for k, v in (("context_words", args.context_words), ("pause_s", args.pause_s)) if v is not None}
    judge = WhisperJudge.load("base", threads=args.threads)
    from speechlm.text.wer import word_errors

    piper = None
    if not args.no_anchor:
        from speechlm.audio.io import resample
        from speechlm.data.piper import joe

        piper = joe(threads=args.threads)
        (out / "piper").mkdir(exist_ok=True)
    rows, e_edit, e_orig, n_edit, n_orig, corrs, failed = [], 0, 0, 0, 0, [], []
    e_anchor = n_anchor = 0
    x = int(XFADE_S * SR)
    bigrams = word_bigrams(SENTENCES) if args.edits == "plausible" else set()
    for u in tqdm(sents, desc="edits"):
        words = u.text.split()
        choice = plausible_edit(words, bigrams, rng) if args.edits == "plausible" else None
        if choice is not None:
            k, new = choice
        else:
            k = rng.randrange(1, len(words))
            new = rng.choice([v for v in vocab if v != words[k].strip(".,?!").lower()])
        tail = words[k][len(words[k].rstrip(".,?!")):]
        target = " ".join(words[:k] + [new + tail] + words[k + 1 :])
        wav = load_audio(u.audio_path(root), sr=SR)[0][0]
        try:
            res = (edit_duration(tts, wav, SR, u.text, target, adapt_steps=args.adapt_steps,
                                 match_pace=args.match_pace, match_f0=args.match_f0, **context) if duration_model
                   else edit(tts, wav, SR, u.text, target, seed=args.seed))
        except SpeechLMError as exc:
            failed.append({"id": u.id, "error": str(exc)})
            continue
        save_audio(out / "edited" / f"{u.id}.wav", res.wav, SR)
        save_audio(out / "original" / f"{u.id}.wav", wav, SR)
        hyp = judge.transcribe(res.wav, SR, "en")
        c = word_errors(target, hyp)
        o = word_errors(u.text, judge.transcribe(wav, SR, "en"))
        row_anchor = {}
        if piper is not None:
            pw = resample(piper.synthesize(target, noise_scale=0.667, noise_w=0.8), piper.sample_rate, SR)
            save_audio(out / "piper" / f"{u.id}.wav", pw, SR)
            hyp_a = judge.transcribe(pw, SR, "en")
            a_err = word_errors(target, hyp_a)
            e_anchor, n_anchor = e_anchor + a_err.errors, n_anchor + a_err.ref_len
            row_anchor = {"wer_piper": a_err.rate, "new_word_heard_piper": new_word_heard(words, k, target, hyp_a),
                          "hyp_piper": hyp_a}
        e_edit, n_edit, e_orig, n_orig = e_edit + c.errors, n_edit + c.ref_len, e_orig + o.errors, n_orig + o.ref_len
        # before the first edit the output starts as the input; after the last one it ends as the input (each
        # junction's crossfade, x samples, excluded)
        a, b = res.in_spans[0][0], res.in_spans[-1][1]
        n_tail = max(0, len(wav) - b - x)
        kept_out = np.concatenate([res.wav[: max(0, a - x)], res.wav[len(res.wav) - n_tail :]])
        kept_in = np.concatenate([wav[: max(0, a - x)], wav[len(wav) - n_tail :]])
        corr = float(np.corrcoef(kept_out, kept_in)[0, 1]) if len(kept_out) > 100 and kept_in.std() > 0 else 1.0
        corrs.append(corr)
        steps = pitch_steps(res.wav, res.out_spans)
        regenerated = sum(b - a for a, b in res.out_spans) / max(len(res.wav), 1)
        rows.append({"id": u.id, "text": u.text, "target": target, "wer": c.rate, "corr_outside": corr,
                     "regenerated": regenerated,
                     "new_word_heard": new_word_heard(words, k, target, hyp), "hyp": hyp, "pitch_steps": steps,
                     **row_anchor})
    all_steps = [x for r in rows for x in r["pitch_steps"]]
    res = {"kind": "edit_eval", "command": shlex.join(["benchmarks/edit_eval.py", *sys.argv[1:]]),
           "edits": args.edits, "n": len(rows), "failed": failed,
           "model": getattr(getattr(tts, "am", None), "model_id", None) or str(args.model or "default"),
           "judge": "whisper-base",
           "wer_edited": e_edit / max(n_edit, 1), "wer_original": e_orig / max(n_orig, 1),
           "corr_outside_min": float(np.min(corrs)) if corrs else None,
           "corr_outside_median": float(np.median(corrs)) if corrs else None,
           "new_word_heard": float(np.mean([r["new_word_heard"] for r in rows])) if rows else None,
           "pitch_step_median": float(np.median(all_steps)) if all_steps else None,
           "pitch_step_mean": float(np.mean(all_steps)) if all_steps else None, "pitch_step_cuts": len(all_steps),
           "regenerated_mean": float(np.mean([r["regenerated"] for r in rows])) if rows else None,
           "regenerated_median": float(np.median([r["regenerated"] for r in rows])) if rows else None}
    if piper is not None and rows:
        res.update({"wer_piper_target": e_anchor / max(n_anchor, 1),
                    "new_word_heard_piper": float(np.mean([r["new_word_heard_piper"] for r in rows]))})
    res["rows"] = rows
    (out / "results.json").write_text(json.dumps(res, indent=2) + "\n")
    summary = (f"{len(rows)} edits ({len(failed)} refused): WER edited {res['wer_edited']:.3f} (originals "
               f"{res['wer_original']:.3f}"
               + (f"; Piper reading the targets {res['wer_piper_target']:.3f}" if "wer_piper_target" in res else "")
               + f"); new word heard {res['new_word_heard']:.2f}"
               + (f" (Piper {res['new_word_heard_piper']:.2f})" if "new_word_heard_piper" in res else "")
               + f"; correlation outside the edits min {res['corr_outside_min']:.4f}, "
               f"median {res['corr_outside_median']:.4f}"
               + (f"; pitch step at the cuts median {res['pitch_step_median']:.3f}" if all_steps else "")
               + (f"; share of the audio regenerated mean {res['regenerated_mean']:.2f}" if rows else ""))
    body = "".join(f"<tr><td>{html.escape(r['text'])}</td><td>{html.escape(r['target'])}</td>"
                   f"<td><audio controls preload='none' src='original/{r['id']}.wav'></audio></td>"
                   f"<td><audio controls preload='none' src='edited/{r['id']}.wav'></audio></td>"
                   + (f"<td><audio controls preload='none' src='piper/{r['id']}.wav'></audio></td>" if piper else "")
                   + "</tr>"
                   for r in rows[:20])
    (out / "index.html").write_text("<!doctype html><meta charset='utf-8'><title>speechlm edits</title>"
                                    f"<h1>Edits of held-out recordings</h1><p>{html.escape(summary)}</p><table>"
                                    "<tr><th>original text</th><th>target</th><th>original</th><th>edited</th>"
                                    + ("<th>Piper reads the target</th>" if piper else "") + "</tr>"
                                    + body + "</table>")
    print(summary)
    return 0


def _key(w: str) -> str:
    return w.strip(".,?!:;\"'").lower()


def word_bigrams(manifest: str) -> set[tuple[str, str]]:
    """Adjacent word pairs (lower case, outer punctuation stripped) of every transcript in ``manifest``."""
    from speechlm.data.manifest import read_manifest

    out: set[tuple[str, str]] = set()
    for u in read_manifest(manifest):
        ks = [_key(w) for w in u.text.split()]
        out.update(zip(ks[:-1], ks[1:]))
    return out


def plausible_edit(words: list[str], bigrams: set[tuple[str, str]], rng) -> tuple[int, str] | None:
    """A substitution a person might make: position ``k`` (not the first word) and a new word that follows
    ``words[k-1]`` somewhere in the prompt texts and, where some such word also precedes ``words[k+1]``, one of
    those; None when no position has a candidate. No hand-made lists: the texts' own bigrams decide."""
    ks = [_key(w) for w in words]
    options = []
    for k in range(1, len(words)):
        if not ks[k].isalnum():
            continue
        left = {b for a, b in bigrams if a == ks[k - 1] and b != ks[k] and b.isalnum()}
        both = {v for v in left if k + 1 < len(ks) and (v, ks[k + 1]) in bigrams}
        if both or left:
            options.append((k, sorted(both or left)))
    if not options:
        return None
    k, cands = options[rng.randrange(len(options))]
    return k, rng.choice(cands)


def pitch_steps(wav: np.ndarray, spans: list[tuple[int, int]], edge_s: float = 0.16) -> list[float]:
    """|difference| of the median voiced log-F0 in the ``edge_s`` before and after each cut of the edited audio
    (``spans``: the regenerated parts, samples at 16 kHz; a cut at the file's edge or without 3 voiced 20-ms frames
    on both sides is skipped): how far the pitch jumps where recording and new speech meet."""
    from speechlm.lm.acoustic_data import FRAME_RATE, frame_features
    from speechlm.tasks.edit import voiced_lf0_median

    feat = frame_features(np.ascontiguousarray(wav, np.float64))
    m, n = feat.shape[1] - 8, int(round(edge_s * FRAME_RATE))  # [mcep | lf0 | vuv | 6 band aperiodicities]

    out = []
    for cut in (c for span in spans for c in span):
        f = int(cut / (SR / FRAME_RATE))
        if 0 < f < len(feat):
            x, y = voiced_lf0_median(feat, m, f - n, f), voiced_lf0_median(feat, m, f, f + n)
            if x is not None and y is not None:
                out.append(abs(x - y))
    return out


def new_word_heard(words: list[str], k: int, target: str, hyp: str) -> bool:
    """Whether the replaced word ``words[k]`` of ``target`` lies in a stretch of the normalised target that the
    hypothesis matches (difflib's alignment of the two word sequences)."""
    import difflib

    from speechlm.text.wer import normalize_text

    ref = normalize_text(target).split()
    at = len(normalize_text(" ".join(words[:k])).split())  # the new word's index in the normalised target
    hw = normalize_text(hyp).split()
    blocks = difflib.SequenceMatcher(a=ref, b=hw, autojunk=False).get_matching_blocks()
    return any(b.a <= at < b.a + b.size for b in blocks)


if __name__ == "__main__":
    raise SystemExit(main())
