"""``speechlm tokens analyze``: every tokenizer (every codec level cumulatively) on one held-out set.

For each row: frame rate, bitrate, distinct units seen, utilisation and entropy of the newest codebook, phone
purity (plug-in and held-out) and PNMI against forced-aligned phones, speaker-probe accuracy from pooled tokens
(all speakers, and within each language), bigram unit-LM perplexity of the newest codebook (trained on the
manifest's ``train`` split), and, where a decoder exists, PESQ-WB / STOI of the resynthesis.

Layering: this is evaluation code (``speechlm.eval``), above the tokenizers it measures and the aligner
(``speechlm.asr``) it uses; the heavy ones are imported inside the functions that use them.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from speechlm.errors import SpeechLMError
from speechlm.eval.tokens.metrics import (
    heldout_purity,
    joint_units,
    ngram_perplexity,
    purity_pnmi,
    speaker_probe,
    unit_histograms,
    usage_stats,
)

SR = 16000


@dataclass
class Clip:
    """One analysed utterance: audio at 16 kHz, speaker, language, and its forced alignment (or None)."""

    wav: np.ndarray
    speaker: str
    lang: str
    alignment: object | None


def _evenly(items: list, n: int | None) -> list:
    if n is None or len(items) <= n:
        return items
    idx = np.linspace(0, len(items) - 1, n).round().astype(int)
    return [items[i] for i in idx]


def load_clips(manifests: Sequence[str], split: str, max_utts: int | None, align: bool, show_progress: bool = True,
               aligner: str | None = None) -> list[Clip]:
    """The ``split`` utterances of ``manifests`` (evenly spaced, at most ``max_utts``), aligned when ``align``
    (needs ``phonemes`` or a G2P-able ``text``; utterances the aligner refuses are dropped)."""
    from tqdm import tqdm

    from speechlm.audio.io import load_audio
    from speechlm.data.manifest import manifest_root, read_manifest

    utts = []
    for m in manifests:
        root = manifest_root(m)
        utts += [(u, u.audio_path(root)) for u in read_manifest(m) if split == "all" or u.split == split]
    utts = _evenly(utts, max_utts)
    if not utts:
        raise SpeechLMError(f"no {split} utterances in {', '.join(map(str, manifests))}")
    tr = None
    if align:
        from speechlm.asr.transcriber import get_transcriber

        tr = get_transcriber(aligner)
    clips = []
    for u, path in tqdm(utts, desc=f"loading{' + aligning' if align else ''} {split}", disable=not show_progress,
                        unit="utt"):
        wav, _ = load_audio(path, sr=SR)
        x = np.clip(wav.mean(0), -1, 1).astype(np.float32)
        al = None
        if tr is not None:
            try:
                al = tr.align(x, u.text, u.lang, sr=SR, phonemes=u.phonemes)
            except SpeechLMError:
                continue
        clips.append(Clip(x, u.speaker, u.lang, al))
    return clips


def _probe(hists: np.ndarray, clips: list[Clip]) -> dict:
    spk = [c.speaker for c in clips]
    overall = speaker_probe(hists, spk)
    langs = sorted({c.lang for c in clips})
    acc_w = chance_w = n_w = 0.0
    for lang in langs:
        idx = [i for i, c in enumerate(clips) if c.lang == lang]
        r = speaker_probe(hists[idx], [spk[i] for i in idx])
        if r.n_speakers >= 2:
            acc_w += r.accuracy * r.n_utts
            chance_w += r.chance * r.n_utts
            n_w += r.n_utts
    return {"speaker_acc": overall.accuracy, "speaker_chance": overall.chance, "speakers": overall.n_speakers,
            "speaker_acc_in_lang": acc_w / n_w if n_w else float("nan"),
            "speaker_chance_in_lang": chance_w / n_w if n_w else float("nan")}


def content_probe(clips: list[Clip], frame_rate: float = 50.0) -> dict:
    """The speaker probe on the aligned phones' histograms: what the words alone (and their timing) give away
    about the speaker, the floor a perfectly speaker-free unit inventory would still reach."""
    idx = [i for i, c in enumerate(clips) if c.alignment is not None]
    if not idx:
        return {}
    labels = [np.asarray(clips[i].alignment.frame_labels(frame_rate, int(len(clips[i].wav) * frame_rate / SR)))
              for i in idx]
    names = sorted({str(p) for lab in labels for p in lab})
    ids = {p: j for j, p in enumerate(names)}
    seqs = [np.array([[ids[str(p)] for p in lab]], np.int64) for lab in labels]
    return _probe(unit_histograms(seqs, len(names)), [clips[i] for i in idx])


def _resynth(tok, tokens_list, clips: list[Clip], k: int) -> dict:
    from speechlm.eval.metrics import mel_distance, pesq_score, stoi_score

    pesq, stoi, mel = [], [], []
    for t, c in zip(tokens_list, clips):
        t = dataclasses.replace(t, codes=t.codes[:k], bitrate=round(t.bitrate * k / t.num_codebooks, 4))
        y, _ = tok.decode(t)
        pesq.append(pesq_score(c.wav, y, SR))
        stoi.append(stoi_score(c.wav, y, SR))
        mel.append(mel_distance(c.wav, y, SR))
    return {"pesq": float(np.nanmean(pesq)), "stoi": float(np.nanmean(stoi)), "mel_dist": float(np.nanmean(mel)),
            "resynth_utts": len(clips)}


def _bridge_for(tok):
    """A shipped bridge (``speechlm/assets/bridge_*``) trained for ``tok`` (its resynthesis path), else None."""
    from speechlm.tokenizers.semantic.api import SemanticTokenizer

    if not isinstance(tok, SemanticTokenizer):
        return None
    from speechlm.tokenizers.semantic.bridge import ASSETS, Bridge

    for folder in sorted(ASSETS.glob("bridge_*")):
        try:
            saved = json.loads((folder / "config.json").read_text())
            # where Bridge.load reads it: the config's bridge_meta, else the checkpoint's extra
            meta = (saved.get("config") or {}).get("bridge_meta") or saved.get("extra") or {}
        except (OSError, ValueError, AttributeError):
            continue
        if meta.get("semantic_id") == tok.tokenizer_id:
            try:
                return Bridge.load(folder)
            except SpeechLMError:
                return None
    return None


def _bridge_resynth(bridge, tokens_list, clips: list[Clip], all_clips: list[Clip]) -> dict:
    """PESQ/STOI of semantic tokens heard through the bridge, the prompt being another utterance of the same
    speaker (the voice comes from the prompt; timing and content from the tokens)."""
    from speechlm.eval.metrics import mel_distance, pesq_score, stoi_score

    pesq, stoi, mel = [], [], []
    for t, c in zip(tokens_list, clips):
        others = [o for o in all_clips if o.speaker == c.speaker and o is not c] or [c]
        y, _ = bridge.decode(t, others[0].wav, SR)
        pesq.append(pesq_score(c.wav, y, SR))
        stoi.append(stoi_score(c.wav, y, SR))
        mel.append(mel_distance(c.wav, y, SR))
    return {"pesq": float(np.nanmean(pesq)), "stoi": float(np.nanmean(stoi)), "mel_dist": float(np.nanmean(mel)),
            "resynth_utts": len(clips),
            "resynth_via": bridge.codec.tokenizer_id}


def analyze_tokenizer(spec: str, clips: list[Clip], lm_clips: list[Clip], resynth_utts: int,
                      show_progress: bool = True) -> list[dict]:
    """Rows for one tokenizer: one per cumulative codec level, or one for a single-codebook tokenizer."""
    from tqdm import tqdm

    from speechlm.tokenizers.registry import load_tokenizer

    tok = load_tokenizer(spec)
    enc = [tok.encode(c.wav, SR) for c in tqdm(clips, desc=f"{spec}: encode", disable=not show_progress)]
    lm_codes = [tok.encode(c.wav, SR).codes for c in tqdm(lm_clips, desc=f"{spec}: encode LM data",
                                                           disable=not show_progress)]
    codes = [t.codes.astype(np.int64) for t in enc]
    aligned = [i for i, c in enumerate(clips) if c.alignment is not None]
    labels = {i: clips[i].alignment.frame_labels(tok.frame_rate, codes[i].shape[1]) for i in aligned}
    can_decode = type(tok).__name__ == "Codec"
    bridge = _bridge_for(tok) if resynth_utts > 0 else None
    rows, lm_bits = [], 0.0
    for k in range(1, tok.num_codebooks + 1):
        row: dict = {"tokenizer": spec, "id": tok.tokenizer_id, "codebooks": k,
                     "label": f"{spec} L1-{k}" if tok.num_codebooks > 1 else spec,
                     "frame_rate": tok.frame_rate, "kbps": round(k * tok.frame_rate * math.log2(tok.cardinality)
                                                                 / 1000, 4)}
        newest = np.concatenate([c[k - 1] for c in codes])
        row["utilisation"], row["entropy_bits"] = usage_stats(newest, tok.cardinality)
        if aligned:
            units_all = joint_units(np.concatenate([codes[i][:k] for i in aligned], axis=1))
            phones = np.concatenate([labels[i] for i in aligned])
            row["units_seen"] = int(len(np.unique(units_all)))
            row["purity"], row["pnmi"] = purity_pnmi(units_all, phones)
            lengths = np.array([codes[i].shape[1] for i in aligned])
            part = np.repeat(np.arange(len(aligned)) % 2, lengths)  # alternate utterances: map on A, score on B
            row["purity_heldout"] = heldout_purity(units_all[part == 0], phones[part == 0], units_all[part == 1],
                                                   phones[part == 1])
        row.update(_probe(unit_histograms([c[:k] for c in codes], tok.cardinality), clips))
        ppl = ngram_perplexity([c[k - 1] for c in lm_codes], [c[k - 1] for c in codes], tok.cardinality)
        lm_bits += math.log2(ppl)
        row["lm_ppl"], row["lm_bits_per_s"] = ppl, lm_bits * tok.frame_rate
        if can_decode and resynth_utts > 0:
            row.update(_resynth(tok, enc[:resynth_utts], clips[:resynth_utts], k))
        elif bridge is not None:
            row.update(_bridge_resynth(bridge, enc[:resynth_utts], clips[:resynth_utts], clips))
        rows.append(row)
    return rows


def analyze(specs: Sequence[str], manifests: Sequence[str], out: str | os.PathLike, split: str = "test",
            max_utts: int | None = None, lm_train_utts: int = 300, resynth_utts: int = 30,
            show_progress: bool = True, aligner: str | None = None, plot: bool = True) -> dict:
    """Analyse ``specs`` on ``manifests``; writes ``OUT.md``, ``OUT.json`` and (with ``plot``) ``OUT.png``."""
    clips = load_clips(manifests, split, max_utts, True, show_progress, aligner)
    if not any(c.alignment is not None for c in clips):
        raise SpeechLMError("no utterance could be aligned (need phonemes or text in the manifest)")
    try:
        lm_clips = load_clips(manifests, "train", lm_train_utts, False, show_progress) if lm_train_utts else []
    except SpeechLMError:
        lm_clips = []
    rows = []
    for spec in specs:
        rows += analyze_tokenizer(spec, clips, lm_clips, resynth_utts, show_progress)
    result = {"split": split, "manifests": [str(m) for m in manifests], "utterances": len(clips),
              "aligned": sum(c.alignment is not None for c in clips), "speakers": len({c.speaker for c in clips}),
              "lm_train_utterances": len(lm_clips), "content_probe": content_probe(clips), "rows": rows}
    out = Path(out)
    from speechlm.utils.atomic import atomic_path

    with atomic_path(out.with_suffix(".json")) as tmp:
        Path(tmp).write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    with atomic_path(out.with_suffix(".md")) as tmp:
        Path(tmp).write_text(markdown_table(result), encoding="utf-8")
    if plot:
        plot_tradeoffs(result, out.with_suffix(".png"))
    return result


def _f(x, fmt: str) -> str:
    return "–" if x is None or (isinstance(x, float) and not math.isfinite(x)) else format(x, fmt)


def markdown_table(result: dict) -> str:
    """The analysis as one markdown table (plus a line on the data)."""
    head = ("| tokenizer | Hz | kbps | units seen | util | entropy (bits) | purity | purity held-out | PNMI | "
            "spk acc / chance | spk acc in-lang / chance | unit-LM ppl | LM bits/s | PESQ | STOI | mel dist |")
    lines = [f"Data: {', '.join(result['manifests'])} split={result['split']}: {result['utterances']} utterances "
             f"({result['aligned']} aligned), {result['speakers']} speakers; unit LM trained on "
             f"{result['lm_train_utterances']} train utterances.", "", head, "|" + "---|" * 16]
    for r in result["rows"]:
        lines.append(
            f"| {r['label']} | {r['frame_rate']:g} | {r['kbps']:g} | {r.get('units_seen', '–')} | "
            f"{_f(r['utilisation'], '.2f')} | {_f(r['entropy_bits'], '.2f')} | {_f(r.get('purity'), '.3f')} | "
            f"{_f(r.get('purity_heldout'), '.3f')} | {_f(r.get('pnmi'), '.3f')} | "
            f"{_f(r['speaker_acc'], '.3f')} / {_f(r['speaker_chance'], '.3f')} | "
            f"{_f(r['speaker_acc_in_lang'], '.3f')} / {_f(r['speaker_chance_in_lang'], '.3f')} | "
            f"{_f(r['lm_ppl'], '.1f')} | {_f(r['lm_bits_per_s'], '.0f')} | {_f(r.get('pesq'), '.2f')} | "
            f"{_f(r.get('stoi'), '.3f')} | {_f(r.get('mel_dist'), '.3f')} |")
    cp = result.get("content_probe")
    if cp:
        lines += ["", f"Content floor of the speaker probe (the same probe on histograms of the aligned phones, "
                  f"which carry no voice): {_f(cp['speaker_acc'], '.3f')} / {_f(cp['speaker_chance'], '.3f')} "
                  f"overall (the words give the language away), {_f(cp['speaker_acc_in_lang'], '.3f')} / "
                  f"{_f(cp['speaker_chance_in_lang'], '.3f')} within a language."]
    via = sorted({r["label"] for r in result["rows"] if r.get("resynth_via")})
    if via:
        lines += ["", f"PESQ/STOI of {', '.join(via)}: through the semantic-to-codec bridge, voice prompt = another "
                  "utterance of the same speaker (timing and content come from the tokens)."]
    lines += ["", "purity/PNMI: plug-in on all analysed frames (grows with the number of distinct units; the codec's "
              "joint L1-k units are near-unique per frame); purity held-out: unit->phone map learnt on half the "
              "utterances, scored on the other half. Speaker probe: 3-fold logistic regression on pooled unit "
              "histograms; in-lang: one probe per language. Unit LM: bigram (absolute discounting) per codebook; "
              "ppl of the newest codebook, LM bits/s summed over codebooks."]
    return "\n".join(lines) + "\n"


def plot_tradeoffs(result: dict, path: str | os.PathLike) -> None:
    """Bitrate against PNMI, speaker-probe accuracy and PESQ, one marker per row."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    from speechlm.utils.atomic import atomic_path

    fig, axes = plt.subplots(1, 3, figsize=(15, 4.5))
    for ax, key, name in zip(axes, ("pnmi", "speaker_acc_in_lang", "pesq"),
                             ("PNMI (phones)", "speaker-probe accuracy (within language)", "PESQ-WB resynthesis")):
        for i, tok in enumerate(dict.fromkeys(r["tokenizer"] for r in result["rows"])):
            rs = [r for r in result["rows"] if r["tokenizer"] == tok and r.get(key) is not None
                  and math.isfinite(r[key])]
            if rs:  # one colour per tokenizer in every panel
                ax.plot([r["kbps"] for r in rs], [r[key] for r in rs], "o-", color=f"C{i}", label=tok)
        ax.set_xscale("log")
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        ax.xaxis.set_major_formatter(matplotlib.ticker.ScalarFormatter())
        ax.set_xlabel("bitrate (kbps)")
        ax.set_ylabel(name)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(str(tmp), dpi=110, format="png")
    plt.close(fig)
