"""The HTTP server (speechlm.serve): OpenAI's audio API, limits, voices, metrics; the official openai client and a
headless Chromium against a real uvicorn server."""

from __future__ import annotations

import io
import json
import socket
import threading
import time

import numpy as np
import pytest
from conftest import require_module

require_module("fastapi", hint="pip install 'speechlm[serve]'")
require_module("uvicorn", hint="pip install 'speechlm[serve]'")
require_module("python_multipart", hint="pip install 'speechlm[serve]'")


@pytest.fixture(scope="module")
def tts():
    from speechlm.tasks.tts import TTS

    return TTS.load()


def _app(tts, tmp_path, **kw):
    from speechlm.serve.app import create_app
    from speechlm.serve.config import ServeConfig

    return create_app(ServeConfig(voices_dir=tmp_path / "voices", threads=1, **kw), tts)


@pytest.fixture()
def client(tts, tmp_path):
    from fastapi.testclient import TestClient

    with TestClient(_app(tts, tmp_path)) as c:
        yield c


def _wav_bytes(seconds: float, f0: float = 180.0, sr: int = 16000) -> bytes:
    import soundfile as sf

    t = np.arange(int(seconds * sr)) / sr
    x = 0.3 * np.sign(np.sin(2 * np.pi * f0 * t)) * (0.6 + 0.4 * np.sin(2 * np.pi * 3 * t) ** 2)
    buf = io.BytesIO()
    sf.write(buf, x.astype(np.float32), sr, format="WAV")
    return buf.getvalue()


def test_speech_in_every_format(client):
    import soundfile as sf

    for fmt in ("wav", "flac", "mp3", "opus", "pcm"):
        r = client.post("/v1/audio/speech", json={"input": "Hello there.", "voice": "alloy", "response_format": fmt})
        assert r.status_code == 200, (fmt, r.text)
        if fmt == "pcm":
            seconds = len(r.content) / 2 / 24000
        elif fmt in ("wav", "flac"):
            wav, sr = sf.read(io.BytesIO(r.content))
            seconds = len(wav) / sr
        else:
            assert len(r.content) > 1000 and r.headers["content-type"].startswith("audio/")
            continue
        assert 0.5 < seconds < 3.0, (fmt, seconds)


def test_other_languages_speak_with_the_multilingual_model(client):
    """``language`` (an extension of OpenAI's schema): Italian comes from tts_multilingual in the asked voice, a
    language no model speaks and an unknown code are one JSON error each."""
    import soundfile as sf

    def speak(**kw):
        return client.post("/v1/audio/speech", json={"input": "Buongiorno a tutti.", "response_format": "wav", **kw})

    r = speak(language="it")
    assert r.status_code == 200, r.text
    wav, sr = sf.read(io.BytesIO(r.content))
    assert 0.5 < len(wav) / sr < 4.0 and np.sqrt(np.mean(wav**2)) > 0.01
    deep = speak(language="it", voice="onyx")
    assert deep.status_code == 200 and deep.content != r.content
    for lang, code in (("de", "unsupported_language"), ("xx-nope", "invalid_language")):
        bad = speak(language=lang)
        assert bad.status_code == 422 and bad.json()["error"]["code"] == code, bad.text


def test_speed_and_voices_change_the_audio(client):
    def seconds(**kw):
        r = client.post("/v1/audio/speech", json={"input": "The weather is nice today.", "response_format": "pcm",
                                                  **kw})
        assert r.status_code == 200, r.text
        return len(r.content) / 2 / 24000, r.content

    normal, a = seconds()
    fast, _ = seconds(speed=1.5)
    assert fast < 0.8 * normal
    _, b = seconds(voice="nova")
    assert a != b


def test_instructions_are_a_style_description(client):
    """OpenAI's ``instructions`` set the style (speechlm tts --description): a woman's voice is higher."""
    import soundfile as sf

    from speechlm.pipeline.tags import pitch_mean_hz

    def pitch(body: dict) -> float:
        r = client.post("/v1/audio/speech", json={"input": "The weather will be sunny tomorrow.",
                                                   "response_format": "wav", **body})
        assert r.status_code == 200, r.text
        wav, sr = sf.read(io.BytesIO(r.content), dtype="float32")
        return pitch_mean_hz(wav, sr)

    assert pitch({}) < 200 < 235 < pitch({"instructions": "A woman speaks in a high voice."})
    assert client.post("/v1/audio/speech", json={"input": "Hi.", "voice": "nova",  # beside a voice: pace, room
                                                 "instructions": "slowly, with a little echo"}).status_code == 200


def test_sse_stream_carries_base64_audio(client):
    r = client.post("/v1/audio/speech", json={"input": "Hi there.", "response_format": "pcm", "stream_format": "sse"})
    events = [json.loads(line[6:]) for line in r.text.splitlines() if line.startswith("data: ")]
    assert events[-1]["type"] == "speech.audio.done"
    import base64

    audio = b"".join(base64.b64decode(e["audio"]) for e in events[:-1])
    assert len(audio) / 2 / 24000 > 0.3


@pytest.mark.parametrize("body,status,code", [
    ({"input": ""}, 422, "invalid_input"),
    ({"input": "x" * 4097}, 422, "input_too_long"),
    ({"input": "bad\x07bell"}, 422, "invalid_input"),
    ({"input": "hi", "voice": "nobody"}, 404, "voice_not_found"),
    ({"input": "hi", "model": "tts-9"}, 404, "model_not_found"),
    ({"input": "hi", "response_format": "xyz"}, 422, "invalid_request"),
    ({"input": "hi", "speed": 9}, 422, "invalid_request"),
    ({"input": "hi", "instructions": "sadly and angrily"}, 422, "invalid_instructions"),
    ({"input": "hi", "instructions": "a deep voice", "voice": "nova"}, 422, "invalid_instructions"),
    ({"input": "hi", "instructions": "quickly", "speed": 1.5}, 422, "invalid_instructions"),
    ({"input": "?!..."}, 422, "invalid_input"),
])
def test_bad_requests_get_json_errors(client, body, status, code):
    r = client.post("/v1/audio/speech", json=body)
    assert r.status_code == status, r.text
    assert r.json()["error"]["code"] == code


def test_body_cap_and_queue_limit(tts, tmp_path):
    from fastapi.testclient import TestClient

    with TestClient(_app(tts, tmp_path, max_body_bytes=1000)) as c:
        r = c.post("/v1/audio/speech", content=b"{" + b" " * 5000 + b"}", headers={"content-type": "application/json"})
        assert r.status_code == 413 and r.json()["error"]["code"] == "request_too_large"
    app = _app(tts, tmp_path, workers=1, queue=0)
    with TestClient(app) as c:
        app.state.slots.held = 1  # one request running, none may wait
        r = c.post("/v1/audio/speech", json={"input": "hi"})
        assert r.status_code == 429 and r.headers["retry-after"] == "1"
        app.state.slots.held = 0
        assert c.post("/v1/audio/speech", json={"input": "hi", "response_format": "wav"}).status_code == 200
        m = c.get("/metrics").text
        assert 'speechlm_rejections_total{reason="busy"} 1' in m and "speechlm_first_audio_seconds_count 1" in m


def test_api_key_is_required_when_set(tts, tmp_path):
    from fastapi.testclient import TestClient

    with TestClient(_app(tts, tmp_path, api_key="secret-key-123")) as c:
        assert c.get("/v1/models").status_code == 401
        assert c.get("/v1/models", headers={"Authorization": "Bearer wrong-key-000"}).status_code == 401
        assert c.get("/v1/models", headers={"Authorization": "Bearer secret-key-123"}).status_code == 200
        assert c.get("/health").status_code == 200


def test_voices_are_stored_used_and_deleted(client, tmp_path):
    r = client.post("/v1/voices", files={"file": ("v.wav", _wav_bytes(3.0, 220.0), "audio/wav")},
                    data={"name": "test voice"})
    assert r.status_code == 201, r.text
    vid = r.json()["id"]
    assert (tmp_path / "voices" / vid / "voice.json").is_file()
    assert vid in [v["id"] for v in client.get("/v1/voices").json()["data"]]
    r = client.post("/v1/audio/speech", json={"input": "Hello.", "voice": vid, "response_format": "wav"})
    assert r.status_code == 200
    assert client.delete(f"/v1/voices/{vid}").json()["deleted"] is True
    assert client.delete(f"/v1/voices/{vid}").status_code == 404
    assert client.delete("/v1/voices/..%2F..%2Fetc").status_code == 404
    bad = client.post("/v1/voices", files={"file": ("x.wav", b"not audio at all", "audio/wav")})
    assert bad.status_code == 422 and bad.json()["error"]["code"] == "invalid_audio"
    short = client.post("/v1/voices", files={"file": ("x.wav", _wav_bytes(2.0), "audio/wav")})
    assert short.status_code == 422 and short.json()["error"]["code"] == "audio_too_short"
    long = client.post("/v1/voices", files={"file": ("x.wav", _wav_bytes(25.0), "audio/wav")})
    assert long.status_code == 422 and long.json()["error"]["code"] == "audio_too_long"


def test_transcriptions_in_openai_schema(client):
    r = client.post("/v1/audio/speech", json={"input": "Please leave a message after the tone.",
                                              "response_format": "wav"})
    for model in ("whisper-1", "asr_default"):
        t = client.post("/v1/audio/transcriptions", files={"file": ("s.wav", r.content, "audio/wav")},
                        data={"model": model})
        assert t.status_code == 200, t.text
        assert "message" in t.json()["text"].lower() or model == "asr_default"
        assert isinstance(t.json()["text"], str)
    bad = client.post("/v1/audio/transcriptions", files={"file": ("s.wav", r.content, "audio/wav")},
                      data={"model": "nope"})
    assert bad.status_code == 404


def test_models_health_page(client):
    assert "tts-1" in [m["id"] for m in client.get("/v1/models").json()["data"]]
    health = client.get("/health").json()
    assert health["status"] == "ok" and {"en", "it", "fr"} <= set(health["languages"])
    page = client.get("/")
    assert page.status_code == 200 and "/v1/audio/speech" in page.text
    assert client.get("/nowhere").json()["error"]["code"] == "not_found"


@pytest.fixture(scope="module")
def server(tts, tmp_path_factory):
    """A real uvicorn server on a free local port, in a thread."""
    import uvicorn

    from speechlm.serve.app import create_app
    from speechlm.serve.config import ServeConfig

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    app = create_app(ServeConfig(api_key="test-key-123456", threads=1,
                                 voices_dir=tmp_path_factory.mktemp("voices")), tts)
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    t = threading.Thread(target=srv.run, daemon=True)
    t.start()
    for _ in range(100):
        if srv.started:
            break
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    srv.should_exit = True
    t.join(10)


def test_official_openai_client_speaks_and_streams(server):
    require_module("openai", hint="pip install openai (scripts/setup.sh --dev)")
    from openai import OpenAI

    client = OpenAI(base_url=f"{server}/v1", api_key="test-key-123456")
    audio = client.audio.speech.create(model="tts-1", voice="alloy", input="Hello from the client.",
                                       response_format="wav")
    import soundfile as sf

    wav, sr = sf.read(io.BytesIO(audio.content))
    assert sr == 16000 and 0.8 < len(wav) / sr < 4
    chunks = []
    with client.audio.speech.with_streaming_response.create(model="tts-1", voice="nova", response_format="mp3",
                                                            input="First sentence. And the second one.") as r:
        for chunk in r.iter_bytes(4096):
            chunks.append(chunk)
    assert len(chunks) > 1 and sum(map(len, chunks)) > 5000


def test_page_speaks_in_headless_chromium(server, tmp_path):
    from conftest import require_tool

    require_module("selenium", hint="pip install selenium (scripts/setup.sh --dev)")
    browser = require_tool("chromium", "chromium-browser", hint="apt-get install chromium")
    driver_path = require_tool("chromedriver", hint="apt-get install chromium-driver")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    opts = webdriver.ChromeOptions()
    opts.binary_location = browser
    for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
              "--autoplay-policy=no-user-gesture-required", f"--user-data-dir={tmp_path / 'profile'}"):
        opts.add_argument(a)
    drv = webdriver.Chrome(service=Service(driver_path), options=opts)
    try:
        drv.get(server + "/")
        drv.find_element(By.ID, "key").send_keys("test-key-123456")
        text = drv.find_element(By.ID, "text")
        text.clear()
        text.send_keys("Good morning. The page speaks.")
        drv.find_element(By.ID, "speak").click()
        WebDriverWait(drv, 60).until(lambda d: d.execute_script("return document.body.dataset.lastDuration"))
        WebDriverWait(drv, 30).until(lambda d: d.execute_script(
            "const a = document.getElementById('player'); return a.readyState >= 1 && isFinite(a.duration)"))
        duration = drv.execute_script("return document.getElementById('player').duration")
        assert 1.2 < duration < 5.0, duration
        assert "first audio after" in drv.find_element(By.ID, "status").text
        from selenium.webdriver.support.ui import Select

        lang = Select(drv.find_element(By.ID, "lang"))  # the languages of /health, English first
        assert lang.options[0].text == "en" and "it" in [o.text for o in lang.options]

        def speak(words: str, wait_s: float) -> float:
            """Type ``words``, press Speak, wait for the page's last duration; it must not be an error."""
            drv.execute_script("document.body.dataset.lastDuration = ''")
            text.clear()
            text.send_keys(words)
            drv.find_element(By.ID, "speak").click()
            WebDriverWait(drv, wait_s).until(lambda d: d.execute_script("return document.body.dataset.lastDuration"))
            assert "err" not in drv.find_element(By.ID, "status").get_attribute("class")
            return float(drv.execute_script("return document.body.dataset.lastDuration"))

        lang.select_by_value("it")
        assert 0.5 < speak("Buongiorno a tutti.", 120) < 4.0
        lang.select_by_value("en")  # a style description: the same sentence, slower
        drv.find_element(By.ID, "style").send_keys("Someone speaks slowly.")
        assert speak("Good morning. The page speaks.", 60) > 1.15 * duration
        drv.save_screenshot(str(tmp_path / "serve_page.png"))
    finally:
        drv.quit()


def test_timeout_is_a_json_504(tts, tmp_path):
    from fastapi.testclient import TestClient

    app = _app(tts, tmp_path, timeout_s=1e-6)
    with TestClient(app) as c:
        r = c.post("/v1/audio/speech", json={"input": "This takes longer than a microsecond."})
        assert r.status_code == 504 and r.json()["error"]["code"] == "timeout"
        assert app.state.slots.held == 0  # the worker is free again


def test_a_client_that_leaves_mid_stream_frees_its_worker(server):
    import http.client
    import urllib.request
    from urllib.parse import urlparse

    text = " ".join(["This is a long text that keeps the server busy for a while."] * 20)
    u = urlparse(server)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=60)
    conn.request("POST", "/v1/audio/speech", body=json.dumps({"input": text, "response_format": "pcm"}),
                 headers={"Authorization": "Bearer test-key-123456", "Content-Type": "application/json"})
    r = conn.getresponse()
    assert r.status == 200 and len(r.read1(1024)) > 0  # first audio, then hang up
    conn.sock.close()
    conn.close()
    for _ in range(100):
        with urllib.request.urlopen(f"{server}/health") as resp:
            h = json.loads(resp.read())
        if h["in_flight"] == 0:
            break
        time.sleep(0.1)
    assert h["in_flight"] == 0
    with urllib.request.urlopen(f"{server}/metrics") as resp:  # stopped because it left, not because it ended
        assert 'speechlm_rejections_total{reason="disconnected"} 1' in resp.read().decode()
