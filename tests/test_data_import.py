"""`speechlm data import`: readers, validation, Lhotse recipes on fake corpus trees, CutSet round trip."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from conftest import require_path

from speechlm.cli import main
from speechlm.data.manifest import Utterance, read_manifest
from speechlm.data.readers import (
    EMPTY_TRANSCRIPT,
    NO_TRANSCRIPT,
    TOO_LONG,
    TOO_SHORT,
    UNREADABLE_AUDIO,
    ImportOptions,
    ValidationLimits,
    read_candidates,
    validate_candidates,
)

needs_lhotse = pytest.mark.needs_module("lhotse")

SR = 16000


def _wav(path: Path, seconds: float = 0.5, sr: int = SR, freq: float = 220.0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(seconds * sr)) / sr
    sf.write(str(path), 0.3 * np.sin(2 * np.pi * freq * t), sr, subtype="PCM_16")
    return path


def _import(tmp_path: Path, *args: str, out: str = "out/manifest.jsonl") -> tuple[int, Path]:
    out_path = tmp_path / out
    rc = main(["data", "import", "--out", str(out_path), "-q", *args])
    return rc, out_path


def _skipped(manifest: Path) -> dict[str, str]:
    lines = manifest.with_name(manifest.name + ".skipped.jsonl").read_text().splitlines()
    return {d["id"]: d["reason"] for d in map(json.loads, lines)}


# ---------------------------------------------------------------------------------------------- folder


def test_folder_import_skips_with_reasons(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "corpus"
    _wav(src / "alice" / "a1.wav", 0.6)
    (src / "alice" / "a1.txt").write_text("Hello  there.\n")
    _wav(src / "bob" / "b1.flac", 0.8)  # flac with a .lab transcript
    (src / "bob" / "b1.lab").write_text("general kenobi")
    (src / "bob" / "b2.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunkjunkjunk" * 4)  # corrupt
    (src / "bob" / "b2.txt").write_text("corrupt audio")
    _wav(src / "bob" / "b3.wav", 0.5)
    (src / "bob" / "b3.txt").write_text("   \n")  # empty transcript
    _wav(src / "bob" / "b4.wav", 0.5)  # no transcript file
    _wav(src / "bob" / "b5.wav", 0.1)
    (src / "bob" / "b5.txt").write_text("too short")
    _wav(src / "bob" / "b6.wav", 2.0)
    (src / "bob" / "b6.txt").write_text("too long")
    _wav(src / "bob" / "b7.wav", 0.5)
    (src / "bob" / "b7.txt").write_text("a transcript far too long to be spoken in half a second")
    _wav(src / "carol" / "c1.wav", 0.5, sr=4000)
    (src / "carol" / "c1.txt").write_text("sample rate too low")

    rc, out = _import(
        tmp_path,
        "--format",
        "folder",
        "--src",
        str(src),
        "--lang",
        "en",
        "--speaker-from-dir",
        "--max-duration",
        "1.5",
    )
    assert rc == 0
    utts = {u.id: u for u in read_manifest(out)}
    assert set(utts) == {"alice_a1", "bob_b1"}
    a1 = utts["alice_a1"]
    assert a1.text == "Hello there." and a1.speaker == "alice" and a1.lang == "en" and a1.split == "train"
    assert a1.duration == pytest.approx(0.6, abs=1e-3)
    assert a1.audio_path(out.parent).resolve() == (src / "alice" / "a1.wav").resolve()
    assert utts["bob_b1"].speaker == "bob" and utts["bob_b1"].text == "general kenobi"
    assert _skipped(out) == {
        "bob_b2": UNREADABLE_AUDIO,
        "bob_b3": EMPTY_TRANSCRIPT,
        "bob_b4": NO_TRANSCRIPT,
        "bob_b5": TOO_SHORT,
        "bob_b6": TOO_LONG,
        "bob_b7": "transcript too long for the audio",
        "carol_c1": "sample rate out of range",
    }
    summary = capsys.readouterr().out
    assert "imported 2" in summary and "skipped 7" in summary and "unreadable audio (1)" in summary


def test_folder_copy_audio_and_relative_paths(tmp_path: Path) -> None:
    src = tmp_path / "c"
    _wav(src / "x.wav")
    (src / "x.txt").write_text("copied")
    rc, out = _import(
        tmp_path,
        "--format",
        "folder",
        "--src",
        str(src),
        "--copy-audio-to",
        str(tmp_path / "out" / "wavs"),
        "--speaker",
        "spk",
    )
    assert rc == 0
    (u,) = read_manifest(out)
    assert u.audio == "wavs/x.wav" and u.speaker == "spk"  # under the manifest folder -> relative
    assert sf.info(str(out.parent / u.audio)).frames == SR // 2


def test_nothing_imported_is_an_error_and_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    src = tmp_path / "c"
    _wav(src / "x.wav")
    rc, out = _import(tmp_path, "--format", "folder", "--src", str(src))
    assert rc == 2
    assert "nothing imported" in capsys.readouterr().err
    assert not out.exists() and not out.with_name(out.name + ".skipped.jsonl").exists()


def test_duplicate_ids_and_limits_validation(tmp_path: Path) -> None:
    from speechlm.data.readers import Candidate

    a = _wav(tmp_path / "a.wav")
    c = Candidate("same", a, "t", "en", "s")
    res = validate_candidates([c, c], tmp_path)
    assert len(res.utterances) == 1 and res.skipped[0].reason == "duplicate id"
    with pytest.raises(Exception, match="min duration"):
        ValidationLimits(min_duration=5, max_duration=1)


# -------------------------------------------------------------------------------------- lhotse recipes


@needs_lhotse
def test_ljspeech_recipe(tmp_path: Path) -> None:
    src = tmp_path / "LJSpeech-1.1"
    rows = []
    for i in range(3):
        uid = f"LJ001-000{i}"
        _wav(src / "wavs" / f"{uid}.wav", 0.5 + 0.1 * i)
        rows.append(f"{uid}|Printing, {i}.|Printing, number {i}.")
    (src / "metadata.csv").write_text("\n".join(rows) + "\n")
    rc, out = _import(tmp_path, "--format", "ljspeech", "--src", str(src))
    assert rc == 0
    utts = sorted(read_manifest(out), key=lambda u: u.id)
    assert [u.id for u in utts] == ["LJ001-0000", "LJ001-0001", "LJ001-0002"]
    assert utts[1].text == "Printing, 1." and utts[1].lang == "en" and utts[1].speaker == "LJ"
    assert utts[2].duration == pytest.approx(0.7, abs=1e-3)
    assert utts[0].tags["source"] == "ljspeech" and utts[0].tags["gender"] == "female"


def _libritts_part(root: Path, part: str, spk: str, book: str, n: int) -> None:
    d = root / part / spk / book
    trans, books = [], []
    for i in range(n):
        rid = f"{spk}_{book}_00000{i}_000000"
        _wav(d / f"{rid}.wav", 1.0, sr=24000)
        trans.append(f"{rid}\tOriginal {i}.\tnormalised text {i}")
        books.append(f"{rid}\tOriginal {i}.\tnormalised text {i}\t0\t0\t{20 + i}.5")
    (d / f"{spk}_{book}.trans.tsv").write_text("\n".join(trans) + "\n")
    (d / f"{spk}_{book}.book.tsv").write_text("\n".join(books) + "\n")


@needs_lhotse
def test_libritts_recipe_parts_to_splits(tmp_path: Path) -> None:
    src = tmp_path / "LibriTTS"
    _libritts_part(src, "train-clean-100", "19", "198", 2)
    _libritts_part(src, "dev-clean", "84", "121123", 2)
    _libritts_part(src, "test-clean", "1089", "134686", 1)
    (src / "SPEAKERS.txt").write_text(
        ";ID|SEX|SUBSET|MINUTES|NAME\n19|F|train-clean-100|25|X\n84|F|dev-clean|8|Y\n1089|M|test-clean|10|Z\n"
    )
    rc, out = _import(tmp_path, "--format", "libritts", "--src", str(src))
    assert rc == 0
    utts = read_manifest(out)
    assert len(utts) == 5
    by_split = {s: {u.speaker for u in utts if u.split == s} for s in ("train", "valid", "test")}
    assert by_split == {"train": {"19"}, "valid": {"84"}, "test": {"1089"}}
    u = next(u for u in utts if u.id == "19_198_000001_000000")
    assert u.text == "normalised text 1" and u.tags["gender"] == "F" and u.tags["snr"] == 21.5
    rc, out2 = _import(
        tmp_path, "--format", "libritts", "--src", str(src), "--split", "train", out="o2/m.jsonl"
    )
    assert rc == 0 and {u.split for u in read_manifest(out2)} == {"train"}


@needs_lhotse
def test_vctk_recipe(tmp_path: Path) -> None:
    src = tmp_path / "VCTK-Corpus"
    (src).mkdir()
    (src / "speaker-info.txt").write_text(
        "ID  AGE  GENDER  ACCENTS  REGION\n225  23  F    English    Southern  "
        "England\n226  22  M    English    Surrey\n"
    )
    for spk in ("p225", "p226"):
        for i in (1, 2):
            _wav(src / "wav48" / spk / f"{spk}_00{i}.wav", 1.5, sr=48000)
            (src / "txt" / spk).mkdir(parents=True, exist_ok=True)
            (src / "txt" / spk / f"{spk}_00{i}.txt").write_text(f"Please call Stella {spk} {i}.\n")
    _wav(
        src / "wav48" / "p226" / "p226_003.wav", 0.5, sr=48000
    )  # no transcript: lhotse drops it, we report it
    rc, out = _import(tmp_path, "--format", "vctk", "--src", str(src))
    assert rc == 0
    utts = {u.id: u for u in read_manifest(out)}
    assert set(utts) == {"p225_001", "p225_002", "p226_001", "p226_002"}
    assert utts["p226_002"].speaker == "p226" and utts["p226_002"].text == "Please call Stella p226 2."
    assert utts["p225_001"].tags["accent"] == "English" and utts["p225_001"].lang == "en"
    assert _skipped(out) == {"wav48_p226_p226_003": "no transcript (dropped by the Lhotse recipe)"}


@needs_lhotse
def test_emilia_recipe(tmp_path: Path) -> None:
    src = tmp_path / "Emilia"
    data = src / "raw" / "DE"
    rows = []
    for i in range(2):
        rel = f"DE_B00000/DE_B00000_S00000/mp3/DE_B00000_S00000_W00000{i}.wav"
        _wav(data / rel, 0.5)
        rows.append(
            {
                "id": f"DE_B00000_S00000_W00000{i}",
                "wav": rel,
                "text": f" Und es gibt {i}.",
                "duration": 0.5,
                "speaker": "DE_B00000_S00000",
                "language": "de",
                "dnsmos": 3.3,
            }
        )
    (data / "DE_B00000.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    rc, out = _import(tmp_path, "--format", "emilia", "--src", str(src), "--lang", "de")
    assert rc == 0
    utts = sorted(read_manifest(out), key=lambda u: u.id)
    assert [u.text for u in utts] == ["Und es gibt 0.", "Und es gibt 1."]
    assert {u.speaker for u in utts} == {"DE_B00000_S00000"} and utts[0].tags["dnsmos"] == 3.3
    assert (
        main(
            [
                "data",
                "import",
                "--format",
                "emilia",
                "--src",
                str(src),
                "--out",
                str(tmp_path / "x.jsonl"),
                "-q",
            ]
        )
        == 2
    )  # --lang missing


@needs_lhotse
def test_recipe_on_wrong_folder_is_one_line_error(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    (tmp_path / "empty").mkdir()
    rc, _ = _import(tmp_path, "--format", "ljspeech", "--src", str(tmp_path / "empty"))
    assert rc == 2 and "prepare_ljspeech" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------- CutSet


def test_missing_lhotse_is_a_one_line_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    monkeypatch.setitem(sys.modules, "lhotse", None)  # `import lhotse` now raises ImportError
    (tmp_path / "lj").mkdir()
    rc, _ = _import(tmp_path, "--format", "ljspeech", "--src", str(tmp_path / "lj"))
    err = capsys.readouterr().err
    assert rc == 2 and "pip install" in err and "lhotse" in err and "Traceback" not in err


@needs_lhotse
def test_cutset_round_trip_and_lhotse_format(tmp_path: Path) -> None:
    from speechlm.data.lhotse_io import from_cutset, to_cutset

    root = tmp_path / "m"
    _wav(root / "wavs" / "a.wav", 0.5)
    _wav(root / "wavs" / "b.wav", 1.25, sr=22050)
    utts = [
        Utterance(
            "a", "wavs/a.wav", "one", "en", "s1", 0.5, "train", phonemes="w ʌ n", tags={"emotion": "happy"}
        ),
        Utterance("b", "wavs/b.wav", "zwei", "de", "s2", 1.25, "valid"),
    ]
    cuts = to_cutset(utts, root)
    assert len(cuts) == 2 and cuts["b"].sampling_rate == 22050
    assert from_cutset(cuts, root) == utts

    # Through a file and the CLI's `lhotse` format.
    cuts.to_file(tmp_path / "cuts.jsonl.gz")
    rc, out = _import(
        tmp_path, "--format", "lhotse", "--src", str(tmp_path / "cuts.jsonl.gz"), out="m/imported.jsonl"
    )
    assert rc == 0 and read_manifest(out) == utts

    # A cut that is part of a recording: refused without somewhere to cut it out to.
    part = cuts["b"].truncate(offset=0.25, duration=0.5)
    with pytest.raises(Exception, match="segment of a longer recording"):
        from_cutset([part], root)
    (u,) = from_cutset([part], root, audio_dir=root / "cut")
    assert u.audio == "cut/b.wav" and sf.info(str(root / u.audio)).frames == int(0.5 * 22050)
    assert u.duration == pytest.approx(0.5)


# -------------------------------------------------------------------------------------- Debian readers


def test_fillets_reader_on_fake_tree(tmp_path: Path) -> None:
    from speechlm.data.debian_speech import parse_fillets_dialogs

    lua = (
        'dialogId("let-m-a", "font_small", "What?")\ndialogStr("Co je \\"to\\"?")\n\n'
        'dialogId("let-v-b",\n "font_big", "Long")\ndialogStr("Dlouhá " .. "věta.")\n'
        'dialogId("let-x-c", "font_white", "No translation")\n'
        'dialogId("let-2-d", "font_both", "Both")\ndialogStr("Oba.")\n'
    )
    assert parse_fillets_dialogs(lua) == [
        ("let-m-a", "font_small", 'Co je "to"?'),
        ("let-v-b", "font_big", "Dlouhá věta."),
        ("let-x-c", "font_white", ""),
        ("let-2-d", "font_both", "Oba."),
    ]
    src = tmp_path / "fillets-ng"
    (src / "script" / "airplane").mkdir(parents=True)
    (src / "script" / "airplane" / "dialogs_cs.lua").write_text(lua)
    for did in ("let-m-a", "let-v-b", "let-x-c", "let-2-d", "let-m-extra"):
        sf.write(str(_ogg_path(src, did)), np.zeros(int(0.5 * 22050)) + 0.01, 22050, format="OGG")
    cands = list(read_candidates("fillets", ImportOptions(src=src, lang="cs")))
    res = validate_candidates(cands, tmp_path)
    kept = {u.id: u for u in res.utterances}
    assert set(kept) == {"fillets_cs_airplane_let-m-a", "fillets_cs_airplane_let-v-b"}
    assert kept["fillets_cs_airplane_let-m-a"].speaker == "fillets_cs_small_fish"
    assert kept["fillets_cs_airplane_let-v-b"].text == "Dlouhá věta."
    assert {s.id.rsplit("_", 1)[1]: s.reason for s in res.skipped} == {
        "let-x-c": EMPTY_TRANSCRIPT,
        "let-2-d": "several speakers",
        "let-m-extra": NO_TRANSCRIPT,
    }


def _ogg_path(src: Path, did: str) -> Path:
    d = src / "sound" / "airplane" / "cs"
    d.mkdir(parents=True, exist_ok=True)
    return d / f"{did}.ogg"


def test_heldout_readers_force_test_split(tmp_path: Path) -> None:
    # pocketsphinx-testdata layout: cards/*.wav + cards.transcription, goforward.raw (16 kHz s16le).
    ps = tmp_path / "ps"
    _wav(ps / "cards" / "001.wav", 1.0)
    _wav(ps / "cards" / "002.wav", 1.0)
    (ps / "cards" / "cards.transcription").write_text("<s> ten of clubs </s> (001)\n")
    (ps / "goforward.raw").write_bytes((np.sin(np.arange(16000) / 5) * 3000).astype("<i2").tobytes())
    rc, out = _import(tmp_path, "--format", "pocketsphinx-testdata", "--src", str(ps))
    assert rc == 0
    utts = {u.id: u for u in read_manifest(out)}
    assert set(utts) == {"pocketsphinx_cards_001", "pocketsphinx_goforward"}
    assert all(
        u.split == "test" and u.tags["heldout"] is True and u.tags["source"] == "pocketsphinx-testdata"
        for u in utts.values()
    )
    assert utts["pocketsphinx_cards_001"].text == "ten of clubs"
    g = utts["pocketsphinx_goforward"]  # raw PCM converted to a WAV beside the manifest
    assert g.audio == "audio/pocketsphinx_goforward.wav" and g.duration == pytest.approx(1.0)
    assert _skipped(out) == {"pocketsphinx_cards_002": NO_TRANSCRIPT}
    # A held-out corpus cannot be relabelled as training data.
    assert (
        _import(
            tmp_path,
            "--format",
            "pocketsphinx-testdata",
            "--src",
            str(ps),
            "--split",
            "train",
            out="o2/m.jsonl",
        )[0]
        == 2
    )

    # asterisk-core: <voice dir>/*.wav + core-sounds-en.txt; bracketed entries are non-speech.
    ast = tmp_path / "sounds"
    _wav(ast / "en_US_f_Allison" / "auth-thankyou.wav", 0.8, sr=8000)
    _wav(ast / "en_US_f_Allison" / "digits" / "1.wav", 0.5, sr=8000)
    _wav(ast / "en_US_f_Allison" / "beep.wav", 0.5, sr=8000)
    (tmp_path / "tx").mkdir()
    (tmp_path / "tx" / "core-sounds-en.txt").write_text(
        "; header\nauth-thankyou: Thank you.\ndigits/1: one\nbeep: [this is a simple beep tone]\n"
    )
    rc, out = _import(
        tmp_path,
        "--format",
        "asterisk-core",
        "--src",
        str(ast),
        "--transcripts",
        str(tmp_path / "tx"),
        out="ast/m.jsonl",
    )
    assert rc == 0
    utts = {u.id: u for u in read_manifest(out)}
    assert {u.text for u in utts.values()} == {"Thank you.", "one"}
    assert all(u.split == "test" and u.tags["heldout"] is True for u in utts.values())
    assert list(_skipped(out).values()) == ["non-speech entry"]


def test_codec2_examples_installed(tmp_path: Path) -> None:
    require_path("/usr/share/codec2/wav", "Debian codec2-examples")
    rc, out = _import(tmp_path, "--format", "codec2-examples")
    assert rc == 0
    utts = read_manifest(out)
    assert len(utts) >= 10 and all(u.split == "test" and u.tags["heldout"] for u in utts)
