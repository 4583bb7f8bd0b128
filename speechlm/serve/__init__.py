"""``speechlm serve``: an OpenAI-compatible HTTP API and a web page over the TTS, editing and recognition tasks.

Layout: :mod:`config` (limits and settings), :mod:`formats` (audio bytes in every response format, streaming
too), :mod:`voices` (presets and stored prompt voices), :mod:`metrics` (Prometheus text), :mod:`app` (the
FastAPI application), ``page.html`` (the web page at ``/``).
"""
