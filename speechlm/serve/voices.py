"""The voices the server speaks with.

- ``default``: the model's own voice.
- Presets (``deep``, ``bright``, ``high``): the default voice moved by an F0 shift and a frequency warp of the
  envelope (:class:`~speechlm.lm.acoustic_api.VoiceShift`), which the source-filter codec makes explicit.
  OpenAI's voice names map onto these (:data:`OPENAI_VOICES`).
- Stored voices: a 1-20 s prompt uploaded by a client (``POST /v1/voices``), kept under a server-chosen id
  ``v_<16 hex>`` in ``voices_dir/<id>/`` (``voice.json`` with its statistics, ``prompt.wav``). Ids are checked
  against that pattern before any path is built, so a client can never name a path.
"""

from __future__ import annotations

import json
import math
import re
import secrets
import shutil
import time
from pathlib import Path

import numpy as np

from speechlm.lm.acoustic_api import VoiceShift, VoiceStats, warp_mcep

PRESETS: dict[str, tuple[float, float]] = {  # name -> (semitones, envelope warp)
    "default": (0.0, 1.0),
    "deep": (-4.0, 0.94),
    "bright": (4.0, 1.06),
    "high": (9.0, 1.14),
}
OPENAI_VOICES = {"alloy": "default", "ash": "default", "verse": "default", "echo": "deep", "onyx": "deep",
                 "fable": "bright", "sage": "bright", "ballad": "bright", "coral": "high", "nova": "high",
                 "shimmer": "high"}
ID_RE = re.compile(r"^v_[0-9a-f]{16}$")


def preset_shift(source: VoiceStats, name: str) -> VoiceShift | None:
    semis, warp = PRESETS[name]
    if semis == 0 and warp == 1.0:
        return None
    target = VoiceStats(source.lf0_mean + semis / 12 * math.log(2), source.lf0_std,
                        warp_mcep(source.mcep_mean[None], warp)[0])
    return VoiceShift(source, target, warp)


class VoiceStore:
    """Stored voices on disk (module docstring)."""

    def __init__(self, root: Path, max_voices: int = 1000) -> None:
        self.root = Path(root)
        self.max_voices = max_voices

    def _dir(self, voice_id: str) -> Path | None:
        return self.root / voice_id if ID_RE.match(voice_id or "") else None

    def list(self) -> list[dict]:
        if not self.root.is_dir():
            return []
        out = []
        for d in sorted(self.root.iterdir()):
            if ID_RE.match(d.name) and (d / "voice.json").is_file():
                info = json.loads((d / "voice.json").read_text())
                out.append({k: info[k] for k in ("id", "name", "transcript", "duration", "created_at")})
        return out

    def add(self, wav: np.ndarray, sr: int, shift: VoiceShift, name: str, transcript: str) -> dict:
        from speechlm.audio.io import save_audio

        if len(self.list()) >= self.max_voices:
            raise ValueError(f"the server keeps at most {self.max_voices} voices; delete one first")
        voice_id = "v_" + secrets.token_hex(8)
        d = self.root / voice_id
        tmp = self.root / f".{voice_id}.partial"
        tmp.mkdir(parents=True)
        save_audio(tmp / "prompt.wav", wav, sr)
        info = {"id": voice_id, "name": name, "transcript": transcript, "duration": round(len(wav) / sr, 3),
                "created_at": int(time.time()), "warp": shift.warp, "stats": shift.target.to_dict()}
        (tmp / "voice.json").write_text(json.dumps(info))
        tmp.rename(d)
        return {k: info[k] for k in ("id", "name", "transcript", "duration", "created_at")}

    def shift(self, voice_id: str, source: VoiceStats) -> VoiceShift | None:
        d = self._dir(voice_id)
        if d is None or not (d / "voice.json").is_file():
            return None
        info = json.loads((d / "voice.json").read_text())
        return VoiceShift(source, VoiceStats.from_dict(info["stats"]), float(info["warp"]))

    def delete(self, voice_id: str) -> bool:
        d = self._dir(voice_id)
        if d is None or not (d / "voice.json").is_file():
            return False
        shutil.rmtree(d)  # a folder this store created (id pattern checked, voice.json present)
        return True
