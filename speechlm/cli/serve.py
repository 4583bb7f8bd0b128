"""``speechlm serve``: the OpenAI-compatible HTTP API and web page (:mod:`speechlm.serve`)."""

from __future__ import annotations

import argparse

from speechlm.cli._common import add_command

LOCAL = ("127.0.0.1", "localhost", "::1")


def register(sub: argparse._SubParsersAction) -> None:
    p = add_command(
        sub, "serve", "serve TTS, editing and recognition over HTTP (OpenAI's audio API) with a web page", _serve,
        description="An OpenAI-compatible server: POST /v1/audio/speech (streamed), /v1/audio/transcriptions, "
        "/v1/audio/edit, /v1/voices, /v1/models, /health, /metrics, and a web page at /. It binds 127.0.0.1; "
        "another address needs --api-key-file (clients send 'Authorization: Bearer KEY') or an explicit "
        "--insecure.\n\n"
        "  speechlm serve                       # http://127.0.0.1:8000/\n"
        "  speechlm serve --host 0.0.0.0 --api-key-file key.txt --workers 2")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    p.add_argument("--workers", type=int, default=1, help="syntheses run at once (default 1)")
    p.add_argument("--queue", type=int, default=4, help="requests that may wait for a worker; more get 429 (default 4)")
    p.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    p.add_argument("--api-key-file", default=None, help="file holding the API key clients must send")
    p.add_argument("--insecure", action="store_true", help="allow a non-local address without an API key")
    p.add_argument("--model", default=None, help="TTS model: 'default' (tts_duration), an asset name or a folder")
    p.add_argument("--voices-dir", default=None, help="where uploaded voices are kept (default ~/.local/share/"
                   "speechlm/voices)")
    p.add_argument("--timeout", type=float, default=120.0, help="per-request generation budget in seconds")
    p.add_argument("--no-watermark", action="store_true",
                   help="research only: do not watermark responses (the X-Speechlm-Watermark header says 'none')")
    p.add_argument("--no-sign", action="store_true",
                   help="do not add the signed provenance manifest to whole WAV responses (/v1/audio/edit)")


def _serve(args: argparse.Namespace) -> int:
    from pathlib import Path

    from speechlm.cli._common import check_input_file
    from speechlm.errors import MissingDependencyError, SpeechLMError

    if not 0 < args.port < 65536:
        raise SpeechLMError(f"--port must be 1-65535, got {args.port}")
    if args.workers < 1 or args.queue < 0 or args.threads < 1 or args.timeout <= 0:
        raise SpeechLMError("--workers and --threads must be >= 1, --queue >= 0, --timeout > 0")
    key = None
    if args.api_key_file:
        check_input_file(args.api_key_file, "--api-key-file")
        key = Path(args.api_key_file).read_text(encoding="utf-8").strip()
        if len(key) < 8:
            raise SpeechLMError("the API key must be at least 8 characters")
    if args.host not in LOCAL and key is None and not args.insecure:
        raise SpeechLMError(f"binding {args.host} exposes the server: give --api-key-file (or --insecure)")
    try:
        import uvicorn
    except ImportError:
        raise MissingDependencyError("speechlm serve needs the serve extra: pip install 'speechlm[serve]'") from None
    from speechlm.serve.app import create_app
    from speechlm.serve.config import ServeConfig

    cfg = ServeConfig(model=args.model, api_key=key, workers=args.workers, queue=args.queue, threads=args.threads,
                      timeout_s=args.timeout, watermark=not args.no_watermark, sign=not args.no_sign)
    if args.voices_dir:
        cfg.voices_dir = Path(args.voices_dir)
    uvicorn.run(create_app(cfg), host=args.host, port=args.port, log_level="info")
    return 0
