"""Fixtures shared by several test modules, and the one place that decides skip-or-fail on a missing requirement.

A test that needs a program (espeak-ng, flite, ffmpeg, chromium, ...), an optional package or a Debian data
folder says so with the ``needs_tool`` marker or the ``require_*`` helpers below. They skip when it is missing,
or fail when ``SPEECHLM_STRICT=1`` (as CI sets it), so an incomplete setup cannot pass by skipping tests.

    pytestmark = pytest.mark.needs_tool("espeak-ng")      # every test of the module (also: needs_module)
    from conftest import require_tool; require_tool("flite")  # inside a test or helper
"""

from __future__ import annotations

import importlib
import os
import shutil
from pathlib import Path
from types import ModuleType
from typing import NoReturn

import pytest
import torch

STRICT = os.environ.get("SPEECHLM_STRICT") == "1"


def missing(what: str) -> NoReturn:
    """Skip the test (or the whole module, at import time) because ``what`` is missing; fail under strict mode."""
    if STRICT:
        pytest.fail(f"{what} (SPEECHLM_STRICT=1: a missing requirement fails instead of skipping)", pytrace=False)
    pytest.skip(what, allow_module_level=True)


def require_tool(*names: str, hint: str = "scripts/setup.sh installs it") -> str:
    """The path of the first of ``names`` found on PATH (several names: any one will do); skip or fail if none."""
    for name in names:
        path = shutil.which(name)
        if path is not None:
            return path
    missing(f"{' or '.join(names)} is not installed ({hint})")


def require_module(name: str, hint: str = "scripts/setup.sh --dev installs it") -> ModuleType:
    """Import ``name`` (a third-party package); skip or fail if it is not installed."""
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name not in (name, name.split(".")[0]):
            raise  # the package is there but broken: that is an error, not a missing requirement
    missing(f"Python package {name} is not installed ({hint})")


def require_path(path: str | os.PathLike, what: str) -> Path:
    """``path`` (a folder or file a Debian package installs); skip or fail if it does not exist."""
    p = Path(path)
    if not p.exists():
        missing(f"{what} is not installed ({p} is missing)")
    return p


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "needs_tool(*names): needs one of these programs on PATH (skip, or fail "
                            "under SPEECHLM_STRICT=1)")
    config.addinivalue_line("markers", "needs_module(name): needs this Python package (skip, or fail under "
                            "SPEECHLM_STRICT=1)")


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    for mark in item.iter_markers("needs_tool"):
        require_tool(*mark.args)
    for mark in item.iter_markers("needs_module"):
        require_module(*mark.args)


@pytest.fixture(scope="module")
def one_thread():
    """Tiny models on a shared machine: extra torch threads only spin (25x slower under load); the recipes set
    one thread too, so restore the caller's setting afterwards. Use with ``pytest.mark.usefixtures("one_thread")``."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(autouse=True, scope="session")
def _private_config_dir(tmp_path_factory):
    """Tests sign with a key of their own (speechlm.safety.provenance), never the user's."""
    old = os.environ.get("SPEECHLM_CONFIG_DIR")
    os.environ["SPEECHLM_CONFIG_DIR"] = str(tmp_path_factory.mktemp("config"))
    yield
    if old is None:
        os.environ.pop("SPEECHLM_CONFIG_DIR", None)
    else:
        os.environ["SPEECHLM_CONFIG_DIR"] = old
