"""Server settings and limits (``speechlm serve --help`` documents each)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


def default_voices_dir() -> Path:
    import os

    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "speechlm" / "voices"


@dataclass
class ServeConfig:
    """What the app needs. ``workers``: syntheses run at once; ``queue``: requests that may wait for a worker
    (more are refused at once with 429); ``timeout_s``: per-request generation budget."""

    model: str | None = None
    api_key: str | None = None
    workers: int = 1
    queue: int = 4
    threads: int = 2
    max_chars: int = 4096
    max_body_bytes: int = 25 * 1024 * 1024
    max_upload_s: float = 300.0
    timeout_s: float = 120.0
    voices_dir: Path = field(default_factory=default_voices_dir)
    max_voices: int = 1000
    watermark: bool = True  # mark every response (speechlm.safety.watermark); off only for research
    sign: bool = True  # signed provenance manifest on whole (non-streamed) WAV responses
