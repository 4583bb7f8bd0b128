"""TTS with the aligned autoregressive codec LM: ``AlignedTTS.load(RUN).generate("text")``.

Text -> sentences -> TTS input tokens -> the duration model inside the LM (frames, pitch, energy and encoder
states per token; :mod:`speechlm.lm.aligned`) -> ``codec_sf`` tokens sampled frame by frame (KV cache), as many
frames as the durations add up to -> the codec's decoder. The audio is always heard through the tokens (as
``DurationTTS(via_tokens=True)``, the NAR baseline on the same tokens).

A voice prompt (1-20 s audio) is encoded with the codec and its last :data:`PROMPT_FRAMES` frames sit in the
LM's context before the sentence. The model was trained on one voice (Piper joe), so the prompt cannot teach it
another voice; it only conditions the continuation. :meth:`AlignedTTS.stream` yields audio while frames are
still being sampled.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator

import numpy as np
import torch

from speechlm.lm.aligned import LoadedAligned, load_aligned
from speechlm.lm.sampling import SamplingConfig
from speechlm.tasks.tts import TTSInputError, TTSResult, check_prompt_audio, fade_join, read_prompt

PROMPT_FRAMES = 150  # the prompt's last 3 s are kept in context (training prompts are 1-3 s)
STREAM_BLOCK = 10  # codec frames (200 ms) per streamed block
N_PREFIX = 3  # codec_sf streams before the envelope stages (f0, gain, aperiodicity)


class AlignedTTS:
    """An aligned codec LM + the source-filter codec it was trained for. Build with :meth:`load`."""

    def __init__(self, lm: LoadedAligned, codec, sampling: SamplingConfig | None = None,
                 env_stages: int | None = None) -> None:
        from speechlm.errors import CheckpointError
        from speechlm.lm.acoustic_api import AcousticTTSModel, VoiceStats
        from speechlm.tasks.tts_duration import DurationTTS

        if lm.tokenizer and lm.tokenizer != codec.tokenizer_id:
            raise CheckpointError(f"{lm.path} was trained for codec {lm.tokenizer}, but {codec.tokenizer_id} is "
                                  "loaded; use that codec")
        voice = VoiceStats.from_dict(lm.meta["extra"]["voice_stats"])
        am = AcousticTTSModel(lm.model.nar, lm.model.nar.cfg, lm.tokenizer, lm.symbols, voice, lm.path, lm.meta)
        # the NAR baseline built from the same duration model: text handling and its --via-tokens rendering
        self.nar = DurationTTS(am, codec, via_tokens=True)
        self.lm, self.codec = lm, codec
        self.sampling = sampling or SamplingConfig(temperature=0.0)
        n_env = codec.quantizer.n_env_stages
        if env_stages is not None and not 1 <= env_stages <= n_env:
            raise TTSInputError(f"env_stages must be 1..{n_env}, got {env_stages}")
        self.env_stages = n_env if env_stages is None else env_stages

    @classmethod
    def load(cls, model: str | os.PathLike, codec: str | os.PathLike | None = None,
             sampling: SamplingConfig | None = None, env_stages: int | None = None) -> AlignedTTS:
        """``model``: a run folder (its newest checkpoint) or a checkpoint folder of ``speechlm acoustic
        train-lm``; ``sampling`` default greedy; ``env_stages``: decode only the first envelope stages (a lower
        codec bitrate: stages the model predicts poorly add noise rather than detail; default all)."""
        from speechlm.tokenizers.codec.api import Codec

        lm = load_aligned(model)
        return cls(lm, Codec.load(codec) if codec is not None else Codec.for_tokenizer(lm.tokenizer), sampling,
                   env_stages)

    @property
    def sample_rate(self) -> int:
        return self.codec.sample_rate

    @property
    def model_id(self) -> str:
        return self.lm.model_id

    def prompt_codes(self, prompt, prompt_sr: int | None = None) -> torch.Tensor | None:
        """A prompt (file, waveform with ``prompt_sr``, or codes ``[K, P]``) -> its last :data:`PROMPT_FRAMES`
        codec frames ``[K, P']`` (``None`` stays ``None``)."""
        if prompt is None:
            return None
        if isinstance(prompt, torch.Tensor):
            codes = prompt.long()
        else:
            from speechlm.audio.io import resample

            wav, sr = read_prompt(prompt, prompt_sr)
            wav = check_prompt_audio(wav, sr)
            if sr != self.codec.sample_rate:
                wav = resample(wav, sr, self.codec.sample_rate)
            # the streams the LM predicts: every envelope stage, not the top rate's f0.mid
            rate = self.codec.bitrates[self.codec.quantizer.n_env_stages - 1]
            codes = torch.from_numpy(self.codec.encode(wav, self.codec.sample_rate, rate).codes.astype(np.int64))
        k = self.lm.model.cfg.n_streams
        if codes.ndim != 2 or codes.shape[0] != k:
            raise TTSInputError(f"prompt codes must be [{k}, P], got {tuple(codes.shape)}")
        return codes[:, -PROMPT_FRAMES:]

    def _sampling(self, temperature: float | None, top_k: int | None) -> SamplingConfig:
        if temperature is None and top_k is None:
            return self.sampling
        try:
            return SamplingConfig(temperature=self.sampling.temperature if temperature is None else temperature,
                                  top_k=self.sampling.top_k if top_k is None else top_k, top_p=self.sampling.top_p)
        except ValueError as exc:
            raise TTSInputError(str(exc)) from None

    def guide(self, ids: list[int], pace: float = 1.0):
        """Token ids ``[N]`` -> the duration model's :class:`~speechlm.lm.aligned.Guide`, with its own tokens as
        the draft when the LM was trained on one."""
        m = self.lm.model
        guide = m.guide(torch.tensor(ids, dtype=torch.long), pace)
        if m.cfg.draft:
            guide.draft = torch.from_numpy(self.nar.am.to_codes(m.nar_features(guide).numpy(), self.codec))
        return guide

    def codes(self, ids: list[int], prompt: torch.Tensor | None = None, pace: float = 1.0,
              sampling: SamplingConfig | None = None, seed: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Token ids ``[N]`` -> (codes ``[K, T]``, frames per token ``[N]``; ``T`` = their sum)."""
        m = self.lm.model
        guide = self.guide(ids, pace)
        codes = m.generate(guide, prompt, sampling or self.sampling, seed)
        return codes.numpy(), guide.dur.numpy()

    def generate(self, text: str, prompt: str | os.PathLike | np.ndarray | torch.Tensor | None = None,
                 prompt_text: str | None = None, lang: str = "en", pace: float = 1.0, prompt_sr: int | None = None,
                 max_chars: int = 2000, temperature: float | None = None, top_k: int | None = None,
                 seed: int | None = None, **_unused) -> TTSResult:
        """Speak ``text``. ``pace`` > 1 speaks slower; ``temperature`` 0 (the default) is greedy; ``prompt_text``
        is accepted and not needed (the prompt's frames carry a prompt phone)."""
        from speechlm.tasks.tts_duration import _check_pace

        _check_pace(pace)
        t0 = time.perf_counter()
        chunks = self.nar.text_chunks(text, lang, max_chars)
        p = self.prompt_codes(prompt, prompt_sr)
        cfg = self._sampling(temperature, top_k)
        codes, pieces, durs = [], [], []
        for i, (_, ids) in enumerate(chunks):
            c, d = self.codes(ids, p, pace, cfg, None if seed is None else seed + i)
            c = c[: N_PREFIX + self.env_stages]
            codes.append(c)
            durs.append(d)
            blocks = list(self.codec.decode_stream(c, c.shape[1] * self.codec.hop))
            pieces.append(np.concatenate(blocks) if blocks else np.zeros(0, np.float32))
        wav = fade_join(pieces, self.sample_rate)
        return TTSResult(wav, self.sample_rate, [s for s, _ in chunks], [c.shape[1] for c in codes],
                         [False] * len(chunks), time.perf_counter() - t0,
                         extra={"codes": codes, "durations": durs, "model": self.model_id, "decoded_from": "tokens"})

    def stream(self, text: str, prompt: str | os.PathLike | np.ndarray | torch.Tensor | None = None,
               lang: str = "en", pace: float = 1.0, prompt_sr: int | None = None, max_chars: int = 2000,
               block_tokens: int = STREAM_BLOCK, temperature: float | None = None, top_k: int | None = None,
               seed: int | None = None) -> Iterator[np.ndarray]:
        """Yield float32 audio blocks while frames are sampled (``block_tokens`` frames at a time). Input is
        validated before the first block."""
        from speechlm.tasks.tts_duration import _check_pace

        _check_pace(pace)
        chunks = self.nar.text_chunks(text, lang, max_chars)
        p = self.prompt_codes(prompt, prompt_sr)
        cfg = self._sampling(temperature, top_k)
        return self._stream(chunks, p, pace, cfg, seed, block_tokens)

    def _stream(self, chunks, p, pace, cfg, seed, block_tokens) -> Iterator[np.ndarray]:
        from speechlm.tasks.tts import GAP_S

        m = self.lm.model
        for i, (_, ids) in enumerate(chunks):
            if i:
                yield np.zeros(int(GAP_S * self.sample_rate), np.float32)
            guide = self.guide(ids, pace)
            dec = self.codec.stream_decoder(block_tokens)
            buf = []
            n = 0
            for frame in m.generate_frames(guide, p, cfg, None if seed is None else seed + i):
                buf.append(frame.numpy()[: N_PREFIX + self.env_stages])
                n += 1
                if len(buf) == block_tokens:
                    yield from dec.push(np.stack(buf, 1))
                    buf = []
            if buf:
                yield from dec.push(np.stack(buf, 1))
            yield from dec.flush(n * self.codec.hop)
