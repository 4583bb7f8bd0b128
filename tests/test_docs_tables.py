"""The result tables in docs/ are rendered from the benchmark JSON in docs/results/ (benchmarks/render_tables.py):
a hand-edited number, or a JSON updated without re-rendering, fails here."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_docs_tables_match_results():
    r = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "render_tables.py"), "--check"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


def test_every_marked_table_has_results():
    import re

    names = {m for doc in (ROOT / "docs").rglob("*.md")
             for m in re.findall(r"<!-- table: ([\w.-]+) -->", doc.read_text())}
    assert names, "no rendered tables found"
    missing = [n for n in names if not (ROOT / "docs" / "results" / f"{n}.json").is_file()]
    assert not missing, missing
