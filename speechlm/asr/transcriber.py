"""The shipped CTC recogniser as a library object: transcribe, phonemize and force-align audio.

``CTCTranscriber.load(None)`` loads the checkpoint shipped in ``speechlm/assets/asr_default``; ``load(DIR)``
any folder written by :func:`speechlm.asr.train.export_model` (``OUT/final`` of a training run). It is the
evaluation suite's ``"ctc"`` backend: ``transcribe(wav [T] float at 16 kHz) -> str``.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from speechlm.asr.align import Alignment, AlignmentError, build_alignment, viterbi_align
from speechlm.asr.decode import greedy_decode
from speechlm.asr.labels import LabelSet, split_phonemes
from speechlm.asr.model import ConformerCTC, CTCModelConfig
from speechlm.errors import AudioError, CheckpointError

DEFAULT_MODEL_DIR = Path(__file__).resolve().parent.parent / "assets" / "asr_default"
SAMPLE_RATE = 16000
MODEL_KIND = "speechlm-asr-ctc"


def resolve_model_dir(model: str | os.PathLike | None) -> Path:
    """``None`` / ``"default"``: the shipped model; ``NAME`` or ``asr_NAME``: ``speechlm/assets/asr_NAME``; else a
    checkpoint folder (or a run folder's ``final``)."""
    if model is None or str(model) == "default":
        path = DEFAULT_MODEL_DIR
    else:
        path, name = Path(model), str(model)
        asset = DEFAULT_MODEL_DIR.parent / f"asr_{name.removeprefix('asr_')}"
        if not path.exists() and "/" not in name and asset.is_dir():
            path = asset
        if (path / "final" / "config.json").exists():
            path = path / "final"
    if not (path / "config.json").exists():
        raise CheckpointError(f"no ASR model at {path} (expected config.json + model.safetensors)")
    return path


@dataclass(frozen=True)
class Emissions:
    """Log-probabilities of one utterance: ``phone`` ``[T', n_phones]``, ``char`` ``[T', n_chars]``."""

    phone: np.ndarray
    char: np.ndarray
    frame_rate: float


class CTCTranscriber:
    """A loaded CTC model. Thread-safe for inference (one lock around the forward pass)."""

    name = "ctc"
    sample_rate = SAMPLE_RATE

    def __init__(
        self,
        model: ConformerCTC,
        phone_set: LabelSet,
        char_set: LabelSet,
        features: dict,
        frame_rate: float,
        source: str = "",
        model_id: str = "",
    ) -> None:
        self.model = model.eval()
        self.phone_set, self.char_set = phone_set, char_set
        self.features = features
        self.frame_rate = frame_rate
        self.source = source
        self.model_id = model_id  # NAME@HASH, as `speechlm models` lists it ("" when built in memory)
        self._lock = threading.Lock()

    @classmethod
    def load(cls, model: str | os.PathLike | None = None) -> CTCTranscriber:
        """Load a checkpoint folder (None: the shipped default); CheckpointError on a foreign folder."""
        from speechlm.utils.checkpoint import load_checkpoint

        path = resolve_model_dir(model)
        ck = load_checkpoint(path)
        extra = ck.meta.get("extra") or {}
        if extra.get("kind") != MODEL_KIND:
            raise CheckpointError(f"{path} is not a speechlm CTC ASR model (kind {extra.get('kind')!r})")
        mcfg = CTCModelConfig.from_dict(ck.config["model"])
        net = ConformerCTC(mcfg)
        sd = {k: v.float() if v.is_floating_point() else v for k, v in ck.state_dict.items()}
        try:
            net.load_state_dict(sd)
        except RuntimeError as e:
            raise CheckpointError(
                f"{path}: weights do not fit the model config ({str(e).splitlines()[0]})"
            ) from None
        return cls(
            net,
            LabelSet(tuple(extra["phone_labels"])),
            LabelSet(tuple(extra["char_labels"])),
            dict(ck.config["features"]),
            float(extra["frame_rate"]),
            str(path),
            ck.model_id,
        )

    # --- inference -------------------------------------------------------------------------------
    def _prepare(self, wav: np.ndarray, sr: int) -> torch.Tensor:
        x = np.asarray(wav, dtype=np.float32)
        if x.ndim == 2:  # [C, T] -> mono
            x = x.mean(0)
        if x.ndim != 1:
            raise AudioError(f"expected a waveform [T] or [C, T], got shape {x.shape}")
        if x.size < 400:  # shorter than one analysis window: pad, so an empty or tiny clip decodes to ""
            x = np.pad(x, (0, 400 - x.size))
        if not np.isfinite(x).all():
            raise AudioError("audio contains NaN or Inf samples")
        if sr != self.sample_rate:
            from speechlm.audio.io import resample

            x = resample(x, sr, self.sample_rate)
        return torch.from_numpy(np.ascontiguousarray(x))

    @torch.no_grad()
    def emissions_batch(self, wavs: Sequence[np.ndarray], sr: int = SAMPLE_RATE) -> list[Emissions]:
        """Log-probabilities for several waveforms (one padded forward pass)."""
        from speechlm.audio.features import log_mel

        f = self.features
        feats = [
            log_mel(
                self._prepare(w, sr),
                f["sample_rate"],
                n_fft=f["n_fft"],
                hop_length=f["hop_length"],
                n_mels=f["n_mels"],
            )
            for w in wavs
        ]
        lens = torch.tensor([x.shape[-1] for x in feats])
        batch = torch.zeros(len(feats), feats[0].shape[0], int(lens.max()))
        for i, x in enumerate(feats):
            batch[i, :, : x.shape[-1]] = x
        with self._lock:
            out = self.model(batch, lens)
        return [
            Emissions(out.phone_logprobs[i, :n].numpy(), out.char_logprobs[i, :n].numpy(), self.frame_rate)
            for i, n in enumerate(out.lengths.tolist())
        ]

    def emissions(self, wav: np.ndarray, sr: int = SAMPLE_RATE) -> Emissions:
        return self.emissions_batch([wav], sr)[0]

    def _chars_to_text(self, ids: list[int]) -> str:
        return " ".join("".join(self.char_set.decode(ids)).split())

    def transcribe(self, wav: np.ndarray, sr: int = SAMPLE_RATE) -> str:
        """Waveform ``[T]`` (float, 16 kHz unless ``sr`` says otherwise) -> lower-case text, no punctuation"""
        em = self.emissions(wav, sr)
        return self._chars_to_text(greedy_decode(torch.from_numpy(em.char))[0])

    def transcribe_batch(self, wavs: Sequence[np.ndarray], sr: int = SAMPLE_RATE) -> list[str]:
        return [
            self._chars_to_text(greedy_decode(torch.from_numpy(e.char))[0])
            for e in self.emissions_batch(wavs, sr)
        ]

    def phonemes(self, wav: np.ndarray, sr: int = SAMPLE_RATE) -> list[str]:
        """Waveform -> recognised IPA phones (no word boundaries)."""
        em = self.emissions(wav, sr)
        return self.phone_set.decode(greedy_decode(torch.from_numpy(em.phone))[0])

    # --- alignment -------------------------------------------------------------------------------
    def align(
        self, wav: np.ndarray, text: str, lang: str, sr: int = SAMPLE_RATE, phonemes: str | None = None
    ) -> Alignment:
        """Force-align ``text`` to ``wav``: phone spans and word spans in seconds.

        Args:
            wav: ``[T]`` float waveform.
            text: the transcript (words are split as the G2P splits them).
            lang: espeak-ng language code for the G2P.
            sr: sample rate of ``wav``.
            phonemes: the transcript already phonemized (phones by spaces, words by " | "); skips the G2P.
        Raises:
            AlignmentError: no phone of the text is in the model's inventory, or the audio is too short.
        """
        words, word_phones = self.word_phonemes(text, lang, phonemes)
        em = self.emissions(wav, sr)
        labels, ids, word_of = [], [], []
        kept_words: list[str] = []
        for word, phones in zip(words, word_phones):
            w_ids, kept = self.phone_set.encode(phones)
            if not w_ids:  # a word with no known phone cannot be placed; it is left out of the alignment
                continue
            kept_words.append(word)
            labels += [phones[k] for k in kept]
            ids += w_ids
            word_of += [len(kept_words) - 1] * len(w_ids)
        if not ids:
            raise AlignmentError(f"nothing to align: no phone of {text!r} is in the model's inventory")
        path, score = viterbi_align(em.phone, ids)
        return build_alignment(path, score, labels, word_of, kept_words, em.frame_rate)

    @staticmethod
    def word_phonemes(text: str, lang: str, phonemes: str | None = None) -> tuple[list[str], list[list[str]]]:
        """(words, phones of each word) for ``text``; words are those of the G2P's word split."""
        if phonemes is None:
            from speechlm.text.g2p import phonemize_words
            from speechlm.text.normalize import normalize_text

            # numbers and abbreviations are read out first, so "42" is aligned as "forty two"
            pairs = phonemize_words(normalize_text(text, lang), lang)
            words = [w for w, _ in pairs]
            word_phones = [p.split() if isinstance(p, str) else list(p) for _, p in pairs]
            return words, word_phones
        word_phones = split_phonemes(phonemes)
        words = text.split()
        if len(words) != len(
            word_phones
        ):  # the caller's phonemes do not split like the text: number the words
            words = [f"w{i}" for i in range(len(word_phones))]
        return words, word_phones


_CACHE: dict[str, CTCTranscriber] = {}


def get_transcriber(model: str | os.PathLike | None = None) -> CTCTranscriber:
    """A cached :class:`CTCTranscriber` per model folder (loading costs ~0.1 s, evaluation calls it often)."""
    key = str(resolve_model_dir(model))
    if key not in _CACHE:
        _CACHE[key] = CTCTranscriber.load(key)
    return _CACHE[key]
