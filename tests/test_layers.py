"""The layering of ARCHITECTURE.md is a checked contract: ``lint-imports`` (import-linter) against the
``[tool.importlinter]`` contracts in pyproject.toml. A lower layer importing a higher one fails here."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

from conftest import require_module

ROOT = Path(__file__).resolve().parents[1]


def _layers() -> list[str]:
    cfg = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    (contract,) = [c for c in cfg["contracts"] if c["type"] == "layers"]
    return [m.strip() for layer in contract["layers"] for m in layer.split("|")]


def test_every_package_has_a_layer():
    """A new top-level package or module cannot escape the contract by not being named in it."""
    pkg = ROOT / "speechlm"
    found = {f"speechlm.{p.name}" for p in pkg.iterdir() if (p / "__init__.py").is_file()}
    found |= {f"speechlm.{p.stem}" for p in pkg.glob("*.py") if p.stem != "__init__"}
    assert found - set(_layers()) == set(), "name these in the layers contract of pyproject.toml"


def test_import_contracts_hold():
    require_module("importlinter")
    exe = Path(sys.executable).with_name("lint-imports")
    proc = subprocess.run([str(exe), "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert "0 broken" in proc.stdout
