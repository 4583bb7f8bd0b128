"""The detector's corpus: human recordings and synthetic speech, 16 kHz, cached as one ``.npz`` per source.

Every clip is read or rendered, downmixed, resampled to 16 kHz and its silent ends cut
(:func:`speechlm.safety.detector.trim_silence`), whatever its origin, so rate and padding tell nothing.

Sources and splits (``train`` / ``valid`` are for training and choosing the threshold; ``test`` is held out):

- human, train/valid: ``data/real/{fillets_cs, fillets_nl, klettres, asterisk_prompts}`` (the allowed corpora);
- human, test: ``data/real/{asterisk_core_en, _fr, _es, _it, pocketsphinx_testdata, codec2_examples}``
  (held out: never trained on);
- espeak-ng: train variants :data:`ESPEAK_TRAIN` in en/cs/nl/fr/es/it/de; test variants :data:`ESPEAK_TEST`
  (never trained on) speaking the held-out asterisk-core texts;
- flite: train voices slt, kal16; test voices awb, rms (held-out texts);
- Piper (en_US-joe-medium): train sentences vs held-out texts;
- ``tts_duration`` (speechlm's default TTS), unprompted and prompted: train sentences vs held-out texts
  (prompts of the test clips come from held-out recordings);
- ``codec_sf`` (speechlm's default codec) resynthesis: of training recordings (train) and of held-out ones (test);
  ``codec_sf_channel``: more of it (train only), each recording through a random channel before the codec;
- ``codec_default`` (the plain neural RVQ codec) resynthesis of training recordings: train only;
- ``vocoded_{world, griffin_lim, lpc}``: training recordings re-rendered by classic vocoders
  (:mod:`speechlm.safety.copy_synthesis`): train only;
- unseen in training, test only: festival (kal/ked diphones, slt HTS, Italian diphones) and ``codec_pitch``
  resynthesis (a neural RVQ codec fine-tuned from ``codec_default`` with a pitch input and a harmonic decoder) of
  held-out recordings: the hard cases.

Codecs that only carry a person's voice (Opus, MP3, a telephone band) are channel effects, not synthesis: the
same random :func:`channel_augment` is applied to both classes in training.
"""

from __future__ import annotations

import io
import json
import random
import subprocess
import tempfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from speechlm.errors import SpeechLMError
from speechlm.safety.copy_synthesis import VOCODERS, copy_synthesis
from speechlm.safety.detector import trim_silence

SR = 16000
HUMAN_TRAIN = ("fillets_cs", "fillets_nl", "klettres", "asterisk_prompts")
HUMAN_TEST = ("asterisk_core_en", "asterisk_core_fr", "asterisk_core_es", "asterisk_core_it",
              "pocketsphinx_testdata", "codec2_examples")
ESPEAK_TRAIN = ("", "m1", "m2", "m3", "m4", "f1", "f2", "f3", "klatt", "klatt2")
ESPEAK_TEST = ("m6", "m7", "f4", "f5", "klatt3", "Annie", "steph", "travis")
ESPEAK_TRAIN_LANGS = {"en-us": "en", "en-gb": "en", "cs": "cs", "nl": "nl", "fr-fr": "fr", "es": "es",
                      "it": "it", "de": "de"}
FLITE_TRAIN = ("slt", "kal16")
FLITE_TEST = ("awb", "rms")
FESTIVAL_TEST = (("kal_diphone", "en"), ("ked_diphone", "en"), ("cmu_us_slt_arctic_hts", "en"),
                 ("pc_diphone", "it"), ("lp_diphone", "it"))
# the held-out human manifests hold two clips that are codec outputs, not recordings: codec2-examples' f2400 and
# m2400 (2400 bit/s) are forig and morig coded (the same utterance, log envelopes correlated 0.96 / 0.97 at a
# 30-70 ms delay); load_corpus counts them as synthetic, a never-seen codec
CODED_HUMAN_IDS = {"codec2_f2400": "codec2_examples_coded", "codec2_m2400": "codec2_examples_coded"}
# generators and codecs no detector trains on: the hard case
UNSEEN = ("festival", "codec_pitch", "codec2", "codec2_examples_coded")
CODEC2_MODES = ("3200", "2400", "1600", "1300", "700C")
# speechlm's own transforms: TTS with a style description (noise, echo, whisper, another gender) and voice
# conversion of recordings; benchmarked apart from the other generators
STYLED = ("tts_styled", "vc")


@dataclass
class Clip:
    """One 16-kHz clip ``wav [T]`` with its class (1: synthetic), source, voice and split."""

    wav: np.ndarray
    label: int
    source: str
    voice: str
    split: str
    id: str


# --------------------------------------------------------------------------------------------------- storage

def save_clips(path: Path, clips: list[Clip]) -> None:
    """Clips -> one ``.npz`` (int16 audio concatenated, offsets, JSON metadata), written atomically."""
    from speechlm.utils.atomic import atomic_path

    audio = np.concatenate([np.clip(c.wav, -1, 1) for c in clips]) if clips else np.zeros(0, np.float32)
    offsets = np.cumsum([0] + [len(c.wav) for c in clips]).astype(np.int64)
    meta = [{"label": c.label, "source": c.source, "voice": c.voice, "split": c.split, "id": c.id} for c in clips]
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, audio=(audio * 32767).astype(np.int16), offsets=offsets, meta=json.dumps(meta))


def load_clips(path: Path) -> list[Clip]:
    d = np.load(path)
    audio, off = d["audio"], d["offsets"]
    meta = json.loads(str(d["meta"]))
    return [Clip(audio[off[i] : off[i + 1]].astype(np.float32) / 32767, m["label"], m["source"], m["voice"],
                 m["split"], m["id"]) for i, m in enumerate(meta)]


def load_corpus(folder: Path, splits: Iterable[str] | None = None, exclude: Iterable[str] = ()) -> list[Clip]:
    """Every cached source in ``folder`` (optionally only some splits), less ``exclude``: corpus file names
    (``vocoded_lpc_train``, with or without ``.npz``) or clip sources (``vocoded_lpc``, ``human/klettres``).
    The codec outputs among the held-out human clips (``CODED_HUMAN_IDS``) come back synthetic.

    Raises:
        SpeechLMError: a name in ``exclude`` is neither a file of the corpus nor a source in it (a typo would
            otherwise train on what it meant to leave out).
    """
    keep = set(splits) if splits is not None else None
    names = {e.removesuffix(".npz") for e in exclude}
    files = sorted(Path(folder).glob("*.npz"))
    out, seen = [], set()
    for p in files:
        if p.stem in names:
            seen.add(p.stem)
            continue
        for c in load_clips(p):
            if c.label == 0 and c.id in CODED_HUMAN_IDS:
                c.label, c.source = 1, CODED_HUMAN_IDS[c.id]
            if c.source in names:
                seen.add(c.source)
            elif keep is None or c.split in keep:
                out.append(c)
    if names - seen:
        raise SpeechLMError(f"{folder}: nothing to exclude named {', '.join(sorted(names - seen))} (give a corpus "
                            f"file name such as {files[0].stem if files else 'espeak_train'} or a clip source)")
    return out


# ------------------------------------------------------------------------------------------------ helpers

def prepare(wav: np.ndarray, sr: int) -> np.ndarray:
    """Any audio -> mono 16 kHz float32 with silent ends cut."""
    from speechlm.audio.io import model_input

    return trim_silence(model_input(wav, sr, SR), SR)


def _manifest(real: Path, name: str) -> list[dict]:
    path = real / name / "manifest.jsonl"
    if not path.is_file():
        raise SpeechLMError(f"{path} not found: run scripts/get_real_speech.sh first")
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    for r in rows:
        r["audio"] = str((path.parent / r["audio"]).resolve()) if not Path(r["audio"]).is_absolute() else r["audio"]
    return rows


def _read(path: str) -> np.ndarray:
    from speechlm.audio.io import load_audio

    wav, sr = load_audio(path)
    return prepare(wav[0], sr)


def heldout_texts(real: Path, lang: str = "en", min_words: int = 2) -> list[str]:
    """Transcripts of the held-out asterisk-core prompts (texts never used to make training clips)."""
    return sorted({r["text"] for r in _manifest(real, f"asterisk_core_{lang}")
                   if len(r["text"].split()) >= min_words})


def _run_engine(argv: list[str], text: bytes, tmp: Path) -> np.ndarray:
    import soundfile as sf

    txt, wav = tmp / "in.txt", tmp / "out.wav"
    txt.write_bytes(text)
    argv = [a.replace("{TXT}", str(txt)).replace("{WAV}", str(wav)) for a in argv]
    subprocess.run(argv, check=True, capture_output=True, timeout=120)
    x, sr = sf.read(str(wav), dtype="float32", always_2d=True)
    return prepare(x.T, sr)


def espeak_argv(voice: str, rng: random.Random) -> list[str]:
    from speechlm.data.voices import espeak_voice_arg

    return ["espeak-ng", "-v", espeak_voice_arg(voice), "-p", str(rng.randint(25, 75)), "-s",
            str(rng.randint(130, 200)), "-g", str(rng.choice((0, 1, 2))), "-w", "{WAV}", "-f", "{TXT}"]


def flite_argv(voice: str, rng: random.Random) -> list[str]:
    return ["flite", "-voice", voice, "-f", "{TXT}", "-o", "{WAV}", "--setf",
            f"duration_stretch={rng.choice((0.9, 1.0, 1.15))}"]


def festival_argv(voice: str, rng: random.Random) -> list[str]:
    return ["text2wave", "-eval", f"(begin (voice_{voice}) (Parameter.set 'Duration_Stretch "
            f"{rng.choice((0.9, 1.0, 1.15))}))", "{TXT}", "-o", "{WAV}"]


def _ascii(text: str, encoding: str = "ascii") -> bytes:
    table = str.maketrans({"’": "'", "‘": "'", "“": '"', "”": '"', "–": "-", "—": "-", "…": "..."})
    return text.translate(table).encode(encoding, errors="ignore")


# --------------------------------------------------------------------------------------------- the sources

def human_clips(real: Path, names: Iterable[str], per_source: int, split: str, rng: random.Random,
                valid_frac: float = 0.0) -> Iterator[Clip]:
    """Recordings from ``data/real`` manifests; ``valid_frac`` of a trainable source goes to ``valid``."""
    for name in names:
        rows = _manifest(real, name)
        rng.shuffle(rows)
        for i, r in enumerate(rows[:per_source]):
            wav = _read(r["audio"])
            if len(wav) < SR // 4:
                continue
            s = "valid" if split == "train" and i < int(valid_frac * min(per_source, len(rows))) else split
            yield Clip(wav, 0, f"human/{name}", r.get("speaker", name), s, r["id"])


def engine_clips(engine: str, jobs: list[tuple[str, str]], split: str, seed: int) -> Iterator[Clip]:
    """``jobs``: (voice, text) pairs rendered by espeak-ng / flite / festival."""
    rng = random.Random(f"{engine}:{split}:{seed}")
    make = {"espeak": espeak_argv, "flite": flite_argv, "festival": festival_argv}[engine]
    with tempfile.TemporaryDirectory() as td:
        for i, (voice, text) in enumerate(jobs):
            enc = "utf-8" if engine == "espeak" else "latin-1"
            try:
                wav = _run_engine(make(voice, rng), _ascii(text, enc) if engine != "espeak" else text.encode(),
                                  Path(td))
            except (subprocess.SubprocessError, RuntimeError, OSError):
                continue
            if len(wav) >= SR // 4:
                yield Clip(wav, 1, engine, voice, split, f"{engine}_{split}_{i}")


def piper_clips(texts: list[str], split: str, seed: int) -> Iterator[Clip]:
    from speechlm.data.piper import joe

    voice = joe(threads=1)
    rng = random.Random(f"piper:{split}:{seed}")
    for i, text in enumerate(texts):
        try:
            audio = voice.synthesize(text, length_scale=rng.choice((0.9, 1.0, 1.1)))
        except SpeechLMError:
            continue
        wav = prepare(np.asarray(audio, np.float32), voice.sample_rate)
        if len(wav) >= SR // 4:
            yield Clip(wav, 1, "piper", "joe", split, f"piper_{split}_{i}")


def generator_clips(name: str, generate: Callable[[str, int], tuple[np.ndarray, int, str]], texts: list[str],
                    split: str) -> Iterator[Clip]:
    """Clips from a Python generator ``generate(text, i) -> (wav, sr, voice)`` (speechlm's TTS)."""
    for i, text in enumerate(texts):
        try:
            wav, sr, voice = generate(text, i)
        except SpeechLMError:
            continue
        wav = prepare(wav, sr)
        if len(wav) >= SR // 4:
            yield Clip(wav, 1, name, voice, split, f"{name}_{split}_{i}")


def vocoded_clips(vocoder: str, sources: list[Clip], split: str, seed: int) -> Iterator[Clip]:
    """Recordings re-rendered by a classic vocoder (:mod:`speechlm.safety.copy_synthesis`): the same speakers and
    words as the human clips (the vocoder's output is clean: the recording's own codec traces are not kept)."""
    for i, c in enumerate(sources):
        wav = trim_silence(copy_synthesis(c.wav, vocoder, np.random.default_rng([seed, i])), SR)
        if len(wav) >= SR // 4:
            yield Clip(wav, 1, f"vocoded_{vocoder}", vocoder, split, f"vocoded_{vocoder}_{c.id}")


def codec_clips(name: str, codec, sources: list[Clip], split: str,
                channel: np.random.Generator | None = None) -> Iterator[Clip]:
    """Resynthesis (encode + decode) of recordings through a speechlm codec (``codec`` from ``Codec.load``),
    clips named ``name``; with ``channel``, each recording first goes through a random :func:`channel_augment`
    (a user resynthesises recordings of any channel: telephone, Opus, MP3, noisy)."""
    for c in sources:
        wav = c.wav if channel is None else channel_augment(c.wav, channel)[0]
        tokens = codec.encode(wav, SR)
        wav, sr = codec.decode(tokens)
        wav = prepare(wav, sr)
        if len(wav) >= SR // 4:
            yield Clip(wav, 1, name, name, split, f"{name}_{c.id}")


def codec2_clips(sources: list[Clip], split: str, seed: int) -> Iterator[Clip]:
    """Recordings through Codec 2 (Debian's ``c2enc`` / ``c2dec``, 8 kHz, a random mode of ``CODEC2_MODES`` each):
    a low-rate vocoder no detector trains on."""
    from speechlm.audio.io import resample

    rng = random.Random(f"codec2:{split}:{seed}")
    with tempfile.TemporaryDirectory() as td:
        raw, bits, out = (Path(td) / n for n in ("in.raw", "c.bit", "out.raw"))
        for c in sources:
            mode = rng.choice(CODEC2_MODES)
            x = resample(c.wav, SR, 8000)
            (np.clip(x, -1, 1) * 32767).astype("<i2").tofile(raw)
            try:
                subprocess.run(["c2enc", mode, str(raw), str(bits)], check=True, capture_output=True, timeout=60)
                subprocess.run(["c2dec", mode, str(bits), str(out)], check=True, capture_output=True, timeout=60)
            except (subprocess.SubprocessError, OSError):
                continue
            wav = prepare(np.fromfile(out, "<i2").astype(np.float32) / 32768, 8000)
            if len(wav) >= SR // 4:
                yield Clip(wav, 1, "codec2", f"codec2_{mode}", split, f"codec2_{c.id}")


# ------------------------------------------------------------------------------------------- augmentation

def _lossy(wav: np.ndarray, fmt: str, subtype: str, level: float) -> np.ndarray:
    import soundfile as sf

    buf = io.BytesIO()
    kw = {"bitrate_mode": "CONSTANT"} if fmt == "MP3" else {}
    sf.write(buf, np.clip(wav, -1, 1), SR, format=fmt, subtype=subtype, compression_level=level, **kw)
    buf.seek(0)
    out, _ = sf.read(buf, dtype="float32")
    out = out[: len(wav)]
    return np.pad(out, (0, len(wav) - len(out)))


def channel_augment(wav: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, list[str]]:
    """A random transmission channel for a 16-kHz clip ``[T] -> [T]``, the same distribution for both classes:
    telephone band (8 kHz resampling), other band limits, Opus or MP3 at a random bitrate, noise, gain.
    Returns the audio and the names of what was applied."""
    from speechlm.audio.augment import add_noise, band_limit
    from speechlm.audio.io import resample

    x, tags = wav.astype(np.float32), []
    u = rng.random()
    if u < 0.3:
        x = resample(resample(x, SR, 8000), 8000, SR)[: len(wav)]
        tags.append("tel8k")
    elif u < 0.4:
        lo, hi = [(300, 3400), (100, 5000), (50, 7000)][int(rng.integers(3))]
        x = band_limit(x, SR, lo, hi)
        tags.append(f"band{lo}-{hi}")
    v = rng.random()
    if v < 0.15:
        x = _lossy(x, "OGG", "OPUS", float(rng.uniform(0.3, 0.9)))
        tags.append("opus")
    elif v < 0.3:
        x = _lossy(x, "MP3", "MPEG_LAYER_III", float(rng.uniform(0.3, 0.9)))
        tags.append("mp3")
    if rng.random() < 0.3:
        x = add_noise(x, float(rng.uniform(10, 40)), rng, kind=("white", "pink")[int(rng.integers(2))], sr=SR)
        tags.append("noise")
    peak = float(np.max(np.abs(x))) or 1.0
    x = x / peak * 10 ** (float(rng.uniform(-25, -1)) / 20)
    return x.astype(np.float32), tags


def recording_augment(wav: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, list[str]]:
    """How a recording differs besides its transmission, for a 16-kHz clip ``[T] -> [T]`` (either class alike): a
    random smooth equaliser (gains of +-6 dB at 6 log-spaced frequencies, 100-7000 Hz), a dynamic-range compressor
    (threshold 10-25 dB under the peak, ratio 2-6, as broadcast and telephone-prompt recordings are), a room
    (synthetic reverberation, RT60 0.15-0.6 s). Each with probability 0.3. Returns the audio and what was applied."""
    from speechlm.audio.augment import reverb

    x, tags = wav.astype(np.float32), []
    if rng.random() < 0.3:
        n = len(x)
        f = np.fft.rfftfreq(n, 1.0 / SR)
        knots = np.geomspace(100.0, 7000.0, 6)
        g_db = np.interp(np.log(np.maximum(f, 1.0)), np.log(knots), rng.uniform(-6.0, 6.0, len(knots)))
        x = np.fft.irfft(np.fft.rfft(x) * 10 ** (g_db / 20), n).astype(np.float32)
        tags.append("eq")
    if rng.random() < 0.3:
        hop = SR // 100
        m = len(x) // hop
        if m:
            env = np.sqrt(np.mean(x[: m * hop].reshape(m, hop) ** 2, 1) + 1e-12)
            level = 20 * np.log10(env)
            thr = level.max() - float(rng.uniform(10.0, 25.0))
            ratio = float(rng.uniform(2.0, 6.0))
            gain_db = -np.maximum(level - thr, 0.0) * (1.0 - 1.0 / ratio)
            gain_db = np.convolve(gain_db, np.ones(5) / 5, mode="same")  # ~50 ms smoothing
            g = np.repeat(10 ** (gain_db / 20), hop)
            x = np.concatenate([x[: m * hop] * g, x[m * hop :]]).astype(np.float32)
            tags.append("compress")
    if rng.random() < 0.3:
        x = reverb(x, SR, float(rng.uniform(0.15, 0.6)), rng).astype(np.float32)
        tags.append("room")
    return x, tags


# ------------------------------------------------------------------------------------------------ the build

@dataclass(frozen=True)
class CorpusSizes:
    """Clips per source (train includes the valid share)."""

    human_per_source: int = 450
    human_test_per_source: int = 150
    espeak_train: int = 640
    espeak_test: int = 200
    flite_train: int = 240
    flite_test: int = 100
    piper_train: int = 240
    piper_test: int = 100
    tts_train: int = 280
    tts_test: int = 100
    codec_train: int = 220
    codec_test: int = 80
    codec_channel_train: int = 660
    festival_test: int = 150
    codec_pitch_test: int = 80
    codec2_test: int = 80
    styled_train: int = 240
    styled_test: int = 100
    vc_train: int = 200
    vc_test: int = 80
    vocoded_train: int = 400  # per vocoder (copy_synthesis.VOCODERS)


def build_corpus(out: Path, real: Path, tts: Callable[[str, int, np.ndarray | None], tuple[np.ndarray, int]],
                 codecs: Callable[[str], object], sizes: CorpusSizes = CorpusSizes(), seed: int = 0,
                 only: Iterable[str] | None = None, log: Callable[[str], None] = print,
                 styled: Callable[[str, int], tuple[np.ndarray, int, str]] | None = None,
                 convert: Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, int]] | None = None) -> list[Path]:
    """Render or read every source into ``out/<source>.npz`` (a source whose file exists is kept).

    Args:
        tts: ``tts(text, seed, prompt_wav16 | None) -> (wav, sr)``: speechlm's default TTS.
        codecs: ``codecs(name) -> codec`` with ``encode(wav, sr)`` / ``decode(tokens)`` (``Codec.load``).
        only: build only these source names (default: all).
        styled: ``styled(text, seed) -> (wav, sr, description)``: the TTS with a style description.
        convert: ``convert(wav16, target_wav16) -> (wav, sr)``: voice conversion.
    """
    from speechlm.data.sentences import SentenceSampler

    out.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    written: list[Path] = []
    cache: dict[str, list[Clip]] = {}

    def human(split: str) -> list[Clip]:
        key = f"human_{split}"
        if key not in cache:
            p = out / f"{key}.npz"
            cache[key] = load_clips(p) if p.exists() else []
        return cache[key]

    en_test = heldout_texts(real, "en")
    test_texts = {lang: heldout_texts(real, lang) for lang in ("en", "fr", "es", "it")}
    train_en = [s.text for s in SentenceSampler("en", seed).take(1000)]

    def make(name: str, clips: Callable[[], Iterable[Clip]]) -> None:
        p = out / f"{name}.npz"
        if (only is not None and name not in only) or p.exists():
            return
        got = list(clips())
        save_clips(p, got)
        written.append(p)
        log(f"{name}: {len(got)} clips, {sum(len(c.wav) for c in got) / SR / 60:.1f} min")
        if name.startswith("human_"):
            cache[name] = got

    make("human_train", lambda: human_clips(real, HUMAN_TRAIN, sizes.human_per_source, "train", rng, 0.1))
    make("human_test", lambda: human_clips(real, HUMAN_TEST, sizes.human_test_per_source, "test", rng))

    def espeak_jobs(n: int, variants: tuple[str, ...], langs: dict[str, str], texts: dict[str, list[str]],
                    r: random.Random) -> list[tuple[str, str]]:
        jobs = []
        for _ in range(n):
            accent = r.choice(sorted(langs))
            var = r.choice(variants)
            jobs.append((accent + (f"+{var}" if var else ""), r.choice(texts[langs[accent]])))
        return jobs

    def train_texts(lang: str) -> list[str]:
        return train_en if lang == "en" else [s.text for s in SentenceSampler(lang, seed).take(300)]

    r = random.Random(f"jobs:{seed}")
    make("espeak_train", lambda: engine_clips("espeak", espeak_jobs(
        sizes.espeak_train, ESPEAK_TRAIN, ESPEAK_TRAIN_LANGS,
        {lang: train_texts(lang) for lang in set(ESPEAK_TRAIN_LANGS.values())}, r), "train", seed))
    make("espeak_test", lambda: engine_clips("espeak", espeak_jobs(
        sizes.espeak_test, ESPEAK_TEST, {"en-us": "en", "en-gb": "en", "fr-fr": "fr", "es": "es", "it": "it"},
        test_texts, r), "test", seed))
    make("flite_train", lambda: engine_clips(
        "flite", [(r.choice(FLITE_TRAIN), r.choice(train_en)) for _ in range(sizes.flite_train)], "train", seed))
    make("flite_test", lambda: engine_clips(
        "flite", [(r.choice(FLITE_TEST), r.choice(en_test)) for _ in range(sizes.flite_test)], "test", seed))
    make("festival_test", lambda: engine_clips("festival", [
        (v, r.choice(test_texts[lang])) for v, lang in (r.choice(FESTIVAL_TEST) for _ in range(sizes.festival_test))
    ], "test", seed))
    make("piper_train", lambda: piper_clips(r.sample(train_en, sizes.piper_train), "train", seed))
    make("piper_test", lambda: piper_clips([r.choice(en_test) for _ in range(sizes.piper_test)], "test", seed))

    def tts_gen(split: str) -> Callable[[str, int], tuple[np.ndarray, int, str]]:
        prompts = [c for c in human(split) if c.split == split and 3 * SR <= len(c.wav) <= 15 * SR]

        def gen(text: str, i: int) -> tuple[np.ndarray, int, str]:
            prompt = prompts[i % len(prompts)] if prompts and i % 2 else None
            wav, sr = tts(text, i, None if prompt is None else prompt.wav)
            return wav, sr, "prompted" if prompt is not None else "default"
        return gen

    make("tts_duration_train", lambda: generator_clips(
        "tts_duration", tts_gen("train"), r.sample(train_en, sizes.tts_train), "train"))
    make("tts_duration_test", lambda: generator_clips(
        "tts_duration", tts_gen("test"), [r.choice(en_test) for _ in range(sizes.tts_test)], "test"))

    def resynth_sources(split: str, n: int, draw: str | None = None) -> list[Clip]:
        """``n`` recordings of ``split`` up to 8 s, drawn with the seed string ``draw`` (default: the codecs')."""
        pool = [c for c in human(split) if c.split == split and len(c.wav) <= 8 * SR]
        return random.Random(draw or f"resynth:{split}:{seed}").sample(pool, min(n, len(pool)))

    make("codec_sf_train", lambda: codec_clips("codec_sf", codecs("codec_sf"),
                                               resynth_sources("train", sizes.codec_train), "train"))
    # more of speechlm's own codec, each recording heard through a random channel first (codec_sf's short
    # resynthesised clips were the seen generators' misses: docs/experiments/2026-12-06-phase-features-detector.md)
    make("codec_sf_channel_train", lambda: codec_clips(
        "codec_sf_channel", codecs("codec_sf"),
        resynth_sources("train", sizes.codec_channel_train, f"codec_sf_channel:{seed}"), "train",
        channel=np.random.default_rng([seed, 11])))
    make("codec_sf_test", lambda: codec_clips("codec_sf", codecs("codec_sf"),
                                              resynth_sources("test", sizes.codec_test), "test"))
    # the plain neural RVQ codec (codec_pitch was fine-tuned from it): the training side's neural codec
    make("codec_default_train", lambda: codec_clips("codec_default", codecs("codec_default"),
                                                    resynth_sources("train", sizes.codec_train), "train"))
    make("codec_pitch_test", lambda: codec_clips("codec_pitch", codecs("codec_pitch"),
                                                 resynth_sources("test", sizes.codec_pitch_test), "test"))
    make("codec2_test", lambda: codec2_clips(
        [c for c in resynth_sources("test", sizes.codec2_test + 20, f"codec2:{seed}")
         if c.id not in CODED_HUMAN_IDS][: sizes.codec2_test], "test", seed))
    for v in VOCODERS:  # copy synthesis of the training recordings (each vocoder its own draw of them)
        make(f"vocoded_{v}_train", lambda v=v: vocoded_clips(
            v, resynth_sources("train", sizes.vocoded_train, f"vocoded:{v}:{seed}"), "train", seed))
    rs = random.Random(f"styled:{seed}")  # its own draws: a source built alone is the one a full build makes
    if styled is not None:
        make("tts_styled_train", lambda: generator_clips(
            "tts_styled", lambda text, i: styled(text, 100000 + i), rs.sample(train_en, sizes.styled_train),
            "train"))
        make("tts_styled_test", lambda: generator_clips(
            "tts_styled", styled, random.Random(f"styled_test:{seed}").choices(en_test, k=sizes.styled_test),
            "test"))
    if convert is not None:
        make("vc_train", lambda: vc_clips(convert, resynth_sources("train", sizes.vc_train), human("train"),
                                          "train"))
        make("vc_test", lambda: vc_clips(convert, resynth_sources("test", sizes.vc_test), human("test")))
    return written


def vc_clips(convert: Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, int]], sources: list[Clip],
             voices: list[Clip], split: str = "test") -> Iterator[Clip]:
    """Recordings converted (``convert(wav, target)``) to the voice of another recording of 3-10 s from another
    source of the same split."""
    targets = [v for v in voices if 3 * SR <= len(v.wav) <= 10 * SR]
    for i, c in enumerate(sources):
        others = [v for v in targets if v.source != c.source]
        if not others:
            continue
        try:
            wav, sr = convert(c.wav, others[(7 * i) % len(others)].wav)
        except SpeechLMError:
            continue
        wav = prepare(wav, sr)
        if len(wav) >= SR // 4:
            yield Clip(wav, 1, "vc", "vc", split, f"vc_{c.id}")
