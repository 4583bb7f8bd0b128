"""Evaluation drivers, reports (JSON / Markdown / HTML rendered in headless Chromium) and the CLI."""

from __future__ import annotations

import json
import re
import shutil
import subprocess

import numpy as np
import pytest
import soundfile as sf
from conftest import require_module, require_tool

from speechlm.cli import main
from speechlm.data.manifest import Utterance, write_manifest
from speechlm.eval.pairs import evaluate_codec, evaluate_codec_fn, evaluate_pairs
from speechlm.eval.report import Report, UtteranceResult, summarize

SR = 16000


def _signal(seed: int, seconds: float = 1.5) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    f0 = 110 + 40 * seed
    x = sum(np.sin(2 * np.pi * k * f0 * t) / k for k in range(1, 12)) * (
        0.5 + 0.5 * np.sin(2 * np.pi * 2 * t)
    )
    return (0.1 * x + 0.002 * rng.standard_normal(t.size)).astype(np.float32)


@pytest.fixture()
def pair_files(tmp_path):
    ref_dir, deg_dir = tmp_path / "ref", tmp_path / "deg"
    ref_dir.mkdir()
    deg_dir.mkdir()
    rng = np.random.default_rng(0)
    for i in range(3):
        x = _signal(i)
        sf.write(ref_dir / f"u{i}.wav", x, SR)
        y = x + 0.01 * rng.standard_normal(x.size).astype(np.float32)
        sf.write(deg_dir / f"u{i}.wav", y[:-40], SR)  # a little shorter, as codecs do
    return ref_dir, deg_dir


def test_evaluate_pairs_and_report_files(pair_files, tmp_path):
    ref_dir, deg_dir = pair_files
    refs = sorted(str(p) for p in ref_dir.iterdir())
    degs = sorted(str(p) for p in deg_dir.iterdir())
    rep = evaluate_pairs(refs, degs, groups=("signal", "cepstral"))
    assert rep.metric_keys()[:4] == ["pesq", "stoi", "si_sdr", "mel_dist"]
    for r in rep.summary:
        assert r.n == 3
        assert r.low <= r.value <= r.high or np.isnan(r.value)
    assert 10 < rep.metric("si_sdr").value < 40
    out = tmp_path / "out"
    written = rep.write(out, max_media=2)
    data = json.loads(written["json"].read_text())
    assert [u["id"] for u in data["utterances"]] == ["u0", "u1", "u2"]
    assert data["summary"][0]["key"] == "pesq"
    md = written["md"].read_text()
    assert "| PESQ" in md and "| u2 |" in md
    page = written["html"].read_text()
    assert page.count("<audio controls") == 4  # 2 utterances x (reference, degraded): capped by max_media
    assert page.count("data:image/png;base64,") == 2
    assert "http://" not in page and "https://" not in page  # self-contained


def test_identical_arrays_give_capped_si_sdr():
    x = [_signal(0), _signal(1)]
    rep = evaluate_pairs(x, [a.copy() for a in x], groups=("signal",))
    assert rep.metric("si_sdr").value == 100.0
    assert rep.metric("mel_dist").value == pytest.approx(0.0, abs=1e-6)
    codec = evaluate_codec_fn(x, lambda w, sr: 0.5 * w, SR, groups=("signal",))
    assert codec.metric("si_sdr").value == 100.0 and codec.kind == "codec"


def test_evaluate_codec_with_missing_file(pair_files, tmp_path):
    ref_dir, deg_dir = pair_files
    utts = [Utterance(f"u{i}", f"ref/u{i}.wav", "x", "en", "s", 1.5, "test") for i in range(3)]
    utts.append(Utterance("u9", "ref/u0.wav", "x", "en", "s", 1.5, "test"))
    write_manifest(tmp_path / "m.jsonl", utts)
    rep = evaluate_codec(tmp_path / "m.jsonl", deg_dir, groups=("signal",))
    assert rep.meta["missing"] == 1
    assert [it.id for it in rep.items if it.error] == ["u9"]
    assert rep.metric("stoi").n == 3


def test_summary_corpus_wer():
    items = [
        UtteranceResult("a", counts={"wer": (1, 1)}),
        UtteranceResult("b", counts={"wer": (0, 9)}),
        UtteranceResult("c", error="no generated file"),
    ]
    s = summarize(items)
    assert s[0].key == "wer" and s[0].kind == "corpus" and s[0].value == pytest.approx(0.1) and s[0].n == 2


def test_cli_pairs(pair_files, tmp_path, capsys):
    ref_dir, deg_dir = pair_files
    out = tmp_path / "r1"
    rc = main(
        [
            "eval",
            "pairs",
            str(ref_dir / "u0.wav"),
            str(deg_dir / "u0.wav"),
            "--out",
            str(out),
            "--skip",
            "speaker,mos",
            "-j",
            "1",
        ]
    )
    assert rc == 0
    assert {p.name for p in out.iterdir()} == {"report.json", "report.md", "report.html"}
    assert "si_sdr" in capsys.readouterr().out
    # two folders, matched by name
    rc = main(
        [
            "eval",
            "pairs",
            str(ref_dir),
            str(deg_dir),
            "--out",
            str(tmp_path / "r2"),
            "--skip",
            "speaker,mos,cepstral",
            "-j",
            "1",
        ]
    )
    assert rc == 0
    assert len(json.loads((tmp_path / "r2" / "report.json").read_text())["utterances"]) == 3
    # a list file
    lst = tmp_path / "pairs.tsv"
    lst.write_text(f"ref/u1.wav\tdeg/u1.wav\n# comment\n{ref_dir / 'u2.wav'} {deg_dir / 'u2.wav'}\n")
    assert (
        main(
            [
                "eval",
                "pairs",
                str(lst),
                "--out",
                str(tmp_path / "r3"),
                "--skip",
                "speaker,mos,cepstral",
                "-j",
                "1",
            ]
        )
        == 0
    )


def test_cli_bad_input_writes_nothing(tmp_path, capsys):
    out = tmp_path / "never"
    assert main(["eval", "pairs", str(tmp_path / "a.wav"), str(tmp_path / "b.wav"), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("speechlm: error:") and len(err.strip().splitlines()) == 1
    assert not out.exists()
    assert main(["eval", "pairs", str(tmp_path), str(tmp_path), "--skip", "nope", "--out", str(out)]) == 2
    assert not out.exists()


def test_cli_tts_with_pocketsphinx(tmp_path):
    require_module("pocketsphinx")
    require_tool("flite")
    texts = {
        "a1": "I went to my mother and told her the news.",
        "a2": "The boat sailed across the quiet lake.",
    }
    (tmp_path / "wav").mkdir()
    (tmp_path / "gen").mkdir()
    utts = []
    for uid, text in texts.items():
        subprocess.run(
            ["flite", "-voice", "slt", "-t", text, "-o", str(tmp_path / "wav" / f"{uid}.wav")], check=True
        )
        shutil.copy(tmp_path / "wav" / f"{uid}.wav", tmp_path / "gen" / f"{uid}.wav")
        utts.append(Utterance(uid, f"wav/{uid}.wav", text, "en", "slt", 2.0, "test"))
    utts.append(Utterance("a3", "wav/a1.wav", "never generated", "en", "slt", 2.0, "test"))
    write_manifest(tmp_path / "m.jsonl", utts)
    out = tmp_path / "rep"
    rc = main(
        [
            "eval",
            "tts",
            "-m",
            str(tmp_path / "m.jsonl"),
            "-g",
            str(tmp_path / "gen"),
            "--out",
            str(out),
            "--skip",
            "mos,speaker",
            "-j",
            "1",
            "--judge",
            "pocketsphinx",
        ]
    )
    assert rc == 0
    data = json.loads((out / "report.json").read_text())
    assert data["meta"]["missing"] == 1
    summary = {r["key"]: r for r in data["summary"]}
    assert summary["wer"]["value"] < 0.35 and summary["wer"]["n"] == 2
    assert summary["mcd"]["value"] == pytest.approx(0.0, abs=1e-6)  # generated == reference
    hyps = [u["hyp_text"] for u in data["utterances"] if u["hyp_text"]]
    assert len(hyps) == 2
    # a language pocketsphinx cannot judge: one-line error, nothing written
    bad = tmp_path / "bad"
    assert (
        main(
            [
                "eval",
                "tts",
                "-m",
                str(tmp_path / "m.jsonl"),
                "-g",
                str(tmp_path / "gen"),
                "--out",
                str(bad),
                "--lang",
                "en",
                "--asr",
                "whisper",
            ]
        )
        == 2
    )
    assert not bad.exists()


def test_html_report_renders_in_headless_chromium(pair_files, tmp_path):
    browser = require_tool("chromium", "chromium-browser", "google-chrome",
                           hint="apt-get install chromium; scripts/setup.sh --dev")
    ref_dir, deg_dir = pair_files
    refs = sorted(str(p) for p in ref_dir.iterdir())
    degs = sorted(str(p) for p in deg_dir.iterdir())
    rep = evaluate_pairs(refs, degs, groups=("signal",))
    items = rep.items + (UtteranceResult("failed<1>", error="no decoded file"),)
    rep = Report(rep.title, rep.kind, rep.summary, items, rep.meta)
    page = rep.write(tmp_path / "out")["html"]
    cmd = [
        browser,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        f"--user-data-dir={tmp_path / 'profile'}",
        "--dump-dom",
        page.as_uri(),
    ]
    dom = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=True).stdout
    assert '<table id="summary">' in dom
    summary_rows = re.findall(r'<tr data-metric="([a-z_0-9]+)"', dom)
    assert summary_rows == ["pesq", "stoi", "si_sdr", "mel_dist"]
    utt_rows = re.findall(r'<tr class="utt" data-id="([^"]+)"', dom)
    assert utt_rows == ["u0", "u1", "u2", "failed&lt;1&gt;"]
    players = re.findall(r'<audio controls="" preload="none" src="data:audio/(ogg|wav);base64,', dom)
    assert len(players) == 6
    assert len(re.findall(r'<img [^>]*src="data:image/png;base64,', dom)) == 3
