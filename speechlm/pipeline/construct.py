"""Constructed in-the-wild test files with ground truth known by construction (issue 23's test set).

``build_constructed(out_dir, n_files, seed)`` writes, deterministically given the seed::

    OUT/<id>.wav                the mixture, 16 kHz mono PCM16
    OUT/stems/<id>.speech.wav   the clean speech stem (every speaker, as mixed, before degradations)
    OUT/stems/<id>.background.wav   the music/noise stem at its mixed level
    OUT/truth.json              ground truth of every file (see below)

Speech comes only from sources that may be trained on: the Debian synthesizers through
:mod:`speechlm.data.synth` (espeak-ng, flite, festival; Piper joe when installed), whose gender is known from the
voice inventory, and real fillets-ng dialog lines (the two fish, Czech and Dutch actors; gender ``"unknown"``).
The held-out recordings (asterisk-core-sounds, pocketsphinx-testdata, codec2-examples) are never read here.
Background: fillets-ng-data's music (``music/*.ogg``), its non-speech sound effects (bubbles, impacts) and
synthetic white/pink/babble-like noise (:func:`speechlm.audio.augment.make_noise`).

Each file is a conversation of 1-3 speakers taking turns: gaps of 0.2-1.2 s, ~15 % of turns overlapping the
previous one by 0.3-1.0 s, ~10 % followed by a long silence of 3-6 s. The background is mixed at an SNR drawn from
:data:`SNRS_DB` (speech power over the speech-active samples / background power); then ~20 % of files are
telephone band-limited (300-3400 Hz, through 8 kHz) and ~20 % clipped (gain so that ~1 % of samples exceed full
scale). The ground truth per segment (one utterance): ``start``, ``end`` (s), ``speaker``, ``text``, ``lang``,
``gender``, ``pitch_mean_hz`` (:func:`speechlm.pipeline.tags.pitch_mean_hz` of the clean utterance),
``speaking_rate`` (phones per second: G2P phones of the text over the clean utterance's speech span, from the
start of its first to the end of its last Silero VAD region: the tagger's own measure, so the benchmark scores its
robustness to the background; a -40 dB trim of the recordings counted their breaths and room tone as speech),
``voice``, ``overlap`` (bool).
Per file: ``snr_db``, ``background`` kind, ``telephone``, ``clipped``, ``duration``, the stem paths.

Command-line use without the CLI: ``python -m speechlm.pipeline.construct OUT --n 30 --seed 0``.
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import json
import logging
import random
import tempfile
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from speechlm.errors import SpeechLMError
from speechlm.pipeline.tags import pitch_mean_hz

log = logging.getLogger(__name__)

SR = 16000
SNRS_DB = (0.0, 5.0, 10.0, 20.0)
FILLETS = Path("/usr/share/games/fillets-ng")
NOISE_EFFECTS = ("sp-bubles_", "sp-impact_")  # fillets-ng sound effects without a voice
TRIM_DB = -40.0

# English synthetic voices (engine, voice, gender, prosody grid key -> values) drawn as speakers.
# espeak-ng variants barely differ to a speaker encoder (OFFLINE.md), so a file holds at most one espeak voice.
SYNTH_VOICES: tuple[tuple[str, str, str, str], ...] = (
    ("flite", "slt", "female", "en"),
    ("flite", "awb", "male", "en"),
    ("flite", "rms", "male", "en"),
    ("festival", "kal_diphone", "male", "en"),
    ("festival", "ked_diphone", "male", "en"),
    ("festival", "cmu_us_slt_arctic_hts", "female", "en"),
    ("festival", "lp_diphone", "female", "it"),
    ("festival", "czech_dita", "female", "cs"),
    ("espeak-ng", "en-us+f3", "female", "en"),
    ("espeak-ng", "en-gb+f2", "female", "en"),
    ("espeak-ng", "en-us+f4", "female", "en"),
    ("espeak-ng", "en-us+m3", "male", "en"),
    ("espeak-ng", "en-gb+m1", "male", "en"),
    ("piper", "en_US-joe-medium", "male", "en"),
)


@dataclass(frozen=True)
class Segment:
    """One utterance of the ground truth (times in seconds within the constructed file)."""

    start: float
    end: float
    speaker: str
    text: str
    lang: str
    gender: str
    pitch_mean_hz: float
    speaking_rate: float  # phones per second
    voice: str
    overlap: bool = False


@dataclass(frozen=True)
class Utt:
    """A clean utterance from the speech pool: 16 kHz float32 ``audio [T]`` and what is known about it."""

    audio: np.ndarray
    text: str
    lang: str
    speaker: str
    gender: str
    voice: str


def _rng(*parts: object) -> np.random.Generator:
    return np.random.default_rng(int.from_bytes(hashlib.sha256(":".join(map(str, parts)).encode()).digest()[:8],
                                                "big"))


def trim(wav: np.ndarray, threshold_db: float = TRIM_DB) -> np.ndarray:
    """Cut leading/trailing samples quieter than ``threshold_db`` below the peak: ``[T] -> [T']``."""
    peak = float(np.max(np.abs(wav))) if wav.size else 0.0
    if peak <= 0:
        return wav[:0]
    loud = np.flatnonzero(np.abs(wav) > peak * 10 ** (threshold_db / 20))
    return wav[loud[0]: loud[-1] + 1]


TRUTH_VAD_THRESHOLD = 0.5  # the ground truth's span: Silero's usual threshold, fixed whatever the tagger uses


def speaking_rate(wav: np.ndarray, text: str, lang: str, sr: int = SR) -> float:
    """Phones per second of ``text`` over the speech span (Silero VAD at :data:`TRUTH_VAD_THRESHOLD`) of the clean
    ``wav [T]``."""
    from speechlm.pipeline.tags import count_phones, vad_span_s

    dur = vad_span_s(wav, sr, threshold=TRUTH_VAD_THRESHOLD) if wav.size else 0.0
    return count_phones(text, lang) / dur if dur > 0 else 0.0


# ------------------------------------------------------------------------------------------------ speech pool


def _synth_speakers() -> list[tuple[str, str, str, str]]:
    """The voices of :data:`SYNTH_VOICES` that are installed here."""
    from speechlm.data import voices as V

    have = []
    for engine, name, gender, lang in SYNTH_VOICES:
        if engine == "flite" and name in V.flite_voices():
            have.append((engine, name, gender, lang))
        elif engine == "festival" and V.festival_installed(name):
            have.append((engine, name, gender, lang))
        elif engine == "espeak-ng" and name.split("+")[0] in V.espeak_languages():
            have.append((engine, name, gender, lang))
        elif engine == "piper" and V.piper_voices():
            have.append((engine, name, gender, lang))
    return have


def _prosody(engine: str, rng: random.Random) -> tuple[tuple[str, float], ...]:
    """A prosody setting drawn for one speaker (wider than the synthetic corpus's grid: rate and pitch vary)."""
    if engine == "espeak-ng":
        # Pitch settings kept near the middle: a female variant at -p 20 is no longer heard as a woman.
        return (("pitch", float(rng.choice((35, 50, 65)))), ("rate", float(rng.choice((120, 150, 175, 210)))))
    if engine == "flite":
        return (("stretch", rng.choice((0.75, 0.9, 1.0, 1.2, 1.4))), ("f0x", rng.choice((0.8, 0.9, 1.0, 1.15, 1.3))))
    if engine == "festival":
        return (("stretch", rng.choice((0.8, 1.0, 1.25, 1.5))),)
    return (("length", rng.choice((0.8, 0.9, 1.0, 1.15, 1.35))),)


class SpeechPool:
    """Deterministic source of clean utterances per speaker (synthetic voices and fillets-ng actors)."""

    def __init__(self, seed: int, tmpdir: Path, real: bool = True) -> None:
        from speechlm.data.sentences import SentenceSampler

        self.seed = seed
        self.tmpdir = tmpdir
        self.synth = _synth_speakers()
        if not self.synth:
            raise SpeechLMError("no offline synthesizer voice is installed (espeak-ng, flite or festival)")
        self._sentences = {lang: SentenceSampler(lang, seed) for lang in {v[3] for v in self.synth}}
        self.fillets: dict[str, list[Any]] = self._fillets() if real else {}
        self._count = 0

    def _fillets(self) -> dict[str, list[Any]]:
        """The two fish of fillets-ng (one actor each per language; the other characters are often processed
        voices), lines of about 1.5-8 s (by file size), keyed by speaker id."""
        if not (FILLETS / "script").is_dir():
            return {}
        from speechlm.data.debian_speech import read_fillets

        by: dict[str, list[Any]] = {}
        for lang in ("cs", "nl"):
            try:
                cands = list(read_fillets(FILLETS, lang))
            except SpeechLMError:
                continue
            for c in cands:
                fish = c.speaker.endswith(("_small_fish", "_big_fish"))
                if fish and c.reason is None and c.audio.is_file() and 12_000 < c.audio.stat().st_size < 90_000:
                    by.setdefault(f"fillets-{lang}:{c.speaker}", []).append(c)
        return {k: sorted(v, key=lambda c: c.id) for k, v in sorted(by.items()) if len(v) >= 8}

    def speakers(self) -> list[str]:
        """Speaker keys: ``synth:<engine>:<voice>`` and ``fillets-<lang>:<speaker>``."""
        return [f"synth:{e}:{n}" for e, n, _, _ in self.synth] + list(self.fillets)

    def utterance(self, speaker: str, prosody: tuple[tuple[str, float], ...], rng: random.Random) -> Utt:
        """One clean utterance of ``speaker`` (a key of :meth:`speakers`)."""
        from speechlm.audio.io import load_audio

        if speaker.startswith("fillets-"):
            c = rng.choice(self.fillets[speaker])
            wav, _ = load_audio(c.audio, sr=SR)
            return Utt(trim(wav[0]), c.text, c.lang, speaker, "unknown", "fillets")
        from speechlm.data import synth
        from speechlm.data import voices as V

        _, engine, name = speaker.split(":", 2)
        gender, lang = next((g, lg) for e, n, g, lg in self.synth if e == engine and n == name)
        enc = next((enc for n, _, _, enc in V.FESTIVAL_VOICES if n == name), "utf-8")
        spk = V.Speaker(V.Voice(engine, name, lang, gender, enc), prosody)
        for _attempt in range(3):
            text = self._sentences[lang].take(1)[0].text
            self._count += 1
            job = synth.UttJob(f"c{self._count}", text, "constructed", lang, spk, "test", rng.randrange(1 << 30))
            out = self.tmpdir / f"{job.id}.wav"
            try:
                synth.render(job, out, 0.0, self.tmpdir)
            except Exception as exc:  # noqa: BLE001 - an engine may fail on one sentence; draw another
                log.debug("render failed for %s: %s", speaker, exc)
                continue
            wav, _ = load_audio(out, sr=SR)
            out.unlink()
            return Utt(trim(wav[0]), text, lang, f"{speaker}:{spk.id.split(':', 2)[-1]}", gender, f"{engine}:{name}")
        raise SpeechLMError(f"{speaker} failed to render three sentences")


# ------------------------------------------------------------------------------------------------- background


@functools.lru_cache(maxsize=32)
def _load_bg(path: str) -> np.ndarray:
    from speechlm.audio.io import load_audio

    return load_audio(path, sr=SR)[0][0]


def background(kind: str, n: int, rng: np.random.Generator) -> np.ndarray:
    """Unit-RMS background ``[n]`` of ``kind``: ``music`` (fillets-ng soundtrack), ``effects`` (bubbles and
    impacts, looped with gaps, over pink noise at -12 dB), or a synthetic ``white``/``pink``/``babble-like`` noise."""
    from speechlm.audio.augment import make_noise

    x: np.ndarray
    if kind == "music":
        files = sorted(str(p) for p in (FILLETS / "music").glob("*.ogg"))
        if not files:
            return background("pink", n, rng)
        src = _load_bg(files[int(rng.integers(len(files)))])
        reps = int(np.ceil((n + 1) / src.size)) + 1
        src = np.tile(src, reps)
        off = int(rng.integers(0, src.size - n))
        x = src[off: off + n].astype(np.float64)
    elif kind == "effects":
        files = sorted(str(p) for p in (FILLETS / "sound").rglob("sp-*.ogg") if p.name.startswith(NOISE_EFFECTS))
        x = 0.25 * make_noise(n, rng, "pink", SR)
        pos = 0
        while files and pos < n:
            e = _load_bg(files[int(rng.integers(len(files)))])
            e = e / (np.sqrt(np.mean(e ** 2)) + 1e-9)
            k = min(e.size, n - pos)
            x[pos: pos + k] += e[:k]
            pos += k + int(rng.integers(0, SR))
    else:
        x = make_noise(n, rng, kind, SR)
    return (x / (np.sqrt(np.mean(x ** 2)) + 1e-12)).astype(np.float32)


# ---------------------------------------------------------------------------------------------------- building


def _telephone(x: np.ndarray) -> np.ndarray:
    from speechlm.audio.augment import band_limit
    from speechlm.audio.io import resample

    y = band_limit(x, SR, 300.0, 3400.0)
    return resample(resample(y, SR, 8000), 8000, SR)[: x.size]


def build_file(pool: SpeechPool, file_id: str, seed: int, target_s: float = 40.0,
               n_speakers: int | None = None, snr_db: float | None = None, bg_kind: str | None = None,
               degrade: bool = True, speakers: Sequence[str] | None = None
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
    """One conversation -> ``(mixture [T], speech stem [T], background stem [T], truth dict)``.

    ``n_speakers``, ``snr_db``, ``bg_kind`` (see :func:`background`) and ``speakers`` (keys of
    :meth:`SpeechPool.speakers`) fix what is otherwise drawn from the seed; ``degrade=False``: no telephone band,
    no clipping."""
    rng = random.Random(f"construct:{seed}:{file_id}")
    nrng = _rng("construct-np", seed, file_id)
    if n_speakers is None:
        n_speakers = len(speakers) if speakers else rng.choices((1, 2, 3), weights=(0.2, 0.5, 0.3))[0]
    synth_keys = [k for k in pool.speakers() if k.startswith("synth:")]
    real_keys = [k for k in pool.speakers() if not k.startswith("synth:")]
    chosen: list[str] = list(speakers or [])
    while len(chosen) < n_speakers:
        # ~30 % real actors: enough to make diarisation realistic, most segments keep a known gender.
        k = rng.choice(real_keys) if real_keys and rng.random() < 0.3 else rng.choice(synth_keys)
        espeak_twice = k.startswith("synth:espeak-ng") and any(c.startswith("synth:espeak-ng") for c in chosen)
        if k not in chosen and not espeak_twice:
            chosen.append(k)
    prosody = {k: _prosody(k.split(":")[1], rng) for k in chosen}
    gains = {k: 10 ** (rng.uniform(-6.0, 0.0) / 20) for k in chosen}
    pieces: list[tuple[int, np.ndarray, Utt, bool]] = []
    t = int(rng.uniform(0.3, 2.0) * SR)
    prev = None
    while t < target_s * SR:
        others = [k for k in chosen if k != prev] or chosen
        spk = rng.choice(others) if rng.random() < 0.85 else rng.choice(chosen)
        utt = pool.utterance(spk, prosody[spk], rng)
        overlap = bool(pieces) and spk != prev and rng.random() < 0.15
        if overlap:
            start = max(pieces[-1][0], t - int(rng.uniform(0.3, 1.0) * SR))
        else:
            start = t
        pieces.append((start, utt.audio * gains[spk], utt, overlap))
        t = start + utt.audio.size
        t += int(rng.uniform(3.0, 6.0) * SR) if rng.random() < 0.1 else int(rng.uniform(0.2, 1.2) * SR)
        prev = spk
    n = max(s + a.size for s, a, _, _ in pieces) + int(rng.uniform(0.5, 2.0) * SR)
    speech = np.zeros(n, np.float32)
    segments = []
    for start, a, u, ov in pieces:
        speech[start: start + a.size] += a
        segments.append(Segment(round(start / SR, 3), round((start + a.size) / SR, 3), u.speaker, u.text, u.lang,
                                u.gender, round(pitch_mean_hz(u.audio, SR), 2),
                                round(speaking_rate(u.audio, u.text, u.lang), 3), u.voice, ov))
    # Overlap flags for both members of an overlapping pair.
    segs = sorted(segments, key=lambda s: s.start)
    flags = [False] * len(segs)
    for i in range(len(segs)):
        for j in range(i + 1, len(segs)):
            if segs[j].start >= segs[i].end:
                break
            flags[i] = flags[j] = True
    segments = [Segment(**{**asdict(s), "overlap": f}) for s, f in zip(segs, flags)]
    active = np.zeros(n, bool)
    for s in segments:
        active[int(s.start * SR): int(s.end * SR)] = True
    p_speech = float(np.mean(speech[active] ** 2))
    snr = float(rng.choice(SNRS_DB)) if snr_db is None else float(snr_db)
    kind = bg_kind or rng.choice(("music", "music", "effects", "pink", "babble-like", "white"))
    bg = background(kind, n, nrng) * np.float32(np.sqrt(p_speech / 10 ** (snr / 10)))
    mix = speech + bg
    tele = degrade and rng.random() < 0.2
    clipped = degrade and rng.random() < 0.2
    if tele:
        mix = _telephone(mix)
    # Clipped files: ~1 % of the samples go past full scale; the others peak at -0.9 dBFS.
    scale = 1.0 / float(np.quantile(np.abs(mix), 0.99)) if clipped else 0.9 / float(np.max(np.abs(mix)))
    mix = np.clip(mix * scale, -1.0, 1.0)
    truth = {
        "id": file_id, "duration": round(n / SR, 3), "sample_rate": SR, "snr_db": snr, "background": kind,
        "telephone": tele, "clipped": clipped, "n_speakers": len(chosen), "stem_gain": scale,
        "segments": [asdict(s) for s in segments],
    }
    return mix.astype(np.float32), speech * np.float32(scale), bg * np.float32(scale), truth


def build_constructed(out_dir: str | Path, n_files: int = 30, seed: int = 0, target_s: float = 40.0,
                      real: bool = True, degrade: bool = True) -> Path:
    """Write ``n_files`` constructed conversations and their ground truth to ``out_dir``; return ``truth.json``.

    Deterministic given ``seed`` (and the installed voices). ``real=False`` uses only synthetic voices;
    ``degrade=False`` turns off telephone band-limiting and clipping.
    """
    from speechlm.audio.io import save_audio
    from speechlm.utils.atomic import atomic_write_text

    if n_files < 1:
        raise SpeechLMError(f"n_files must be >= 1, got {n_files}")
    out = Path(out_dir)
    (out / "stems").mkdir(parents=True, exist_ok=True)
    files = []
    with tempfile.TemporaryDirectory(prefix="speechlm-construct-") as tmp:
        pool = SpeechPool(seed, Path(tmp), real=real)
        for i in range(n_files):
            fid = f"wild{seed:03d}_{i:04d}"
            mix, speech, bg, truth = build_file(pool, fid, seed, target_s=target_s, degrade=degrade)
            save_audio(out / f"{fid}.wav", mix, SR)
            save_audio(out / "stems" / f"{fid}.speech.wav", speech, SR, subtype="FLOAT")
            save_audio(out / "stems" / f"{fid}.background.wav", bg, SR, subtype="FLOAT")
            truth.update(audio=f"{fid}.wav", speech_stem=f"stems/{fid}.speech.wav",
                         background_stem=f"stems/{fid}.background.wav")
            files.append(truth)
    path = out / "truth.json"
    atomic_write_text(path, json.dumps({"seed": seed, "sample_rate": SR, "files": files}, indent=1,
                                       ensure_ascii=False) + "\n")
    return path


def main(argv: list[str] | None = None) -> None:
    """``python -m speechlm.pipeline.construct OUT [--n N] [--seed S] [--seconds S] [--synthetic-only]``."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("out")
    p.add_argument("--n", type=int, default=30)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--seconds", type=float, default=40.0)
    p.add_argument("--synthetic-only", action="store_true")
    a = p.parse_args(argv)
    print(build_constructed(a.out, a.n, a.seed, a.seconds, real=not a.synthetic_only))


if __name__ == "__main__":
    main()
