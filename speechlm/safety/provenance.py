"""Signed provenance of generated audio: a C2PA-like JSON manifest, signed with Ed25519, inside the WAV it describes.

``sign_file(path, fields)`` adds the manifest to a file speechlm just wrote; ``verify_file(path)`` checks it.

- WAV: the manifest and its signature go into a RIFF chunk ``slpv`` appended to the file. The manifest records the
  sha256 of the file *without* that chunk (the RIFF size field set accordingly), so one changed sample, one changed
  header byte, or a moved chunk breaks it; the verifier also requires the RIFF size field to match the file.
- Other formats: a sidecar ``FILE.provenance.json`` with the same content, the hash covering every byte of FILE.

The manifest (``format`` ``speechlm-provenance/1``): generator and version, model and tokenizer ids, creation time
(UTC), sha256 of the prompt audio and of the text, whether the audio is watermarked (and its payload; marked before
signing, so the signature covers the marked samples), the audio's rate, channels
and frames, the file hash, and the signer's public key (raw Ed25519, base64). The signature covers the canonical
JSON of the manifest (sorted keys, no spaces).

Keys: an Ed25519 key is created on first use in the user's config folder (``$SPEECHLM_CONFIG_DIR``, else
``$XDG_CONFIG_HOME/speechlm``, else ``~/.config/speechlm``) as ``provenance_ed25519.pem``, mode 0600, never
overwritten. :func:`public_key_pem` exports the public half; ``verify_file(..., trusted=PEM)`` requires that
signer (otherwise any valid signature verifies, and the signer's fingerprint is reported).
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import json
import os
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from speechlm.errors import MissingDependencyError, SpeechLMError

FORMAT = "speechlm-provenance/1"
CHUNK = b"slpv"
KEY_FILE = "provenance_ed25519.pem"
SIDECAR = ".provenance.json"


class ProvenanceError(SpeechLMError):
    """A file whose provenance is missing, malformed or does not verify."""


def _crypto():
    try:
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import ed25519
    except ImportError:
        raise MissingDependencyError("provenance needs cryptography: pip install cryptography") from None
    return serialization, ed25519


def config_dir() -> Path:
    if os.environ.get("SPEECHLM_CONFIG_DIR"):
        return Path(os.environ["SPEECHLM_CONFIG_DIR"])
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "speechlm"


def load_or_create_key(folder: Path | None = None):
    """The user's Ed25519 private key; created (0600, exclusively) on first use."""
    serialization, ed25519 = _crypto()
    path = (folder or config_dir()) / KEY_FILE
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        key = ed25519.Ed25519PrivateKey.generate()
        pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another process made it first: use theirs
            return load_or_create_key(folder)
        with os.fdopen(fd, "wb") as f:
            f.write(pem)
        return key
    if path.stat().st_mode & 0o077:
        raise ProvenanceError(f"{path} is readable by others; chmod 600 it")
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, ed25519.Ed25519PrivateKey):
        raise ProvenanceError(f"{path} is not an Ed25519 private key")
    return key


def _raw_public(key) -> bytes:
    serialization, _ = _crypto()
    return key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def public_key_pem(folder: Path | None = None) -> str:
    serialization, _ = _crypto()
    return load_or_create_key(folder).public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()


def fingerprint(raw_public: bytes) -> str:
    return hashlib.sha256(raw_public).hexdigest()[:16]


def sha256_hex(data: bytes | str) -> str:
    return hashlib.sha256(data.encode("utf-8") if isinstance(data, str) else data).hexdigest()


def _canonical(manifest: dict) -> bytes:
    return json.dumps(manifest, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


# ---- RIFF ------------------------------------------------------------------------------------------------------
def _chunks(data: bytes) -> list[tuple[bytes, int, int]]:
    """(id, start of the chunk header, end including padding) of every chunk of a RIFF/WAVE file."""
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise ProvenanceError("not a RIFF/WAVE file")
    out, pos = [], 12
    while pos + 8 <= len(data):
        cid = data[pos : pos + 4]
        size = struct.unpack("<I", data[pos + 4 : pos + 8])[0]
        end = pos + 8 + size + (size & 1)
        if end > len(data):
            raise ProvenanceError(f"chunk {cid!r} runs past the end of the file")
        out.append((cid, pos, end))
        pos = end
    if pos != len(data):
        raise ProvenanceError("trailing bytes after the last chunk")
    return out


def _without_chunk(data: bytes) -> tuple[bytes, bytes | None]:
    """(the WAV without its ``slpv`` chunk, RIFF size fixed; that chunk's payload or None)."""
    chunks = _chunks(data)
    if struct.unpack("<I", data[4:8])[0] != len(data) - 8:
        raise ProvenanceError("the RIFF size field does not match the file length")
    payload, body = None, bytearray(data[:12])
    for cid, a, b in chunks:
        if cid == CHUNK:
            if payload is not None:
                raise ProvenanceError("more than one provenance chunk")
            size = struct.unpack("<I", data[a + 4 : a + 8])[0]
            payload = data[a + 8 : a + 8 + size]
        else:
            body += data[a:b]
    body[4:8] = struct.pack("<I", len(body) - 8)
    return bytes(body), payload


# ---- sign and verify -------------------------------------------------------------------------------------------
def make_manifest(fields: dict[str, Any], file_sha256: str, audio: dict[str, Any], raw_public: bytes) -> dict:
    import speechlm

    return {"format": FORMAT, "generator": f"speechlm {speechlm.__version__}",
            "created": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "model": fields.get("model"), "tokenizer": fields.get("tokenizer"),
            "prompt_audio_sha256": fields.get("prompt_audio_sha256"), "text_sha256": fields.get("text_sha256"),
            "watermarked": bool(fields.get("watermarked", False)),
            "watermark_payload": fields.get("watermark_payload"), "audio": audio, "file_sha256": file_sha256,
            "public_key": base64.b64encode(raw_public).decode()}


def sign_file(path: str | os.PathLike, fields: dict[str, Any], key=None) -> dict:
    """Add a signed manifest to ``path`` (a WAV gets the chunk, rewritten atomically; others a sidecar).

    ``fields``: ``model``, ``tokenizer``, ``text_sha256``, ``prompt_audio_sha256``, ``watermarked``,
    ``watermark_payload`` (the 16-bit payload of :mod:`speechlm.safety.watermark`, or None). Returns the
    manifest."""
    import soundfile as sf

    from speechlm.utils.atomic import atomic_path

    path = Path(path)
    key = key or load_or_create_key()
    info = sf.info(str(path))
    audio = {"sample_rate": info.samplerate, "channels": info.channels, "frames": info.frames}
    data = path.read_bytes()
    is_wav = data[:4] == b"RIFF" and data[8:12] == b"WAVE"
    body = _without_chunk(data)[0] if is_wav else data
    manifest = make_manifest(fields, sha256_hex(body), audio, _raw_public(key))
    signed = {"manifest": manifest, "signature": base64.b64encode(key.sign(_canonical(manifest))).decode()}
    payload = json.dumps(signed, sort_keys=True).encode("utf-8")
    if is_wav:
        chunk = CHUNK + struct.pack("<I", len(payload)) + payload + (b"\0" if len(payload) & 1 else b"")
        out = bytearray(body + chunk)
        out[4:8] = struct.pack("<I", len(out) - 8)
        with atomic_path(path) as tmp:
            Path(tmp).write_bytes(bytes(out))
    else:
        with atomic_path(Path(str(path) + SIDECAR)) as tmp:
            Path(tmp).write_bytes(payload + b"\n")
    return manifest


def sign_wav_bytes(data: bytes, fields: dict[str, Any], key=None) -> bytes:
    """The WAV ``data`` (a whole file in memory, e.g. a server response) with the signed ``slpv`` chunk added,
    exactly as :func:`sign_file` would write it."""
    import io

    import soundfile as sf

    if not (data[:4] == b"RIFF" and data[8:12] == b"WAVE"):
        raise ProvenanceError("not a RIFF/WAVE file")
    key = key or load_or_create_key()
    info = sf.info(io.BytesIO(data))
    audio = {"sample_rate": info.samplerate, "channels": info.channels, "frames": info.frames}
    body = _without_chunk(data)[0]
    manifest = make_manifest(fields, sha256_hex(body), audio, _raw_public(key))
    signed = {"manifest": manifest, "signature": base64.b64encode(key.sign(_canonical(manifest))).decode()}
    payload = json.dumps(signed, sort_keys=True).encode("utf-8")
    out = bytearray(body + CHUNK + struct.pack("<I", len(payload)) + payload + (b"\0" if len(payload) & 1 else b""))
    out[4:8] = struct.pack("<I", len(out) - 8)
    return bytes(out)


@dataclass(frozen=True)
class Verified:
    manifest: dict
    signer: str  # fingerprint of the public key that signed


def verify_file(path: str | os.PathLike, trusted: str | None = None) -> Verified:
    """Check the signed manifest of ``path``; raise :class:`ProvenanceError` with the reason if it does not
    verify. ``trusted``: a PEM public key the signature must come from."""
    serialization, ed25519 = _crypto()
    from cryptography.exceptions import InvalidSignature

    path = Path(path)
    if not path.is_file():
        raise ProvenanceError(f"{path}: no such file")
    data = path.read_bytes()
    if data[:4] == b"RIFF" and data[8:12] == b"WAVE":
        body, payload = _without_chunk(data)
        if payload is None:
            raise ProvenanceError("no provenance manifest in this WAV (not signed by speechlm, or stripped)")
    else:
        side = Path(str(path) + SIDECAR)
        if not side.is_file():
            raise ProvenanceError(f"no provenance sidecar {side.name}")
        body, payload = data, side.read_bytes()
    try:
        signed = json.loads(payload)
        manifest, sig = signed["manifest"], base64.b64decode(signed["signature"], validate=True)
        raw = base64.b64decode(manifest["public_key"], validate=True)
        pub = ed25519.Ed25519PublicKey.from_public_bytes(raw)
    except (ValueError, KeyError, TypeError) as exc:
        raise ProvenanceError(f"malformed provenance manifest ({type(exc).__name__})") from None
    if manifest.get("format") != FORMAT:
        raise ProvenanceError(f"unknown provenance format {manifest.get('format')!r}")
    try:
        pub.verify(sig, _canonical(manifest))
    except InvalidSignature:
        raise ProvenanceError("the signature does not match the manifest (the manifest was changed)") from None
    if trusted is not None:
        want = serialization.load_pem_public_key(trusted.encode() if isinstance(trusted, str) else trusted)
        if want.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw) != raw:
            raise ProvenanceError(f"signed by key {fingerprint(raw)}, not by the trusted key")
    if sha256_hex(body) != manifest.get("file_sha256"):
        raise ProvenanceError("the audio file does not match what was signed (changed after signing)")
    return Verified(manifest, fingerprint(raw))
