"""``speechlm data stats``: counts, split overlap check, histogram text and PNG."""

from __future__ import annotations

from pathlib import Path

import pytest

from speechlm.cli import main
from speechlm.data.manifest import Utterance, write_manifest
from speechlm.data.stats import compute_stats, format_stats
from speechlm.errors import ManifestError


def _manifest(path: Path, overlap: bool = False) -> Path:
    utts = []
    for i in range(30):
        split = "train" if i < 20 else "valid" if i < 25 else "test"
        spk = f"spk{i // 5}" if not (overlap and i == 29) else "spk0"
        utts.append(
            Utterance(
                f"u{i}",
                f"wavs/u{i}.wav",
                "Some words here.",
                "en" if i % 3 else "de",
                spk,
                1.0 + i * 0.5,
                split,
                tags={
                    "engine": "espeak-ng",
                    "voice": f"v{i // 10}",
                    "augment": {"gain_db": -3} if i % 4 == 0 else {},
                },
            )
        )
    write_manifest(path, utts)
    return path


def test_counts(tmp_path):
    st = compute_stats(_manifest(tmp_path / "m.jsonl"))
    assert st.utterances == 30
    assert st.seconds == pytest.approx(sum(1.0 + i * 0.5 for i in range(30)))
    assert st.speakers == 6 and st.voices == 3
    assert st.speakers_by_split == {"train": 4, "valid": 1, "test": 1}
    assert st.overlap_total == 0
    assert st.augmented == 8
    assert set(st.seconds_by_lang) == {"en", "de"}
    assert sum(c for _, _, c in st.histogram()) == 30
    text = format_stats(st)
    assert (
        f"hours: {247.5 / 3600:.3f}" in text
        and "speaker overlap train/test: 0" in text
        and "speakers: 6" in text
    )


def test_cli_writes_png_and_checks_splits(tmp_path, capsys):
    m = _manifest(tmp_path / "m.jsonl")
    png = tmp_path / "h.png"
    assert main(["data", "stats", str(m), "--plot", str(png), "--check-splits"]) == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "speaker overlap train/valid: 0" in capsys.readouterr().out
    bad = _manifest(tmp_path / "bad.jsonl", overlap=True)
    assert main(["data", "stats", str(bad), "--no-plot", "--check-splits"]) == 3
    assert "speaker overlap train/test: 1" in capsys.readouterr().out
    assert main(["data", "stats", str(m)]) == 0
    assert (tmp_path / "m.durations.png").is_file()


def test_empty_or_missing_manifest(tmp_path, capsys):
    (tmp_path / "e.jsonl").write_text("")
    with pytest.raises(ManifestError):
        compute_stats(tmp_path / "e.jsonl")
    assert main(["data", "stats", str(tmp_path / "nope.jsonl")]) == 2
    assert "does not exist" in capsys.readouterr().err
