"""The FastAPI application: OpenAI's audio API over speechlm's TTS, editing and recognition, and a web page.

Endpoints (JSON errors ``{"error": {"message", "type", "code"}}`` everywhere, never a traceback):

- ``POST /v1/audio/speech``: OpenAI's schema (``model``, ``input``, ``voice``, ``response_format``, ``speed``,
  ``instructions``, ``stream_format``), plus ``language`` (default ``en``; ``cs``/``es``/``fr``/``it``/``nl`` are
  spoken by ``tts_multilingual``, loaded on first use; the voices shift its voice for that language). The audio is
  sent as it is made (chunked; ``stream_format: "sse"`` gives base64 deltas as server-sent events).
  ``instructions``: a style description (``speechlm tts --description``: gender, pitch, pitch range, pace, a
  whisper, background noise, room echo; :mod:`speechlm.tasks.tts_style`); beside a voice other than
  ``default`` not gender, pitch or range; one that sets nothing it can realise is refused (422), as is one that
  contradicts the voice or ``speed``.
- ``GET /v1/models``; ``GET/POST /v1/voices``, ``DELETE /v1/voices/{id}``; ``POST /v1/audio/transcriptions``
  (Whisper base, OpenAI's schema); ``POST /v1/audio/edit`` (audio + transcript + target -> edited audio).
- ``GET /health``, ``GET /metrics`` (Prometheus), ``GET /`` (the page).

Limits (:class:`~speechlm.serve.config.ServeConfig`): input up to ``max_chars`` characters, no control
characters; request bodies over ``max_body_bytes`` -> 413; more requests than ``workers`` running plus ``queue``
waiting -> 429 with ``Retry-After`` at once; generation past ``timeout_s`` -> 504; a client that disconnects
mid-stream stops its generation at the next block and frees its worker.
"""

from __future__ import annotations

import asyncio
import base64
import hmac
import io
import json
import threading
import time
import unicodedata
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

import numpy as np
from fastapi import FastAPI, File, Form, Request, UploadFile
from pydantic import BaseModel, Field

from speechlm.safety.provenance import sha256_hex, sign_wav_bytes
from speechlm.safety.watermark import MIN_MARK_S, embed, make_payload, widen
from speechlm.serve.config import ServeConfig
from speechlm.serve.formats import FORMATS, MEDIA_TYPES, encode, stream
from speechlm.serve.metrics import Metrics
from speechlm.serve.voices import OPENAI_VOICES, PRESETS, VoiceStore, preset_shift

MODEL_ALIASES = ("tts_duration", "default", "tts-1", "tts-1-hd", "gpt-4o-mini-tts")
ASR_ALIASES = ("whisper-1", "whisper-base", "gpt-4o-transcribe", "gpt-4o-mini-transcribe", "asr_default")
PAGE = Path(__file__).with_name("page.html")
MIN_VOICE_S = 3.0  # a stored voice: 3-20 s of speech


class SpeechRequest(BaseModel):
    """OpenAI's ``POST /v1/audio/speech`` body."""

    model: str = "tts-1"
    input: str
    voice: str = "default"
    response_format: Literal["mp3", "opus", "wav", "flac", "pcm", "aac"] = "mp3"
    speed: float = Field(1.0, ge=0.25, le=4.0)
    instructions: str | None = None
    stream_format: Literal["audio", "sse"] = "audio"
    language: str = "en"  # not in OpenAI's schema: cs, es, fr, it, nl speak with the shipped tts_multilingual


class ApiError(Exception):
    def __init__(self, status: int, message: str, code: str, headers: dict | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.code, self.headers = status, message, code, headers or {}


class Slots:
    """``workers`` syntheses at once, ``queue`` more waiting; beyond that a request is refused immediately."""

    def __init__(self, workers: int, queue: int, metrics: Metrics) -> None:
        self.sem = asyncio.Semaphore(workers)
        self.limit = workers + queue
        self.metrics = metrics
        self.held = 0  # running + waiting

    async def acquire(self) -> None:
        if self.held >= self.limit:
            self.metrics.reject("busy")
            raise ApiError(429, "the server is busy: too many requests at once; retry shortly", "rate_limited",
                           {"Retry-After": "1"})
        self.held += 1
        self.metrics.waiting += 1
        try:
            await self.sem.acquire()
        except BaseException:
            self.held -= 1
            raise
        finally:
            self.metrics.waiting -= 1
        self.metrics.in_flight += 1

    def release(self) -> None:
        self.metrics.in_flight -= 1
        self.held -= 1
        self.sem.release()


def check_text(text: str, max_chars: int) -> str:
    if not isinstance(text, str) or not text.strip():
        raise ApiError(422, "input is empty", "invalid_input")
    if len(text) > max_chars:
        raise ApiError(422, f"input has {len(text)} characters; the limit is {max_chars}", "input_too_long")
    bad = [c for c in text if unicodedata.category(c) in ("Cc", "Cf", "Cs", "Co") and c not in "\n\t\r"]
    if bad:
        raise ApiError(422, f"input contains control characters (U+{ord(bad[0]):04X})", "invalid_input")
    return text


class BodyLimit:
    """ASGI middleware: a request body (chunked or not) over ``limit`` bytes is answered 413."""

    def __init__(self, app, limit: int, metrics: Metrics) -> None:
        self.app, self.limit, self.metrics = app, limit, metrics

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        seen = 0

        async def limited():
            nonlocal seen
            msg = await receive()
            if msg["type"] == "http.request":
                seen += len(msg.get("body", b""))
                if seen > self.limit:
                    from starlette.exceptions import HTTPException

                    self.metrics.reject("too_large")
                    raise HTTPException(413, f"request body over {self.limit} bytes")
            return msg

        return await self.app(scope, limited, send)


def marked(blocks: Iterator[np.ndarray], sr: int, payload: int) -> Iterator[np.ndarray]:
    """The blocks with the watermark, as :class:`~speechlm.safety.watermark.StreamMarker` releases them."""
    from speechlm.safety.watermark import StreamMarker

    m = StreamMarker(sr, payload)
    for b in blocks:
        out = m.push(b)
        if len(out):
            yield out
    out = m.flush()
    if len(out):
        yield out


def mark_header(payload: int | None) -> dict[str, str]:
    return {"X-Speechlm-Watermark": "none" if payload is None else str(payload)}


def create_app(cfg: ServeConfig, tts=None):
    """The app. ``tts``: a loaded :class:`~speechlm.tasks.tts_duration.DurationTTS` (default: load
    ``cfg.model``)."""
    import torch
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response, StreamingResponse
    from starlette.concurrency import iterate_in_threadpool, run_in_threadpool
    from starlette.exceptions import HTTPException as StarletteHTTPException

    from speechlm.errors import SpeechLMError
    from speechlm.tasks.tts_duration import MULTILINGUAL_LANGS, DurationTTS, PromptVoice
    from speechlm.tasks.tts_style import check_style

    torch.set_num_threads(cfg.threads)
    if tts is None:
        from speechlm.tasks.tts import TTS

        tts = TTS.load(cfg.model)
    if not isinstance(tts, DurationTTS):
        raise SpeechLMError("the server speaks with a duration-based TTS model (tts_duration); codec LMs are not "
                            "served")
    metrics = Metrics()
    slots = Slots(max(1, cfg.workers), max(0, cfg.queue), metrics)
    store = VoiceStore(cfg.voices_dir, cfg.max_voices)
    judge: dict[str, object] = {}
    app = FastAPI(title="speechlm", version="0.1.0", docs_url=None, redoc_url=None)

    def err(status: int, message: str, code: str, headers: dict | None = None) -> JSONResponse:
        kind = "invalid_request_error" if status < 500 else "server_error"
        return JSONResponse({"error": {"message": message, "type": kind, "code": code}}, status, headers=headers)

    @app.exception_handler(ApiError)
    async def _api_error(_req, exc: ApiError):
        return err(exc.status, exc.message, exc.code, exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(_req, exc: RequestValidationError):
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(x) for x in first.get("loc", ()) if x != "body")
        return err(422, f"{where}: {first.get('msg', 'invalid request')}", "invalid_request")

    @app.exception_handler(StarletteHTTPException)
    async def _http(_req, exc: StarletteHTTPException):
        code = {404: "not_found", 405: "method_not_allowed", 413: "request_too_large"}.get(exc.status_code,
                                                                                            "http_error")
        return err(exc.status_code, str(exc.detail), code)

    @app.exception_handler(Exception)
    async def _crash(_req, exc: Exception):
        return err(500, f"internal error ({type(exc).__name__})", "internal_error")

    @app.middleware("http")
    async def _guard(request: Request, call_next):
        t0 = time.perf_counter()
        path = request.url.path
        length = request.headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > cfg.max_body_bytes:
            metrics.reject("too_large")
            resp = err(413, f"request body over {cfg.max_body_bytes} bytes", "request_too_large")
        elif cfg.api_key and path.startswith("/v1/") and not _authorised(request, cfg.api_key):
            metrics.reject("unauthorised")
            resp = err(401, "missing or wrong API key (Authorization: Bearer KEY)", "invalid_api_key")
        else:
            resp = await call_next(request)
        if not isinstance(resp, StreamingResponse) or path == "/metrics":
            metrics.observe(path if path in KNOWN_PATHS else "other", resp.status_code, time.perf_counter() - t0)
        return resp

    # --- speech ------------------------------------------------------------------------------------
    others: dict[str, DurationTTS] = {}  # language -> the model that speaks it, when not the served one
    others_lock = threading.Lock()

    def model_for(lang: str) -> DurationTTS:
        """The served model, or for a language only the shipped multilingual model speaks, that one (loaded once)."""
        from speechlm.tasks.tts_duration import default_model_for
        from speechlm.text.g2p import resolve_lang

        try:
            code = resolve_lang(lang)
        except SpeechLMError as exc:
            raise ApiError(422, str(exc), "invalid_language") from None
        if code in tts.am.langs:
            return tts
        name = default_model_for(None, code)
        if name is None:
            raise ApiError(422, f"language {lang!r} is not spoken here (languages: "
                           f"{', '.join(sorted({*tts.am.langs, *MULTILINGUAL_LANGS}))})", "unsupported_language")
        with others_lock:
            if name not in others:
                others[name] = DurationTTS.load(name)
            return others[name]

    def resolve_voice(name: str, model: DurationTTS, lang: str):
        base = model.am.voice_of(lang)
        if name in PRESETS or name in OPENAI_VOICES:
            return preset_shift(base, OPENAI_VOICES.get(name, name))
        shift = store.shift(name, base)
        if shift is None:
            raise ApiError(404, f"unknown voice {name!r} (presets: {', '.join(PRESETS)}; OpenAI names; or an id "
                           "from GET /v1/voices)", "voice_not_found")
        return shift

    @app.post("/v1/audio/speech")
    async def speech(req: SpeechRequest, request: Request):
        t0 = time.perf_counter()
        if req.model not in MODEL_ALIASES:
            raise ApiError(404, f"unknown model {req.model!r} (models: {', '.join(MODEL_ALIASES)})", "model_not_found")
        if req.response_format == "aac":
            raise ApiError(422, f"response_format aac is not supported ({', '.join(FORMATS)})", "unsupported_format")
        text = check_text(req.input, cfg.max_chars)
        model = await run_in_threadpool(model_for, req.language)
        shift = resolve_voice(req.voice, model, req.language)
        pace = 1.0 / req.speed
        style = None
        if req.instructions:  # a style description (speechlm.tasks.tts_style); with a voice other than the
            try:  # default, not its gender, pitch or range
                style = check_style(req.instructions, None if shift is None else f"voice {req.voice!r}", pace)
            except SpeechLMError as exc:
                raise ApiError(422, str(exc), "invalid_instructions") from None
        try:
            chunks = model.text_chunks(text, req.language, cfg.max_chars)
        except SpeechLMError as exc:
            raise ApiError(422, str(exc), "invalid_input") from None
        await slots.acquire()
        stop = threading.Event()
        deadline = time.monotonic() + cfg.timeout_s

        def blocks() -> Iterator[np.ndarray]:
            # the description's pace and range need a model pass: in the worker, inside the slot and the timeout
            voice, p, room = model.apply_style(style, chunks, None if shift is None else PromptVoice(shift), pace,
                                               req.language)
            for b in model.stream_chunks(chunks, voice, p, lang=req.language, room=room):
                if time.monotonic() > deadline:
                    metrics.reject("timeout")
                    raise TimeoutError
                if stop.is_set():
                    return
                yield b

        payload = make_payload("serve") if cfg.watermark else None
        byte_iter = stream(blocks() if payload is None else marked(blocks(), tts.sample_rate, payload),
                           tts.sample_rate, req.response_format, stop)
        try:  # the first bytes before the response starts: a timeout or failure can still be a JSON error
            head = await run_in_threadpool(next, byte_iter, b"")
        except TimeoutError:
            stop.set()
            slots.release()
            raise ApiError(504, f"generation took over {cfg.timeout_s:g} s", "timeout") from None
        except BaseException:
            stop.set()
            slots.release()
            raise
        metrics.observe_first_audio(time.perf_counter() - t0)

        def frame(chunk: bytes) -> bytes:
            if req.stream_format != "sse":
                return chunk
            ev = {"type": "speech.audio.delta", "audio": base64.b64encode(chunk).decode()}
            return f"data: {json.dumps(ev)}\n\n".encode()

        async def body():
            status = 200
            try:
                if head:
                    yield frame(head)
                async for chunk in iterate_in_threadpool(byte_iter):
                    if await request.is_disconnected():
                        metrics.reject("disconnected")
                        break
                    yield frame(chunk)
                if req.stream_format == "sse":
                    yield b'data: {"type": "speech.audio.done"}\n\n'
            except TimeoutError:
                status = 504  # headers are gone: the stream ends early; the metric records it
            except (asyncio.CancelledError, GeneratorExit):  # the client went away: stop generating
                metrics.reject("disconnected")
                status = 499
                raise
            finally:
                stop.set()
                slots.release()
                metrics.observe("/v1/audio/speech", status, time.perf_counter() - t0)

        media = "text/event-stream" if req.stream_format == "sse" else MEDIA_TYPES[req.response_format]
        return StreamingResponse(body(), media_type=media, headers=mark_header(payload))

    # --- models and voices -------------------------------------------------------------------------
    @app.get("/v1/models")
    async def models():
        return {"object": "list", "data": [{"id": m, "object": "model", "owned_by": "speechlm",
                                            "root": tts.am.model_id} for m in MODEL_ALIASES]}

    @app.get("/v1/voices")
    async def list_voices():
        presets = [{"id": n, "name": n, "kind": "preset"} for n in PRESETS]
        aliases = [{"id": n, "name": f"{n} ({v})", "kind": "openai"} for n, v in OPENAI_VOICES.items()]
        stored = [{**v, "kind": "stored"} for v in store.list()]
        return {"object": "list", "data": presets + aliases + stored}

    async def read_audio(file: UploadFile, max_s: float) -> tuple[np.ndarray, int]:
        import soundfile as sf

        data = await file.read()
        if not data:
            raise ApiError(422, "the uploaded file is empty", "invalid_audio")
        try:
            info = sf.info(io.BytesIO(data))
            if info.duration > max_s:
                raise ApiError(422, f"the audio is {info.duration:.1f} s long; at most {max_s:g} s", "audio_too_long")
            wav, sr = sf.read(io.BytesIO(data), dtype="float32", always_2d=True)
        except ApiError:
            raise
        except Exception:  # noqa: BLE001 - anything soundfile cannot read is not audio we take
            raise ApiError(422, "the upload is not audio we can read (WAV, FLAC or Ogg)", "invalid_audio") from None
        return wav.mean(1), sr

    @app.post("/v1/voices", status_code=201)
    async def add_voice(file: UploadFile = File(...), name: str = Form("voice"), transcript: str = Form("")):
        from speechlm.tasks.tts import MAX_PROMPT_S

        wav, sr = await read_audio(file, MAX_PROMPT_S)
        if len(wav) < MIN_VOICE_S * sr:
            raise ApiError(422, f"a voice needs {MIN_VOICE_S:g}-{MAX_PROMPT_S:g} s of speech, got "
                           f"{len(wav) / sr:.1f} s", "audio_too_short")
        name = check_text(name, 100)
        try:
            shift = await run_in_threadpool(tts.voice_shift, wav, sr)
            return store.add(wav, sr, shift, name, transcript[:1000])
        except (SpeechLMError, ValueError) as exc:
            raise ApiError(422, str(exc), "invalid_voice") from None

    @app.delete("/v1/voices/{voice_id}")
    async def delete_voice(voice_id: str):
        if not store.delete(voice_id):
            raise ApiError(404, f"no stored voice {voice_id!r}", "voice_not_found")
        return {"id": voice_id, "object": "voice", "deleted": True}

    # --- recognition and editing -------------------------------------------------------------------
    @app.post("/v1/audio/transcriptions")
    async def transcriptions(file: UploadFile = File(...), model: str = Form("whisper-1"),
                             language: str | None = Form(None), response_format: str = Form("json")):
        if model not in ASR_ALIASES:
            raise ApiError(404, f"unknown model {model!r} (models: {', '.join(ASR_ALIASES)})", "model_not_found")
        if response_format not in ("json", "text"):
            raise ApiError(422, "response_format must be json or text", "unsupported_format")
        wav, sr = await read_audio(file, cfg.max_upload_s)
        await slots.acquire()
        try:
            if model == "asr_default":  # the project's own CTC recogniser (an aligner more than a recogniser)
                if "ctc" not in judge:
                    from speechlm.asr.transcriber import get_transcriber

                    judge["ctc"] = await run_in_threadpool(get_transcriber)
                text = await run_in_threadpool(judge["ctc"].transcribe, wav, sr)
            else:
                if "whisper" not in judge:
                    from speechlm.eval.whisper import WhisperJudge

                    judge["whisper"] = await run_in_threadpool(WhisperJudge.load, "base")
                text = await run_in_threadpool(judge["whisper"].transcribe, wav, sr, language)
        except SpeechLMError as exc:
            raise ApiError(422, str(exc), "invalid_audio") from None
        finally:
            slots.release()
        return PlainTextResponse(text) if response_format == "text" else {"text": text}

    @app.post("/v1/audio/edit")
    async def edit(file: UploadFile = File(...), transcript: str = Form(...), target: str = Form(...),
                   response_format: str = Form("wav")):
        from speechlm.tasks.edit import MAX_EDIT_S, edit_duration

        if response_format not in FORMATS:
            raise ApiError(422, f"response_format must be one of {', '.join(FORMATS)}", "unsupported_format")
        check_text(transcript, cfg.max_chars)
        check_text(target, cfg.max_chars)
        wav, sr = await read_audio(file, MAX_EDIT_S)
        await slots.acquire()
        try:
            res = await asyncio.wait_for(run_in_threadpool(edit_duration, tts, wav, sr, transcript, target),
                                         cfg.timeout_s)
        except SpeechLMError as exc:
            raise ApiError(422, str(exc), "invalid_edit") from None
        except TimeoutError:
            raise ApiError(504, f"the edit took over {cfg.timeout_s:g} s", "timeout") from None
        finally:
            slots.release()
        wav, payload = res.wav, None
        if cfg.watermark:  # only the regenerated spans, widened to what the detector needs (as `speechlm edit`)
            payload = make_payload("edit")
            spans = widen([(a / res.sample_rate, b / res.sample_rate) for a, b in res.out_spans], MIN_MARK_S,
                          len(wav) / res.sample_rate)
            wav = await run_in_threadpool(embed, res.wav, res.sample_rate, payload, spans)
        data = encode(wav, res.sample_rate, response_format)
        if cfg.sign and response_format == "wav":  # marked first: the signature covers the marked samples
            data = await run_in_threadpool(sign_wav_bytes, data, {
                "model": tts.am.model_id, "tokenizer": tts.codec.tokenizer_id, "text_sha256": sha256_hex(target),
                "prompt_audio_sha256": None, "watermarked": payload is not None, "watermark_payload": payload})
        return Response(data, media_type=MEDIA_TYPES[response_format], headers=mark_header(payload))

    # --- operations ---------------------------------------------------------------------------------
    @app.get("/health")
    async def health():
        return {"status": "ok", "model": tts.am.model_id, "in_flight": metrics.in_flight,
                "queue_depth": metrics.waiting, "languages": sorted({*tts.am.langs, *MULTILINGUAL_LANGS})}

    @app.get("/metrics")
    async def prometheus():
        return PlainTextResponse(metrics.render(), media_type="text/plain; version=0.0.4")

    @app.get("/")
    async def page():
        return HTMLResponse(PAGE.read_text(encoding="utf-8"))

    app.add_middleware(BodyLimit, limit=cfg.max_body_bytes, metrics=metrics)
    KNOWN_PATHS = {r.path for r in app.routes}
    app.state.metrics, app.state.slots, app.state.store = metrics, slots, store
    return app


def _authorised(request, key: str) -> bool:
    got = request.headers.get("authorization", "")
    token = got[7:] if got.lower().startswith("bearer ") else ""
    return hmac.compare_digest(token.encode(), key.encode())
