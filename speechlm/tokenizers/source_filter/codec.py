"""``SourceFilterCodec``: audio <-> source-filter tokens (F0, gain, aperiodicity, residual-VQ envelope).

Encoding analyses the audio in fixed blocks of ``BLOCK_TOKENS`` token frames, each with ``CONTEXT_MS`` of audio
on both sides, so the tokens of a block never depend on audio further away: a stream of blocks gives exactly
the offline tokens, and memory is bounded for inputs of any length. Decoding refines the envelope (the refiner's
receptive field is carried as context) and synthesises each block with WORLD, joined to the previous one by a
``XFADE_MS`` crossfade, then (codecs that have one) the spectral post-filter reshapes the audio's magnitude
spectrum (:mod:`.postfilter`, streamed exactly, 40 ms of delay); :meth:`decode_stream` and :meth:`decode` run the
same blocks. :meth:`stream_encoder` and
:meth:`stream_decoder` take smaller blocks (and less look-ahead) for low-latency streaming, at some quality cost
(benchmarks/codec_sf_streaming.py).
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Iterator
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from speechlm.errors import AudioError, CheckpointError, SpeechLMError
from speechlm.tokenizers.entropy import FrameDepth
from speechlm.tokenizers.source_filter.postfilter import PostFilterConfig, PostFilterStream, SpectralPostFilter
from speechlm.tokenizers.source_filter.quantizer import STREAM_PREFIX, SourceFilterQuantizer
from speechlm.tokenizers.source_filter.refiner import EnvelopeRefiner, RefinerConfig, refiner_input
from speechlm.tokenizers.source_filter.world import (
    ANALYSIS_MS,
    DIO_THRESHOLD,
    SAMPLE_RATE,
    Frames,
    analyze,
    pad_frames,
    synthesize,
    to_analysis_rate,
    to_token_rate,
)
from speechlm.tokenizers.tokens import Tokens, TokensFileError, check_tokenizer

KIND = "source_filter"
HOP_FRAMES = 4  # analysis frames (5 ms) per token frame: 20 ms, 50 Hz
BLOCK_TOKENS = 50  # token frames analysed / synthesised together (1 s)
CONTEXT_MS = 100.0  # audio on each side of an analysis block
XFADE_MS = 10.0  # crossfade between synthesised blocks
SYNTH_CONTEXT_TOKENS = 1  # token frames synthesised on each side of a block (warm-up and crossfade)
# Packed files (.slc) keep fewer envelope stages in quiet frames: (gain levels under the file's 95th-percentile
# gain code, envelope stages kept), quietest first. A gain level is 4.9 dB. Chosen on development clips (fillets-ng,
# klettres, asterisk prompts): 9 % fewer bits at 3.85 kbps for PESQ-WB -0.03 (docs/experiments).
QUIET_DEPTH = ((12, 1), (9, 2), (6, 4))
QUIET_REFERENCE_PERCENTILE = 95


class SourceFilterCodec:
    """A loaded source-filter codec (the AudioTokenizer protocol). Build with :meth:`load`."""

    def __init__(self, quantizer: SourceFilterQuantizer, refiner: EnvelopeRefiner, name: str,
                 weights_hash: str, config: dict, postfilter: SpectralPostFilter | None = None) -> None:
        self.quantizer = quantizer
        self.refiner = refiner.eval()
        self.postfilter = postfilter.eval() if postfilter is not None else None
        self.name = name
        self.weights_hash = weights_hash
        self.config = config
        self.f0_tracker = "dio"  # or "harvest": better envelopes, slower encoding (world.analyze); same tokens
        # encoder settings (the token space does not depend on them): DIO's voicing threshold and the envelope
        # RVQ's beam width; checkpoints from before they existed get WORLD's threshold and greedy RVQ
        self.dio_threshold = float(config.get("dio_threshold", DIO_THRESHOLD))
        self.rvq_beam = int(config.get("rvq_beam", 1))
        self.rvq_tilt = float(config.get("rvq_tilt", 0.0))  # 0: the envelope search weighs every coefficient alike
        self.f0_fit = bool(config.get("f0_fit", False))  # token F0 fitted to the contour (world.fit_token_f0)
        self.use_refiner = True  # False: decode with the envelope interpolated, as before the refiner (A/B)
        self.use_postfilter = postfilter is not None  # False: WORLD's output as it is (A/B, lowest latency)

    # ---- construction ---------------------------------------------------------------------------
    @classmethod
    def load(cls, path: str | os.PathLike) -> SourceFilterCodec:
        """Load an exported source-filter codec folder (``config.json`` + ``model.safetensors``)."""
        from speechlm.utils.checkpoint import load_checkpoint, weights_sha256

        ckpt = load_checkpoint(path)
        cfg = ckpt.config.get("model", {})
        sd = ckpt.state_dict
        try:
            quantizer = SourceFilterQuantizer(
                gain_range=sd["quantizer.gain_range"].float().numpy(),
                ap_codebook=sd["quantizer.ap_codebook"].float().numpy(),
                env_codebooks=sd["quantizer.env_codebooks"].float().numpy(),
                gain_levels=int(cfg["gain_levels"]),
                f0_mid_levels=int(cfg.get("f0_mid", {}).get("levels", 0)),
                f0_mid_step=float(cfg.get("f0_mid", {}).get("step_cents", 90.0)) / 1200.0,
            )
            rc = cfg["refiner"]
            refiner = EnvelopeRefiner(
                RefinerConfig(rc["hidden"], tuple(rc["dilations"]), tuple(rc["lookahead"])), HOP_FRAMES,
                quantizer.n_env_stages,
            )
            refiner.load_state_dict({k.removeprefix("refiner."): v.float() for k, v in sd.items()
                                     if k.startswith("refiner.")})
            postfilter = None
            if "postfilter" in cfg:  # codecs exported before 2026-12-05 have none
                pc = dict(cfg["postfilter"])
                postfilter = SpectralPostFilter(PostFilterConfig(**{**pc, "dilations": tuple(pc["dilations"])}))
                postfilter.load_state_dict({k.removeprefix("postfilter."): v.float() for k, v in sd.items()
                                            if k.startswith("postfilter.")})
        except (KeyError, TypeError, RuntimeError) as exc:
            raise CheckpointError(f"{path}: not a source-filter codec checkpoint ({str(exc)[:200]})") from None
        token_space = weights_sha256({k: v for k, v in sd.items() if k.startswith("quantizer.")})
        name = ckpt.meta.get("extra", {}).get("name") or "codec_sf"
        return cls(quantizer, refiner, str(name), token_space, cfg, postfilter)

    def state_dict(self) -> dict[str, torch.Tensor]:
        q = self.quantizer
        sd = {"quantizer.gain_range": torch.from_numpy(np.asarray(q.gain_range, np.float32)),
              "quantizer.ap_codebook": torch.from_numpy(np.asarray(q.ap_codebook, np.float32)),
              "quantizer.env_codebooks": torch.from_numpy(np.asarray(q.env_codebooks, np.float32))}
        sd.update({f"refiner.{k}": v for k, v in self.refiner.state_dict().items()})
        if self.postfilter is not None:
            sd.update({f"postfilter.{k}": v for k, v in self.postfilter.state_dict().items()})
        return sd

    @staticmethod
    def model_config(quantizer: SourceFilterQuantizer, refiner: RefinerConfig, dio_threshold: float = DIO_THRESHOLD,
                     rvq_beam: int = 1, rvq_tilt: float = 0.0, f0_fit: bool = False,
                     postfilter: PostFilterConfig | None = None) -> dict:
        """The ``model`` section of config.json (what :meth:`load` reads)."""
        cfg = {"kind": KIND, "sample_rate": SAMPLE_RATE, "hop_frames": HOP_FRAMES, "analysis_ms": ANALYSIS_MS,
               "gain_levels": quantizer.gain_levels, "refiner": asdict(refiner), "dio_threshold": dio_threshold,
               "rvq_beam": rvq_beam, "rvq_tilt": rvq_tilt, "f0_fit": f0_fit}
        if quantizer.f0_mid_levels:
            cfg["f0_mid"] = {"levels": quantizer.f0_mid_levels, "step_cents": round(quantizer.f0_mid_step * 1200, 6)}
        if postfilter is not None:
            cfg["postfilter"] = asdict(postfilter)
        return cfg

    # ---- properties (the AudioTokenizer protocol) -------------------------------------------------
    @property
    def sample_rate(self) -> int:
        return SAMPLE_RATE

    @property
    def hop(self) -> int:
        """Audio samples per token frame."""
        return int(round(HOP_FRAMES * ANALYSIS_MS * SAMPLE_RATE / 1000))

    @property
    def frame_rate(self) -> float:
        return SAMPLE_RATE / self.hop

    @property
    def num_codebooks(self) -> int:
        return len(self.quantizer.cardinalities)

    @property
    def cardinality(self) -> int:
        return max(self.quantizer.cardinalities)

    @property
    def cardinalities(self) -> list[int]:
        """Codebook size of every stream (``stream_names`` order)."""
        return self.quantizer.cardinalities

    @property
    def stream_names(self) -> list[str]:
        return self.quantizer.stream_names

    @property
    def num_params(self) -> int:
        """Parameters of the refiner plus the codebooks' entries."""
        return sum(v.numel() for v in self.state_dict().values())

    @property
    def decoder_name(self) -> str:
        return "world+refiner+postfilter" if self.use_postfilter else "world+refiner"

    @property
    def encoder_name(self) -> str:
        """The analysis and the envelope search (what ``speechlm codec info`` prints)."""
        tracker = f"dio, voicing threshold {self.dio_threshold:g}" if self.f0_tracker == "dio" else self.f0_tracker
        search = f"beam {self.rvq_beam}" if self.rvq_beam > 1 else "greedy"
        if self.rvq_tilt > 0:
            search += f", coefficient k weighted 1 / (1 + k / {self.rvq_tilt:g})"
        f0 = ", token F0 fitted to the 5-ms contour" if self.f0_fit else ""
        if self.quantizer.f0_mid_levels:
            f0 += f" (with F0 knots every 10 ms at {self.bitrates[-1]:g} kbps)"
        return f"world ({tracker}){f0}, envelope RVQ {search}"

    @property
    def tokenizer_id(self) -> str:
        return f"{self.name}@{self.weights_hash[:16]}"

    @property
    def bitrates(self) -> list[float]:
        """kbps of every usable number of streams: 1..N envelope stages, then ``f0.mid`` when the codec has it."""
        return [self._kbps(k) for k in range(len(STREAM_PREFIX) + 1, self.num_codebooks + 1)]

    @property
    def latency_ms(self) -> float:
        """Algorithmic latency of streaming decode with the default block: :meth:`decode_latency_ms`."""
        return self.decode_latency_ms(BLOCK_TOKENS)

    def decode_latency_ms(self, block_tokens: int) -> float:
        """Audio a streaming decoder needs beyond a sample before it can emit it: a block plus the refiner's
        and the synthesis context's look-ahead, plus the post-filter's delay when it is on."""
        ahead = (self.refiner.lookahead_frames + SYNTH_CONTEXT_TOKENS) * self.hop + self.postfilter_delay
        return 1000.0 * (block_tokens * self.hop + ahead) / SAMPLE_RATE

    @property
    def postfilter_delay(self) -> int:
        """Samples the post-filter holds back when streaming (0 without it)."""
        return self.postfilter.delay_samples if self.use_postfilter else 0

    def postfilter_condition(self, n_q: int) -> int:
        """The post-filter's condition for ``n_q`` streams: the index of their bitrate in :attr:`bitrates`."""
        return min(n_q, self.num_codebooks) - len(STREAM_PREFIX) - 1

    def _kbps(self, n_q: int) -> float:
        """Nominal kbps of the first ``n_q`` streams."""
        bits = self.quantizer.bits_per_frame(self.n_env_for(n_q), f0_mid=self.has_f0_mid(n_q))
        return round(bits * self.frame_rate / 1000, 4)

    def n_q_for(self, bitrate: float | None) -> int:
        """Streams for ``bitrate`` kbps (the most that fit; all when None)."""
        k_all = self.num_codebooks
        if bitrate is None:
            return k_all
        fits = [k for k in range(len(STREAM_PREFIX) + 1, k_all + 1) if self._kbps(k) <= bitrate + 1e-6]
        if not fits or bitrate > self._kbps(k_all) + 0.5:
            raise SpeechLMError(f"bitrate {bitrate:g} kbps is outside this codec's range {self.bitrates[0]:g}-"
                                f"{self.bitrates[-1]:g} kbps (steps: {', '.join(f'{b:g}' for b in self.bitrates)})")
        return max(fits)

    def frame_depth(self, codes: np.ndarray) -> FrameDepth:
        """How a packed file thins the quiet frames of ``codes [K, T]``: frames 6 / 9 / 12 gain levels (29 / 44 /
        58 dB) under the file's 95th-percentile gain keep 4 / 2 / 1 envelope stages (:data:`QUIET_DEPTH`), the
        others filled with each stage's entry nearest zero. The decoder needs no side information: a frame's
        gain code, coded first, says its depth."""
        gain = np.asarray(codes[1])
        ref = int(np.percentile(gain, QUIET_REFERENCE_PERCENTILE)) if gain.size else 0
        rules = tuple((ref - below, len(STREAM_PREFIX) + n) for below, n in QUIET_DEPTH)
        mid = (self.quantizer.f0_mid_zero,) if self.quantizer.f0_mid_levels else ()
        return FrameDepth(by=1, rules=rules, fill=(0,) * len(STREAM_PREFIX) + tuple(self.quantizer.rest_codes) + mid)

    def quantize(self, frames: Frames, n_q: int) -> np.ndarray:
        """Token-rate :class:`Frames` -> codes ``[n_q, T]`` (3 + envelope stages, then ``f0.mid`` if ``n_q`` has
        it, from ``frames.f0_mid``), searched as this codec encodes (its beam and envelope weighting)."""
        return self.quantizer.encode(frames, self.n_env_for(n_q), self.rvq_beam, self.rvq_tilt,
                                     f0_mid=self.has_f0_mid(n_q))

    @property
    def envelope_streams(self) -> int:
        """Streams up to the last envelope stage (every stream but ``f0.mid``)."""
        return len(STREAM_PREFIX) + self.quantizer.n_env_stages

    def n_env_for(self, n_q: int) -> int:
        """Envelope stages among the first ``n_q`` streams."""
        return min(n_q, self.envelope_streams) - len(STREAM_PREFIX)

    def has_f0_mid(self, n_q: int) -> bool:
        """Whether ``n_q`` streams include ``f0.mid`` (then the encoder fits 10-ms F0 knots)."""
        return n_q > self.envelope_streams

    @property
    def quiet_depth_summary(self) -> str:
        """:data:`QUIET_DEPTH` in words, with the gain levels in dB of this codec's gain quantiser."""
        lo, hi = (float(v) for v in self.quantizer.gain_range)
        step_db = (hi - lo) / (self.quantizer.gain_levels - 1) * 10 / math.log(10)  # the gain is a log power
        rules = sorted(QUIET_DEPTH, key=lambda r: r[0])
        mid = " (and no f0.mid)" if self.quantizer.f0_mid_levels else ""
        return (" / ".join(str(n) for _, n in rules) + f" envelope stages kept{mid} "
                + " / ".join(f"{below * step_db:.0f}" for below, _ in rules)
                + f" dB under the file's {QUIET_REFERENCE_PERCENTILE}th-percentile gain")

    def streams(self, tokens: Tokens) -> dict[str, np.ndarray]:
        """Tokens of this codec -> ``{stream name: codes [T]}`` (``"f0"``, ``"gain"``, ``"aperiodicity"``,
        ``"envelope.1"``, ...)."""
        self._check(tokens)
        return dict(zip(self.stream_names, tokens.codes))

    # ---- encoding -------------------------------------------------------------------------------
    def _prepare(self, wav: np.ndarray, sr: int) -> np.ndarray:
        from speechlm.audio.io import model_input

        return model_input(wav, sr, SAMPLE_RATE)

    def n_frames(self, n_samples: int) -> int:
        """Token frames of ``n_samples`` of audio: WORLD's ``n // 80 + 1`` analysis frames, ``HOP_FRAMES`` a token."""
        return math.ceil((n_samples // (self.hop // HOP_FRAMES) + 1) / HOP_FRAMES)

    def encode(self, wav: np.ndarray, sr: int, bitrate: float | None = None) -> Tokens:
        """wav ``[T]`` or ``[C, T]`` at ``sr`` -> :class:`Tokens` with codes ``[3 + n_env, n_frames(T')]``."""
        wav = self._prepare(wav, sr)
        return self.encode_blocks([wav], bitrate)

    def encode_file(self, path: str | os.PathLike, bitrate: float | None = None) -> Tokens:
        """Encode an audio file of any length in bounded memory (10-s blocks)."""
        from speechlm.audio.io import iter_audio_blocks

        blocks = (np.clip(b[0], -1.0, 1.0)
                  for b in iter_audio_blocks(path, sr=SAMPLE_RATE, block_seconds=10.0, channels=1))
        return self.encode_blocks(blocks, bitrate)

    def encode_blocks(self, blocks: Iterable[np.ndarray], bitrate: float | None = None) -> Tokens:
        """Mono float blocks ``[t]`` at 16 kHz, of any sizes -> Tokens; equal to encoding their concatenation."""
        enc = self.stream_encoder(bitrate)
        codes = [c for block in blocks for c in enc.push(block)]
        codes += list(enc.flush())
        if enc.n_samples == 0:
            raise AudioError("audio contains no samples")
        return Tokens(codes=np.concatenate(codes, axis=1).astype(np.int16), sample_rate=SAMPLE_RATE,
                      frame_rate=self.frame_rate, n_samples=enc.n_samples, tokenizer=self.tokenizer_id,
                      bitrate=self._kbps(enc.n_q))

    def stream_encoder(self, bitrate: float | None = None, block_tokens: int = BLOCK_TOKENS,
                       lookahead_ms: float = CONTEXT_MS) -> StreamEncoder:
        """An incremental encoder: :meth:`StreamEncoder.push` audio as it arrives, get codes back. The defaults
        give exactly the offline tokens; smaller blocks and look-ahead lower the latency (``block_tokens`` x 20 ms
        + ``lookahead_ms``) for tokens that differ from the offline ones where the analysis needs more context."""
        return StreamEncoder(self, self.n_q_for(bitrate), block_tokens, lookahead_ms)

    def encode_batch(self, wavs: list[np.ndarray], sr: int, bitrate: float | None = None) -> list[Tokens]:
        """Encode several clips; each result equals encoding that clip alone."""
        return [self.encode(w, sr, bitrate) for w in wavs]

    # ---- decoding -------------------------------------------------------------------------------
    def _check(self, tokens: Tokens) -> None:
        check_tokenizer(tokens, self.tokenizer_id)
        k = tokens.num_codebooks
        if not len(STREAM_PREFIX) < k <= self.num_codebooks:
            raise TokensFileError(f"tokens have {k} streams; this codec has {len(STREAM_PREFIX) + 1}-"
                                  f"{self.num_codebooks}")
        card = np.array(self.cardinalities[:k])[:, None]
        if tokens.codes.size and ((tokens.codes < 0).any() or (tokens.codes >= card).any()):
            raise TokensFileError("codes outside their streams' ranges (" + ", ".join(
                f"{n} 0..{c - 1}" for n, c in zip(self.stream_names[:k], self.cardinalities[:k])) + ")")
        expected = self.n_frames(tokens.n_samples)
        if tokens.num_frames != expected:
            raise TokensFileError(f"tokens have {tokens.num_frames} frames but n_samples={tokens.n_samples} "
                                  f"needs {expected}")

    @torch.inference_mode()
    def refine(self, codes: np.ndarray) -> Frames:
        """codes ``[K, T]`` -> 5-ms :class:`Frames` ``T * HOP_FRAMES`` long (refined envelope, interpolated
        F0 and aperiodicity; with ``use_refiner`` off, the decoded envelope interpolated like them)."""
        tok = self.quantizer.decode(np.asarray(codes, np.int64))
        plain = to_analysis_rate(tok, HOP_FRAMES, len(tok) * HOP_FRAMES)
        if not self.use_refiner or not len(tok):
            return plain
        x = torch.from_numpy(refiner_input(tok))[None]
        n_env = torch.tensor([self.n_env_for(codes.shape[0])])
        return Frames(plain.f0, self.refiner(x, n_env)[0].numpy(), plain.bap)

    def stream_decoder(self, block_tokens: int = BLOCK_TOKENS, postfilter: bool | None = None) -> StreamDecoder:
        """An incremental decoder: :meth:`StreamDecoder.push` codes as they are generated, get audio back.
        ``postfilter``: False skips the post-filter (40 ms less latency); None: :attr:`use_postfilter`."""
        return StreamDecoder(self, block_tokens, postfilter)

    def frame_stream_decoder(self, block_tokens: int = BLOCK_TOKENS, sub_frames: int = 1) -> FrameStreamDecoder:
        """An incremental synthesiser of unquantised :class:`Frames` (what the acoustic TTS model predicts),
        ``sub_frames`` (1, 2 or 4) frames per token: the parameters skip the quantiser, so nothing of the envelope
        is lost to the codebooks, and at 4 nothing of the 5-ms detail to the token rate. No post-filter: it was
        trained on decoded tokens, and on the TTS model's frames it lowered DNSMOS (docs/experiments)."""
        return FrameStreamDecoder(self, block_tokens, sub_frames)

    def decode_stream(self, codes: np.ndarray, n_samples: int, block_tokens: int = BLOCK_TOKENS
                      ) -> Iterator[np.ndarray]:
        """Yield float32 audio blocks of codes ``[K, T]``; together they are ``n_samples`` long. The same
        ``block_tokens`` gives the same audio however the codes arrive (:meth:`decode` uses the default)."""
        dec = self.stream_decoder(block_tokens)
        yield from dec.push(codes)
        yield from dec.flush(n_samples)

    def warm_state(self, context: np.ndarray) -> np.ndarray:
        """Context codes ``[K, T]`` (e.g. a voice prompt) to decode later audio after (:meth:`decode_after`)."""
        ctx = np.asarray(context, np.int64)
        if ctx.ndim != 2 or not len(STREAM_PREFIX) < ctx.shape[0] <= self.num_codebooks:
            raise SpeechLMError(f"context codes must be [K, T] with {len(STREAM_PREFIX) + 1} <= K <= "
                                f"{self.num_codebooks}")
        return ctx

    def decode_after(self, state: np.ndarray, codes: np.ndarray) -> np.ndarray:
        """codes ``[K, T]`` that follow a warm context -> audio ``[T * hop]``: the samples of decoding
        ``[context; codes]`` after the context's (the context conditions the refiner and the crossfade)."""
        c = np.asarray(codes, np.int64)
        if c.ndim != 2 or c.shape[0] != state.shape[0]:
            raise SpeechLMError(f"codes must be [{state.shape[0]}, T] like the warm context, got {c.shape}")
        both = np.concatenate([state, c], axis=1)
        wav = np.concatenate(list(self.decode_stream(both, both.shape[1] * self.hop)))
        return wav[state.shape[1] * self.hop :]

    def decode_blocks(self, tokens: Tokens) -> Iterator[np.ndarray]:
        """Yield float32 audio blocks of ``tokens`` (streaming); together they are ``n_samples`` long."""
        self._check(tokens)
        yield from self.decode_stream(tokens.codes.astype(np.int64), tokens.n_samples)

    def decode(self, tokens: Tokens) -> tuple[np.ndarray, int]:
        """Tokens (from this codec) -> (wav float32 ``[n_samples]``, sample rate)."""
        blocks = list(self.decode_blocks(tokens))
        wav = np.concatenate(blocks) if blocks else np.zeros(0, np.float32)
        return wav[: tokens.n_samples], SAMPLE_RATE

    def decode_to_file(self, tokens: Tokens, path: str | os.PathLike) -> None:
        """Decode straight to a 16-bit WAV/FLAC file, block by block, atomically."""
        import soundfile as sf

        from speechlm.tokenizers.codec.api import _sf_format
        from speechlm.utils.atomic import atomic_path

        with atomic_path(path) as tmp:
            with sf.SoundFile(str(tmp), "w", samplerate=SAMPLE_RATE, channels=1, subtype="PCM_16",
                              format=_sf_format(Path(path))) as f:
                for block in self.decode_blocks(tokens):
                    f.write(np.clip(block, -1.0, 1.0))


class StreamEncoder:
    """Audio in, codes out, block by block (see :meth:`SourceFilterCodec.stream_encoder`).

    Each block of ``block_tokens`` token frames is analysed with ``CONTEXT_MS`` of audio before it and
    ``lookahead_ms`` after it, so its tokens never depend on audio further away."""

    def __init__(self, codec: SourceFilterCodec, n_q: int, block_tokens: int = BLOCK_TOKENS,
                 lookahead_ms: float = CONTEXT_MS) -> None:
        if block_tokens < 1 or lookahead_ms < 0:
            raise SpeechLMError(f"block_tokens must be >= 1 and lookahead_ms >= 0, got {block_tokens}, "
                                f"{lookahead_ms}")
        step = codec.hop // HOP_FRAMES
        self.codec, self.n_q = codec, n_q
        self.span = block_tokens * codec.hop
        self.left = int(CONTEXT_MS * SAMPLE_RATE / 1000) // codec.hop * codec.hop  # whole token frames
        self.right = int(round(lookahead_ms * SAMPLE_RATE / 1000 / step)) * step
        self.buf = np.zeros(0, np.float32)  # audio from sample `start - left` (clipped at 0) onward
        self.buf_start = 0  # absolute index of buf[0]
        self.start = 0  # first sample of the next block to encode
        self.n_samples = 0

    @property
    def latency_ms(self) -> float:
        return 1000.0 * (self.span + self.right) / SAMPLE_RATE

    def push(self, block: np.ndarray) -> Iterator[np.ndarray]:
        """Append mono audio ``[t]`` at 16 kHz; yield codes ``[n_q, t']`` of the blocks that became complete."""
        block = np.asarray(block, np.float32)
        # encode() checks its input, but blocks come straight from callers: WORLD turns NaN into codes
        if block.ndim != 1:
            raise AudioError(f"audio blocks must be mono [t], got shape {block.shape}")
        if not np.all(np.isfinite(block)):
            raise AudioError(f"audio contains NaN or Inf samples (in the block at sample {self.n_samples})")
        self.n_samples += len(block)
        self.buf = np.concatenate([self.buf, block])
        while self.n_samples >= self.start + self.span + self.right:
            yield self._block(None)

    def flush(self) -> Iterator[np.ndarray]:
        """End of the audio: yield the codes of the rest (``codec.n_frames(n_samples)`` frames in all)."""
        n_tokens = self.codec.n_frames(self.n_samples) if self.n_samples else 0
        while self.start // self.codec.hop < n_tokens:
            yield self._block(n_tokens)

    def _block(self, n_tokens: int | None) -> np.ndarray:
        c, start = self.codec, self.start
        lo = max(0, start - self.left)
        seg = self.buf[lo - self.buf_start : start + self.span + self.right - self.buf_start]
        frames = analyze(seg, f0_tracker=c.f0_tracker, dio_threshold=c.dio_threshold)
        first = (start - lo) // (c.hop // HOP_FRAMES)  # analysis frame of `start` within seg
        want = self.span // c.hop * HOP_FRAMES
        if n_tokens is not None:
            want = min(want, (n_tokens - start // c.hop) * HOP_FRAMES)
        # Token frames of the whole analysed segment (it starts on a token boundary: `first` is whole tokens), so
        # that a fitted token F0 sees the context and look-ahead too (block edges fit as inside); then the block's.
        tokens = to_token_rate(pad_frames(frames, first + want), HOP_FRAMES, c.f0_fit, c.has_f0_mid(self.n_q))
        k, n = first // HOP_FRAMES, want // HOP_FRAMES
        mid = None if tokens.f0_mid is None else tokens.f0_mid[k : k + n]
        block = Frames(tokens.f0[k : k + n], tokens.mcep[k : k + n], tokens.bap[k : k + n], mid)
        codes = c.quantize(block, self.n_q)
        self.start += self.span
        drop = max(0, self.start - self.left - self.buf_start)
        self.buf, self.buf_start = self.buf[drop:], self.buf_start + drop
        return codes


class StreamDecoder:
    """Codes in, audio out, block by block (see :meth:`SourceFilterCodec.stream_decoder`).

    A block of ``block_tokens`` frames is synthesised once the refiner's look-ahead and the synthesis context
    after it have arrived; the previous block's run-on is crossfaded into its first ``XFADE_MS``."""

    def __init__(self, codec: SourceFilterCodec, block_tokens: int = BLOCK_TOKENS,
                 postfilter: bool | None = None) -> None:
        if block_tokens < 1:
            raise SpeechLMError(f"block_tokens must be at least 1, got {block_tokens}")
        self.codec, self.block = codec, block_tokens
        has = codec.postfilter is not None
        self.postfilter_on = codec.use_postfilter if postfilter is None else bool(postfilter and has)
        self.post: PostFilterStream | None = None  # made at the first push (its condition is the stream count)
        self.codes = np.zeros((0, 0), np.int64)  # the frames from `start` on (what later blocks still need)
        self.start = 0  # absolute index of codes[:, 0]
        self.next = 0  # first token frame not yet synthesised
        self.tail = np.zeros(0, np.float32)
        self.emitted = 0
        xf = int(XFADE_MS * SAMPLE_RATE / 1000)
        self.fade = np.linspace(0.0, 1.0, xf, dtype=np.float32)
        self.ahead = codec.refiner.lookahead_frames + SYNTH_CONTEXT_TOKENS  # frames after a block that it reads
        self.keep = codec.refiner.lookback_frames + SYNTH_CONTEXT_TOKENS  # frames before a block that it reads

    def _rows(self, codes) -> np.ndarray:
        """What :meth:`push` takes -> rows ``[R, t]`` kept until no later block reads them."""
        return np.asarray(codes, np.int64)

    def _frames(self, rows: np.ndarray) -> Frames:
        """Rows ``[R, t]`` -> 5-ms frames ``t * HOP_FRAMES`` long."""
        return self.codec.refine(rows)

    def _out(self, audio: np.ndarray) -> Iterator[np.ndarray]:
        """Synthesised audio -> what is yielded (post-filtered, held back by its delay, when on)."""
        if self.post is None:
            yield audio
            return
        out = self.post.push(audio)
        if len(out):
            yield out

    def push(self, codes: np.ndarray) -> Iterator[np.ndarray]:
        """Append codes ``[K, t]`` and yield the audio blocks that became complete."""
        codes = self._rows(codes)
        if self.post is None and self.postfilter_on:
            self.post = PostFilterStream(self.codec.postfilter, self.codec.postfilter_condition(codes.shape[0]))
        self.codes = codes if self.codes.size == 0 else np.concatenate([self.codes, codes], axis=1)
        while self.next + self.block + self.ahead <= self.start + self.codes.shape[1]:
            yield from self._out(self._block(self.next, self.next + self.block, None))

    def flush(self, n_samples: int | None = None) -> Iterator[np.ndarray]:
        """End of the stream: yield the rest, ``n_samples`` in all (default: every frame's hop)."""
        last = None  # held back one block, so that the post-filter's tail joins the last block
        for audio in self._rest(n_samples):
            if last is not None:
                yield from self._out(last)
            last = audio
        if self.post is None:
            if last is not None:
                yield last
            return
        out = self.post.push(last) if last is not None else np.zeros(0, np.float32)
        out = np.concatenate([out, self.post.flush()])
        if len(out):
            yield out

    def _rest(self, n_samples: int | None) -> Iterator[np.ndarray]:
        """The blocks left at the end of the stream (synthesised, before the post-filter)."""
        t = self.start + self.codes.shape[1]
        n_samples = t * self.codec.hop if n_samples is None else n_samples
        while self.next < t:
            yield self._block(self.next, min(t, self.next + self.block), n_samples)
        if self.emitted < n_samples:
            yield np.zeros(n_samples - self.emitted, np.float32)
            self.emitted = n_samples

    def _block(self, a: int, b: int, n_samples: int | None) -> np.ndarray:
        hop, t, keep = self.codec.hop, self.start + self.codes.shape[1], self.keep
        lo, hi = max(0, a - keep), min(t, b + self.ahead)
        fr = self._frames(self.codes[:, lo - self.start : hi - self.start])
        s_lo, s_hi = max(0, a - SYNTH_CONTEXT_TOKENS), min(t, b + SYNTH_CONTEXT_TOKENS)
        k0, k1 = (s_lo - lo) * HOP_FRAMES, (s_hi - lo) * HOP_FRAMES + 1
        wav = synthesize(fr.f0[k0:k1], fr.mcep[k0:k1], fr.bap[k0:k1])  # starts at sample s_lo * hop
        off = (a - s_lo) * hop
        end = b * hop if n_samples is None else min(b * hop, n_samples)
        n = max(0, end - a * hop)
        out = wav[off : off + n]
        out = np.pad(out, (0, n - len(out)))
        m = min(len(self.tail), len(out))
        if m:  # the previous block ran on past its end: crossfade that into this block's start
            out[:m] = self.tail[:m] * (1.0 - self.fade[:m]) + out[:m] * self.fade[:m]
        run_on = off + (b - a) * hop
        self.tail = wav[run_on : run_on + len(self.fade)]
        self.next, self.emitted = b, self.emitted + n
        drop = max(0, b - keep - self.start)  # frames no later block reads
        self.codes, self.start = self.codes[:, drop:], self.start + drop
        return out.astype(np.float32)



class FrameStreamDecoder(StreamDecoder):
    """Unquantised source-filter parameters in (e.g. an acoustic model's prediction), audio out, block by block,
    exactly as :class:`StreamDecoder` synthesises decoded codes (same blocks, context and crossfades; no refiner:
    the parameters are already what the refiner estimates). ``sub_frames`` frames arrive per token: 1 (token
    rate, interpolated to 5 ms), 2, or 4 (the 5-ms analysis rate itself, synthesised as they are). Built with
    :meth:`SourceFilterCodec.frame_stream_decoder`."""

    def __init__(self, codec: SourceFilterCodec, block_tokens: int = BLOCK_TOKENS, sub_frames: int = 1) -> None:
        super().__init__(codec, block_tokens, postfilter=False)
        if sub_frames not in (1, 2, 4) or HOP_FRAMES % sub_frames:
            raise SpeechLMError(f"sub_frames must divide {HOP_FRAMES}, got {sub_frames}")
        self.ahead = self.keep = SYNTH_CONTEXT_TOKENS
        self.sub = sub_frames
        self.n_mcep = 0

    def _rows(self, frames: Frames) -> np.ndarray:
        """``t * sub`` frames -> rows ``[sub * C, t]`` (a token's sub-frames stacked in one column)."""
        self.n_mcep = frames.mcep.shape[1]
        x = np.concatenate([np.asarray(frames.f0, np.float32)[:, None], np.asarray(frames.mcep, np.float32),
                            np.asarray(frames.bap, np.float32)], axis=1)
        if len(x) % self.sub:
            raise SpeechLMError(f"{len(x)} frames is not a whole number of tokens of {self.sub} sub-frames")
        return x.reshape(len(x) // self.sub, self.sub * x.shape[1]).T

    def _frames(self, rows: np.ndarray) -> Frames:
        m, t = self.n_mcep, rows.shape[1]
        x = rows.T.reshape(t * self.sub, -1)
        fr = Frames(x[:, 0], x[:, 1 : 1 + m], x[:, 1 + m :])
        if self.sub == HOP_FRAMES:
            return fr
        return to_analysis_rate(fr, HOP_FRAMES // self.sub, t * HOP_FRAMES)

    def push(self, frames: Frames) -> Iterator[np.ndarray]:  # type: ignore[override]
        """Append ``t * sub_frames`` :class:`Frames` and yield the audio blocks that became complete."""
        return super().push(frames)
