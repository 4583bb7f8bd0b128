"""Render the docs' result tables from benchmark JSON, so the numbers in the docs are the measured ones.

    .venv/bin/python benchmarks/render_tables.py            # rewrite every marked table in docs/
    .venv/bin/python benchmarks/render_tables.py --check    # exit 1 if a doc is out of date (CI can run this)

It also renders the model cards into docs/models.md and the README's models table (benchmarks/render_cards.py).

A table lives between ``<!-- table: NAME -->`` and ``<!-- /table -->`` in a markdown file under docs/; NAME is a
JSON file in docs/results/ (without ``.json``), written by the benchmark named in the JSON's ``command``. Each
renderer below turns one kind of result into markdown.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "docs" / "results"
MARK = re.compile(r"(<!-- table: (?P<name>[\w.-]+) -->\n)(?P<body>.*?)(<!-- /table -->)", re.S)


def _f(x: float | None, nd: int = 2) -> str:
    return "–" if x is None or x != x else f"{x:.{nd}f}"


def codec_bench(r: dict) -> str:
    from speechlm.eval.codec_bench import to_markdown

    return "\n".join(to_markdown(r).splitlines()[2:])  # without the title line


def codec_intel(r: dict) -> str:
    gt = r["rows"]["original"]["wer"]
    lines = [f"{r['n']} held-out utterances of `{r['manifest']}`, judge {r['judge']}; a codec's target: WER <= "
             f"1.2 x original + 0.01 = {1.2 * gt + 0.01:.3f}", ""]
    if any("packed_kbps" in v for v in r["rows"].values()):
        lines += ["| condition | packed kbps | WER | CER | WER / original |", "|---|---|---|---|---|"]
        lines += [f"| {k} | {_f(v.get('packed_kbps'))} | {v['wer']:.3f} | {v['cer']:.3f} | "
                  f"{v['wer'] / max(gt, 1e-9):.2f} |" for k, v in r["rows"].items()]
        lines += ["", "Packed kbps: the condition's tokens range-coded (`speechlm codec encode -o X.slc`, entropy "
                  f"model `{r['entropy_model']}`), payload bits over these utterances' seconds."]
        if any(k.endswith(".slc") for k in r["rows"]):
            lines[-1] += (" `.slc` rows: packed as `codec encode -o X.slc` packs by default (quiet frames keep fewer "
                          "envelope stages), heard from what the packed file decodes to.")
    else:
        lines += ["| condition | WER | CER | WER / original |", "|---|---|---|---|"]
        lines += [f"| {k} | {v['wer']:.3f} | {v['cer']:.3f} | {v['wer'] / max(gt, 1e-9):.2f} |"
                  for k, v in r["rows"].items()]
    return "\n".join(lines)


def token_packing(r: dict) -> str:
    lines = [f"{r['clips']} wideband held-out clips ({r['seconds']} s), `{r['model']}`, entropy model "
             f"`{r['entropy_model']}`; kbps of each way of storing the same tokens (every clip on its own)", "",
             "| tokens (fixed width) | ours, packed | zlib -9 | bz2 -9 | lzma -9e |", "|---|---|---|---|---|"]
    lines += [f"| {x['fixed']:.2f} | **{x['ours']:.2f}** | {x['zlib']:.2f} | {x['bz2']:.2f} | {x['lzma']:.2f} |"
              for x in r["rows"]]
    lines += ["", "Bits per 20-ms frame under the entropy model (fixed width in brackets), all streams coded: "
              + ", ".join(f"{k} {v:g} ({r['fixed_bits'][k]})" for k, v in r["bits_per_frame"].items())
              + f". Pack + unpack: {r['pack_unpack_x_realtime']:g}x real time on one thread."]
    return "\n".join(lines)


def sf_refiner_ab(r: dict) -> str:
    lines = [f"{r['clips']} wideband held-out clips, `{r['model']}`", "", "| condition | PESQ-WB | STOI |",
             "|---|---|---|"]
    lines += [f"| {k} | {v['pesq_wb']:.3f} | {v['stoi']:.3f} |" for k, v in r["rows"].items()]
    return "\n".join(lines)


def sf_streaming(r: dict) -> str:
    agree = ", ".join(f"{k} {v:.3f}" for k, v in r["token_agreement"].items())
    return "\n".join([
        f"{r['clips']} wideband held-out clips at {r['bitrate']:g} kbps, `{r['model']}`, audio pushed 20 ms at a time",
        "", "| | encode latency ms | decode latency ms | PESQ-WB | STOI |", "|---|---|---|---|---|",
        f"| offline blocks (1 s) | {r['offline_latency_ms']['encode']:.0f} | {r['offline_latency_ms']['decode']:.0f} "
        f"| {r['pesq_wb']['offline']:.3f} | {r['stoi']['offline']:.3f} |",
        f"| streaming | {r['encode_latency_ms']:.0f} | {r['decode_latency_ms']:.0f} | {r['pesq_wb']['streaming']:.3f} "
        f"| {r['stoi']['streaming']:.3f} |", "",
        f"Streaming tokens equal to the offline ones: {agree}. Streaming 1-thread RTF: encode "
        f"{r['streaming_rtf']['encode']:.3f}, decode {r['streaming_rtf']['decode']:.3f}.", "",
        "Offline tokens decoded in blocks of each size (what the decoder's latency costs):", "",
        "| decode block (frames) | decode latency ms | PESQ-WB | STOI |", "|---|---|---|---|",
        *[f"| {b} | {v['decode_latency_ms']:.0f} | {v['pesq_wb']:.3f} | {v['stoi']:.3f} |"
          for b, v in r.get("decode_block_sweep", {}).items()]]
        + ([] if "stream_postfilter" not in r else [
            "", "The streaming row decodes " + ("with" if r["stream_postfilter"] else "without")
            + " the spectral post-filter; the offline row with it."]))


def tts_eval(r: dict) -> str:
    threads = "one thread" if r["threads"] == 1 else f"{r['threads']} threads"
    models = f"ours = `{r['model']}`" + (f", ours_aligned = `{r['aligned_model']}`" if r.get("aligned_model") else "")
    lines = [f"{r['n']} held-out sentences (`{r['sentences']}`), judge {r['judge']}, {threads}; {models}", "",
             "| system | Whisper-base WER | insertions + deletions | DNSMOS OVRL | speaker similarity to the prompt "
             "| RTF |",
             "|---|---|---|---|---|---|"]
    for k, v in r["rows"].items():
        lines.append(f"| {k} | {v['wer']:.3f} | {v['ins_del']:.3f} | {_f(v['dnsmos_ovrl'])} | {_f(v['spk_sim'], 3)} "
                     f"| {_f(v['rtf'], 3)} |")
    for k in ("ours", "ours_aligned"):
        if "first_audio_s" in r["rows"].get(k, {}):
            lines += ["", f"First streamed audio of `{k}` after {1000 * r['rows'][k]['first_audio_s']:.0f} ms "
                      "(median over 20 sentences)."]
    rows = r["rows"]
    if "ours_adapted" in rows:
        a = r.get("adapt", {"blend": 1.0})
        lines += ["", "`ours_adapted`: the decoder adapted to each prompt"
                  + (f" ({a['steps']} steps)" if "steps" in a else "")
                  + (": its own frames (blend 1, the full adaptation)." if a["blend"] >= 1.0 else
                     f", its frames taken {a['blend']:g} of the way from the shifted model's (blend).")]
    setup = [f"`{k}` {v['voice_s']:.1f} s" for k, v in rows.items() if "voice_s" in v]
    if setup:
        lines += ["", f"Making each prompt's voice (not in the RTF; mean): {', '.join(setup)}."]
    if "ours" in rows and "ours_prompted" in rows:
        o, p = rows["ours"], rows["ours_prompted"]

        def yes(ok: bool) -> str:
            return "met" if ok else "**not met**"

        worst_id = max(o["ins_del"], p["ins_del"])
        lines += ["", "| issue 19 target | measured | |", "|---|---|---|",
                  f"| default voice WER <= 0.05 | {o['wer']:.3f} | {yes(o['wer'] <= 0.05)} |",
                  f"| prompted WER <= 0.10 | {p['wer']:.3f} | {yes(p['wer'] <= 0.10)} |",
                  f"| prompted speaker similarity >= 0.75 | {p['spk_sim']:.3f} | {yes(p['spk_sim'] >= 0.75)} |",
                  f"| ... and >= unprompted + 0.1 ({o['spk_sim']:.3f} + 0.1) | {p['spk_sim']:.3f} | "
                  f"{yes(p['spk_sim'] >= o['spk_sim'] + 0.1)} |",
                  f"| insertions + deletions <= 0.03 | {worst_id:.3f} (worst row of ours) | {yes(worst_id <= 0.03)} |",
                  f"| RTF <= 0.3 on 2 threads (measured on {threads}) | {o['rtf']:.3f} / {p['rtf']:.3f} | "
                  f"{yes(max(o['rtf'], p['rtf']) <= 0.3)} |"]
        if "first_audio_s" in o:
            lines.append(f"| first streamed audio <= 300 ms | {1000 * o['first_audio_s']:.0f} ms | "
                         f"{yes(o['first_audio_s'] <= 0.3)} |")
        lines.append("| no generation at a length cap | durations are explicit: there is no cap to hit | met |")
        if "ours_adapted" in rows:
            a = rows["ours_adapted"]
            blend = r.get("adapt", {}).get("blend", 1.0)
            lines += [f"| adapted to the prompt (`ours_adapted`, opt-in, blend {blend:g}): prompted WER <= 0.10 / "
                      "similarity >= 0.75 | "
                      f"{a['wer']:.3f} / {a['spk_sim']:.3f} | {yes(a['wer'] <= 0.10)} / {yes(a['spk_sim'] >= 0.75)} |"]
    return "\n".join(lines)


def _cer(v: dict, s: str) -> str:
    """A system's corpus CER, with the median sentence's where the run recorded it."""
    med = v.get("cer_median")
    return f"{v['cer'][s]:.3f} / {med[s]:.3f}" if med else f"{v['cer'][s]:.3f}"


def tts_lang_cer(r: dict) -> str:
    threads = "one thread" if r["threads"] == 1 else f"{r['threads']} threads"
    m = r["models"]
    lms = [s for s in ("lm_default", "lm_previous") if s in m]
    ours = "ours" in m
    names = {"lm_default": "`lm_default` (codec LM)", "lm_previous": "previous LM"}
    med = any("cer_median" in v for v in r["rows"].values())
    lines = [f"Whisper-base CER (the language given to the judge{'; corpus / median sentence' if med else ''}), "
             f"held-out asterisk-core-sounds sentences, {threads}" + (f"; ours = `{m['ours']}`" if ours else "")
             + "".join(f", {s} = `{m[s]}`" for s in lms), "",
             "| language | sentences | recordings | espeak-ng | " + ("ours | ours RTF | " if ours else "")
             + "".join(f"{names[s]} | {names[s]} RTF | " for s in lms) + "`tts_duration` (English default) |",
             "|---|---|---|---|" + ("---|---|" if ours else "") + "---|---|" * len(lms) + "---|"]
    for lang, v in r["rows"].items():
        default = "refused (English only)" if v["tts_duration"].startswith("this TTS model speaks") else \
            v["tts_duration"]
        cells = [lang, str(v["n"]), _cer(v, "ground_truth"), _cer(v, "espeak_ng")]
        for s in (["ours"] if ours else []) + lms:
            cells += [_cer(v, s), f"{v['rtf'][s]:.2f}"]
        lines.append("| " + " | ".join([*cells, default]) + " |")
    if r.get("free"):
        lines += ["", "Free text: sentences from the offline pool that no training transcript contains (no "
                  "recordings exist; espeak-ng beside ours)", "",
                  "| language | sentences | espeak-ng | ours | ours RTF |", "|---|---|---|---|---|"]
        for lang, v in r["free"].items():
            lines.append(f"| {lang} | {v['n']} | {_cer(v, 'espeak_ng')} | {_cer(v, 'ours')} | {v['rtf']['ours']:.2f} |")
    return "\n".join(lines)


def bridge_compare(r: dict) -> str:
    fmt = lambda v: "–" if v is None else f"{v:.3f}"  # noqa: E731
    lines = [f"{r['n']} held-out utterances (`{r['manifest']}`, test split: voices never trained on), each "
             f"prompted with another utterance of its voice; the source recordings: voiced frames "
             f"{r['source_voiced']:.3f}, Whisper-base CER {r['source_whisper_cer']:.3f}", "",
             "| bridge | model | units | codec | voiced frames | speaker similarity | DNSMOS OVRL / SIG / P.808 "
             "| CTC CER | Whisper-base CER |", "|---|---|---|---|---|---|---|---|---|"]
    for name, b in r["bridges"].items():
        lines.append(f"| {name} | `{b['bridge']}` | `{b['units']}` | `{b['codec']}` | {b['voiced']:.3f} | "
                     f"{fmt(b['spk_sim'])} | "
                     f"{fmt(b['dnsmos_ovrl'])} / {fmt(b['dnsmos_sig'])} / {fmt(b['dnsmos_p808'])} | {fmt(b['cer'])} "
                     f"| {b['whisper_cer']:.3f} |")
    return "\n".join(lines)


def edit_eval(r: dict) -> str:
    lines = [
        f"{r['n']} edits of held-out recordings ({len(r['failed'])} refused), one word replaced each "
        f"({r.get('edits', 'random')} substitutions), judge {r['judge']}, model `{r['model']}`", "", "| | value |",
        "|---|---|",
        f"| WER of the edited audio against the target text | {r['wer_edited']:.3f} |"]
    if "wer_piper_target" in r:
        lines.append(f"| WER of Piper reading the target sentences whole (anchor) | {r['wer_piper_target']:.3f} |")
    lines.append(f"| WER of the unedited recordings against their transcripts | {r['wer_original']:.3f} |")
    if "new_word_heard" in r:
        lines.append(f"| new word heard in the edited audio | {r['new_word_heard']:.2f} |")
    if "new_word_heard_piper" in r:
        lines.append(f"| new word heard, Piper reading the target whole (anchor) | {r['new_word_heard_piper']:.2f} |")
    lines.append(f"| correlation with the original outside the edits (min / median) | {r['corr_outside_min']:.4f} / "
                 f"{r['corr_outside_median']:.4f} |")
    if r.get("pitch_step_median") is not None:
        lines.append(f"| pitch step across a cut: median / mean log-F0 change (160 ms each side, "
                     f"{r['pitch_step_cuts']} cuts) | {r['pitch_step_median']:.3f} / {r['pitch_step_mean']:.3f} |")
    if r.get("regenerated_mean") is not None:
        lines.append(f"| share of the edited audio regenerated (mean / median) | {r['regenerated_mean']:.2f} / "
                     f"{r['regenerated_median']:.2f} |")
    return "\n".join(lines)


def serve_bench(r: dict) -> str:
    lines = [f"`speechlm serve --workers {r['workers']} --queue {r['queue']} --threads {r['threads']}`; "
             f"{r['n']} one-sentence streamed requests one at a time: first audio byte p50 "
             f"{r['first_byte_ms']['p50']:.0f} ms, p95 {r['first_byte_ms']['p95']:.0f} ms; real-time factor "
             f"{r['rtf_median']:.3f}", "",
             "| load | requests | answered | answered 429 | 5xx | p50 latency s | p95 latency s | requests/s | "
             "audio s per s |", "|---|---|---|---|---|---|---|---|---|"]
    lines += [f"| {x['x_capacity']}x capacity | {x['requests']} | {x['ok']} | {x['share_429']:.0%} | {x['n_5xx']} | "
              f"{x['p50_s']:.2f} | {x['p95_s']:.2f} | {x['throughput_rps']:.2f} | {x['audio_s_per_s']:.1f} |"
              for x in r["load"]]
    if "soak" in r:
        s = r["soak"]
        lines += ["", f"Soak: {s['requests']} requests in {s['minutes']:g} min at capacity; resident memory "
                  f"{s['before']['rss_mb']:.0f} -> {s['after']['rss_mb']:.0f} MB, open file descriptors "
                  f"{s['before']['fds']} -> {s['after']['fds']}."]
    return "\n".join(lines)


def detect_bench(r: dict) -> str:
    from detect_bench import to_markdown  # benchmarks/ is this script's folder

    return to_markdown(r)


def pipeline_bench(r: dict) -> str:
    from pipeline_bench import render as render_pipeline  # benchmarks/ is this script's folder

    return render_pipeline(r)


def watermark_bench(r: dict) -> str:
    from watermark_bench import to_markdown  # benchmarks/ is this script's folder

    return to_markdown(r)


def tts_text_patterns(r: dict) -> str:
    from tts_text_patterns import to_markdown

    return to_markdown(r)


def watermark_regions(r: dict) -> str:
    from watermark_regions import to_markdown

    return to_markdown(r)


def tts_style_eval(r: dict) -> str:
    from tts_style_eval import to_markdown

    return to_markdown(r)


def vc_eval(r: dict) -> str:
    from vc_eval import to_markdown

    return to_markdown(r)


def pipeline_models(r: dict) -> str:
    from pipeline_models_bench import to_markdown  # benchmarks/ is this script's folder

    return to_markdown(r)


RENDERERS = {"serve_bench": serve_bench, "tts_eval": tts_eval, "edit_eval": edit_eval, "codec_bench": codec_bench,
             "codec_intel": codec_intel, "sf_refiner_ab": sf_refiner_ab, "token_packing": token_packing,
             "sf_streaming": sf_streaming, "detect_bench": detect_bench, "pipeline_bench": pipeline_bench,
             "watermark_bench": watermark_bench, "tts_lang_cer": tts_lang_cer, "bridge_compare": bridge_compare}
RENDERERS["pipeline_models"] = pipeline_models
RENDERERS["watermark_regions"] = watermark_regions
RENDERERS["tts_text_patterns"] = tts_text_patterns
RENDERERS["tts_style_eval"] = tts_style_eval
RENDERERS["vc_eval"] = vc_eval


def render(name: str) -> str:
    data = json.loads((RESULTS / f"{name}.json").read_text())
    kind = data.get("kind") or name.split("__")[0]
    body = RENDERERS[kind](data)
    cmd = data.get("command")
    return body + (f"\n\n`{cmd}`" if cmd else "") + "\n"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--check", action="store_true")
    args = p.parse_args()
    stale = []
    for doc in sorted((ROOT / "docs").rglob("*.md")):
        text = doc.read_text()
        new = MARK.sub(lambda m: m.group(1) + render(m.group("name")) + m.group(4), text)
        if new != text:
            stale.append(doc.relative_to(ROOT))
            if not args.check:
                doc.write_text(new)
    for d in stale:
        print(("out of date: " if args.check else "rendered: ") + str(d))
    # the model cards: docs/models.md and the README's models table (benchmarks/render_cards.py)
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from render_cards import update as update_cards

    cards = update_cards(args.check)
    for m in cards:
        print(m)
    # a wrong or missing card is tests/test_model_cards.py's failure; here only docs that differ from the cards fail
    bad = [m for m in cards if m.startswith("out of date")]
    return 1 if (args.check and stale) or bad else 0


if __name__ == "__main__":
    sys.exit(main())
