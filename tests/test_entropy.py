"""Token packing: the range coder, the token entropy model, quiet frames packed shallower (``FrameDepth``), the
``.slc`` file and its commands."""

from __future__ import annotations

import bisect
import math

import numpy as np
import pytest
import soundfile as sf

from speechlm.tokenizers.entropy import (
    EntropyModelError,
    FrameDepth,
    StreamSpec,
    TokenEntropyModel,
    quantise_rows,
)
from speechlm.tokenizers.entropy_fit import fit_entropy
from speechlm.tokenizers.packed import load_packed, pack, read_header, save_packed
from speechlm.tokenizers.rangecoder import RangeDecoder, RangeEncoder
from speechlm.tokenizers.tokens import Tokens, TokensFileError

SPECS = [StreamSpec("slow", 16, "previous"), StreamSpec("noise", 64, "none"), StreamSpec("big", 1024, "previous")]


def _codes(rng: np.random.Generator, t: int, k: int = 3) -> np.ndarray:
    """Streams with the structure the model exploits: a slow random walk, skewed noise, long runs."""
    slow = np.clip(8 + np.cumsum(rng.choice([-1, 0, 0, 0, 1], t)), 0, 15)
    noise = np.minimum(rng.geometric(0.3, t) - 1, 63)
    big = np.repeat(rng.integers(0, 1024, t // 10 + 1), 10)[:t]
    return np.stack([slow, noise, big])[:k]


@pytest.mark.parametrize("alpha", [0.05, 1.0, 20.0])
def test_range_coder_round_trip_near_entropy(alpha):
    rng = np.random.default_rng(int(alpha * 100))
    k, total = 300, 1 << 16
    freqs = quantise_rows(np.round(rng.dirichlet(np.full(k, alpha)) * 1e9).astype(np.int64)[None])[0]
    cum = np.concatenate([[0], np.cumsum(freqs)]).tolist()
    sym = rng.choice(k, size=4000, p=freqs / total)
    enc = RangeEncoder()
    for s in sym:
        enc.encode(cum[s], int(freqs[s]), total)
    data = enc.finish()
    dec = RangeDecoder(data)
    out = []
    for _ in sym:
        s = bisect.bisect_right(cum, dec.target(total)) - 1
        dec.consume(cum[s], cum[s + 1] - cum[s])
        out.append(s)
    assert out == sym.tolist()
    ideal = -sum(math.log2(freqs[s] / total) for s in sym)
    assert ideal <= len(data) * 8 <= ideal + 64  # within a flush of the ideal code length


def test_quantise_rows_sum_and_floor():
    f = quantise_rows(np.array([[0, 0, 5], [10**12, 1, 0], [0, 0, 0]]))
    assert (f.sum(1) == 1 << 16).all() and (f >= 1).all()
    assert f[0, 2] > f[0, 0] and f[1, 0] > f[1, 1] >= f[1, 2]


def test_model_pack_unpack_exact_and_compresses():
    rng = np.random.default_rng(0)
    m = TokenEntropyModel.fit([_codes(rng, 500) for _ in range(20)], SPECS, "toy@0")
    for t, k in ((0, 3), (1, 3), (777, 3), (300, 1), (300, 2)):
        x = _codes(rng, t, k)
        data = m.pack(x)
        assert np.array_equal(m.unpack(data, k, t), x)
        assert len(data) * 8 <= m.bits(x).sum() + 64
    x = _codes(rng, 2000)
    assert len(m.pack(x)) * 8 < 0.6 * 2000 * (4 + 6 + 10)  # well under the fixed-width size
    b = m.bits(x) / 2000
    assert b[0] < 1.5 and b[1] < 3.5 and b[2] < 8  # the walk, the skew, the runs


def test_frame_depth_packs_quiet_frames_shallower():
    """Frames whose stream-0 code is low keep fewer streams; the decoder reads the depth from that code, so
    unpacking gives the codes with the left-out streams filled, and the payload shrinks."""
    rng = np.random.default_rng(3)
    m = TokenEntropyModel.fit([_codes(rng, 500) for _ in range(20)], SPECS, "toy@0")
    depth = FrameDepth(by=0, rules=((6, 1), (8, 2)), fill=(0, 5, 7))
    x = _codes(rng, 1500)
    kept = depth.kept(x)
    assert set(np.unique(kept)) <= {1, 2, 3} and (kept[x[0] <= 6] == 1).all() and (kept[x[0] > 8] == 3).all()
    y = depth.apply(x)
    assert np.array_equal(y[0], x[0]) and (y[1][x[0] <= 6] == 5).all() and (y[2][x[0] <= 8] == 7).all()
    assert np.array_equal(y[:, x[0] > 8], x[:, x[0] > 8])
    data = m.pack(y, kept)
    assert np.array_equal(m.unpack(data, 3, 1500, depth), y)
    assert len(data) < len(m.pack(x)) and len(data) * 8 <= m.bits(y, kept).sum() + 64
    assert np.array_equal(m.unpack(m.pack(y[:2], depth.kept(y[:2])), 2, 1500, depth), y[:2])  # fewer streams
    for bad in (FrameDepth(0, ((6, 0),), (0, 5, 7)), FrameDepth(0, ((6, 1),), (0, 64, 7)),
                FrameDepth(3, ((6, 1),), (0, 5, 7)), FrameDepth(0, ((8, 2), (6, 1)), (0, 5, 7))):
        with pytest.raises(EntropyModelError, match="frame depth"):
            m.unpack(data, 3, 1500, bad)


def test_model_refuses_bad_codes():
    m = TokenEntropyModel.fit([_codes(np.random.default_rng(1), 100)], SPECS, "toy@0")
    with pytest.raises(EntropyModelError, match="outside"):
        m.pack(np.array([[16], [0], [0]]))
    with pytest.raises(EntropyModelError, match=r"\[k, T\]"):
        m.pack(np.zeros((4, 5), np.int64))


def test_save_load_same_model(tmp_path):
    m = TokenEntropyModel.fit([_codes(np.random.default_rng(2), 300) for _ in range(5)], SPECS, "toy@0", 8)
    m.save(tmp_path / "e.safetensors")
    m2 = TokenEntropyModel.load(tmp_path / "e.safetensors")
    x = _codes(np.random.default_rng(3), 400)
    assert m2.id == m.id and m2.pack(x) == m.pack(x) and m2.smoothing == 8
    (tmp_path / "bad.safetensors").write_bytes(b"not a model")
    with pytest.raises(EntropyModelError, match="unreadable"):
        TokenEntropyModel.load(tmp_path / "bad.safetensors")


def test_entropy_model_beside_a_codec(tmp_path):
    from speechlm.tokenizers.packed import entropy_model_for

    with pytest.raises(EntropyModelError, match="no token entropy model"):
        entropy_model_for(tmp_path)
    TokenEntropyModel.fit([_codes(np.random.default_rng(6), 100)], SPECS, "toy@0").save(
        tmp_path / "entropy.safetensors")
    assert entropy_model_for(tmp_path, "toy@0").tokenizer == "toy@0"
    with pytest.raises(EntropyModelError, match="fitted on 'toy@0' tokens, not 'toy@1'"):
        entropy_model_for(tmp_path, "toy@1")


def test_files_packed_before_a_refit_still_unpack(tmp_path):
    """A refit model replaces ``entropy.safetensors``; the earlier one kept as ``entropy-ID.safetensors`` decodes
    the files its id is in the header of; an unknown or malformed id falls back to the current model (whose id
    check then refuses the file)."""
    from speechlm.tokenizers.packed import entropy_model_for

    rng = np.random.default_rng(8)
    old = TokenEntropyModel.fit([_codes(rng, 300) for _ in range(5)], SPECS, "toy@0")
    new = TokenEntropyModel.fit([_codes(rng, 300) for _ in range(5)], SPECS, "toy@0", 8)
    assert old.id != new.id
    x = _codes(rng, 200)
    save_packed(tmp_path / "a.slc", _tokens(x), old)
    new.save(tmp_path / "entropy.safetensors")
    header, _ = read_header(tmp_path / "a.slc")
    with pytest.raises(TokensFileError, match="packed with entropy model"):
        load_packed(tmp_path / "a.slc", entropy_model_for(tmp_path, entropy_id=header["entropy"]))
    old.save(tmp_path / f"entropy-{old.id}.safetensors")
    back = load_packed(tmp_path / "a.slc", entropy_model_for(tmp_path, entropy_id=header["entropy"]))
    assert np.array_equal(back.codes, x)
    for other in (new.id, "0" * 16, "../entropy", None):
        assert entropy_model_for(tmp_path, entropy_id=other).id == new.id


def test_fit_chooses_context_on_held_back_files():
    rng = np.random.default_rng(4)
    specs_names = [s.name for s in SPECS]
    m, report = fit_entropy([_codes(rng, 400) for _ in range(10)], specs_names, [16, 64, 1024], "toy@0")
    assert report.contexts == {"slow": "previous", "noise": "none", "big": "previous"}
    assert [s.context for s in m.streams] == ["previous", "none", "previous"]


def _tokens(codes: np.ndarray, tokenizer: str = "toy@0") -> Tokens:
    return Tokens(codes=codes, sample_rate=16000, frame_rate=50.0, n_samples=codes.shape[1] * 320,
                  tokenizer=tokenizer, bitrate=1.0)


def test_packed_file_round_trip_and_damage(tmp_path):
    rng = np.random.default_rng(5)
    m = TokenEntropyModel.fit([_codes(rng, 300) for _ in range(5)], SPECS, "toy@0")
    tok = _tokens(_codes(rng, 250))
    path = tmp_path / "t.slc"
    info = save_packed(path, tok, m)
    back = load_packed(path, m)
    assert np.array_equal(back.codes, tok.codes) and back.n_samples == tok.n_samples
    assert back.tokenizer == tok.tokenizer and info.kbps == pytest.approx(info.payload_bytes * 8 / 5.0 / 1000)
    data = path.read_bytes()
    for damaged, msg in ((data[:-3], "truncated or altered"), (data[:-1] + bytes([data[-1] ^ 1]), "altered"),
                         (b"RIFF" + data[4:], "not a packed")):
        (tmp_path / "d.slc").write_bytes(damaged)
        with pytest.raises(TokensFileError, match=msg):
            load_packed(tmp_path / "d.slc", m)
    other = TokenEntropyModel.fit([_codes(rng, 300) for _ in range(5)], SPECS, "toy@0", smoothing=4)
    with pytest.raises(TokensFileError, match="packed with entropy model"):
        load_packed(path, other)
    with pytest.raises(EntropyModelError, match="fitted on"):
        pack(_tokens(tok.codes, "other@1"), m)
    assert read_header(path)[0]["frames"] == 250


def test_packed_file_with_frame_depth(tmp_path):
    rng = np.random.default_rng(5)
    m = TokenEntropyModel.fit([_codes(rng, 400) for _ in range(10)], SPECS, "toy@0")
    depth = FrameDepth(by=0, rules=((7, 1),), fill=(0, 0, 0))
    tok = _tokens(_codes(rng, 600))
    save_packed(tmp_path / "a.slc", tok, m, depth)
    header, _ = read_header(tmp_path / "a.slc")
    assert header["depth"] == {"by": 0, "rules": [[7, 1]], "fill": [0, 0, 0]}
    assert np.array_equal(load_packed(tmp_path / "a.slc", m).codes, depth.apply(tok.codes))
    raw = (tmp_path / "a.slc").read_bytes().replace(b'"by":0', b'"by":9')
    (tmp_path / "b.slc").write_bytes(raw)
    with pytest.raises(TokensFileError, match="frame depth"):
        load_packed(tmp_path / "b.slc", m)


def test_source_filter_frame_depth_thins_only_quiet_frames():
    """The shipped codec's rule: a loud stretch keeps every stage, a stretch 70 dB quieter (WORLD's gain floors
    about 50 dB down) keeps one or two, the rest filled with each stage's entry nearest zero."""
    from speechlm.tokenizers.codec.api import Codec

    codec = Codec.load("sf")
    t = np.arange(32000) / 16000
    x = 0.3 * np.sin(2 * np.pi * (130 + 30 * t) * t) * (0.7 + 0.3 * np.sin(2 * np.pi * 3 * t))
    x[16000:] *= 10 ** (-70 / 20)
    tok = codec.encode(x.astype(np.float32), 16000)
    depth = codec.frame_depth(tok.codes)
    kept = depth.kept(tok.codes)
    assert (kept[5:45] == tok.num_codebooks).all() and (kept[55:95] <= 5).all() and (kept[55:95] == 4).any()
    y = depth.apply(tok.codes)
    assert np.array_equal(y[:, :50], tok.codes[:, :50])
    rest = codec.quantizer.rest_codes
    assert all((y[3 + s, 55:95] == rest[s]).all() for s in range(2, len(rest)))
    assert codec.quiet_depth_summary.startswith("4 / 2 / 1 envelope stages kept (and no f0.mid) 29 / 44 / 58 dB")
    books = codec.quantizer.env_codebooks
    assert all(np.linalg.norm(books[s][rest[s]]) <= np.linalg.norm(books[s], axis=1).min() + 1e-6
               for s in range(len(rest)))


def test_cli_slc_round_trip_with_shipped_codec(tmp_path, capsys):
    """``pack``/``unpack`` convert between ``.npz`` and ``.slc`` exactly and ``decode`` reads both to the same audio;
    ``encode -o X.slc`` packs, with ``--bitrate`` a ceiling on the packed rate (the shipped codec and its entropy
    model)."""
    from speechlm.cli import main
    from speechlm.tokenizers.tokens import load_tokens

    t = np.arange(16000) / 16000
    x = (0.3 * np.sin(2 * np.pi * (120 + 40 * t) * t) * (0.6 + 0.4 * np.sin(2 * np.pi * 3 * t))).astype(np.float32)
    sf.write(tmp_path / "in.wav", x, 16000)
    npz, slc, slc2, back = (tmp_path / n for n in ("t.npz", "t.slc", "t2.slc", "back.npz"))
    assert main(["codec", "encode", str(tmp_path / "in.wav"), "-o", str(npz), "--bitrate", "1.85"]) == 0
    assert main(["codec", "encode", str(tmp_path / "in.wav"), "-o", str(slc), "--bitrate", "1.85"]) == 0
    assert "packed" in capsys.readouterr().err
    assert slc.stat().st_size < npz.stat().st_size
    assert main(["codec", "pack", str(npz), "-o", str(slc2)]) == 0
    assert main(["codec", "unpack", str(slc2), "-o", str(back)]) == 0
    assert np.array_equal(load_tokens(back).codes, load_tokens(npz).codes)
    assert main(["codec", "decode", str(slc2), "-o", str(tmp_path / "a.wav")]) == 0
    assert main(["codec", "decode", str(npz), "-o", str(tmp_path / "b.wav")]) == 0
    a, _ = sf.read(tmp_path / "a.wav")
    b, _ = sf.read(tmp_path / "b.wav")
    assert np.array_equal(a, b)
    (tmp_path / "cut.slc").write_bytes(slc.read_bytes()[:-2])
    assert main(["codec", "decode", str(tmp_path / "cut.slc"), "-o", str(tmp_path / "c.wav")]) != 0
    assert "truncated" in capsys.readouterr().err and not (tmp_path / "c.wav").exists()
    # --bitrate with a .slc output is a ceiling on the packed rate
    from speechlm.tokenizers.entropy import TokenEntropyModel
    from speechlm.tokenizers.packed import read_header

    wav = str(tmp_path / "in.wav")
    assert main(["codec", "encode", wav, "-o", str(tmp_path / "c.slc"), "--bitrate", "1.5", "--full-depth"]) == 0
    header, payload = read_header(tmp_path / "c.slc")
    assert len(payload) * 8 / 1.0 / 1000 <= 1.5 and header["streams"] >= 4 and "depth" not in header
    em = TokenEntropyModel.load("speechlm/assets/codec_sf/entropy.safetensors")
    assert em.expected_kbps[str(header["streams"])] <= 1.5
    # by default quiet frames are thinned: never shallower than --full-depth under the same ceiling
    assert main(["codec", "encode", wav, "-o", str(tmp_path / "e.slc"), "--bitrate", "1.5"]) == 0
    header_e, payload_e = read_header(tmp_path / "e.slc")
    assert len(payload_e) * 8 / 1000 <= 1.5 and header_e["streams"] >= header["streams"] and "depth" in header_e
    assert main(["codec", "pack", str(npz), "-o", str(tmp_path / "f.slc"), "--thin-quiet"]) == 0
    assert main(["codec", "encode", wav, "-o", str(tmp_path / "g.npz"), "--full-depth"]) == 2
    assert "--full-depth" in capsys.readouterr().err and not (tmp_path / "g.npz").exists()
    assert read_header(tmp_path / "f.slc")[0]["depth"]["by"] == 1
    assert main(["codec", "encode", str(tmp_path / "in.wav"), "-o", str(tmp_path / "d.slc"), "--bitrate", "0.3"]) == 2
    assert "lowest bitrate" in capsys.readouterr().err and not (tmp_path / "d.slc").exists()


def test_codec_bench_reads_targets_on_packed_rates():
    from speechlm.eval.codec_bench import _targets_md

    def row(system, packed, pesq, stoi):
        return {"system": system, "packed_kbps": packed, "pesq_wb": pesq, "stoi": stoi}

    r = {"rows": [row("ours 1.35 kbps", 0.7, 1.5, 0.84), row("ours 1.85 kbps", 1.2, 1.7, 0.87),
                  row("ours 2.35 kbps", 1.7, 1.9, 0.89), row("ours 3.85 kbps", 3.1, 2.3, 0.95),
                  row("codec2 3200", None, 1.6, 0.70), row("opus 6", None, 2.2, 0.90)]}
    md = "\n".join(_targets_md(r))
    assert "ours 1.85 kbps packed to 1.20 kbps" in md and "codec2 3200's 1.60 / 0.700: **met**" in md
    assert "ours 2.35 kbps packed to 1.70 kbps" in md and "**not met**" in md  # 3.1 kbps is over the 3-kbps bound
    assert _targets_md({"rows": [row("ours 1 kbps", None, 3.0, 0.99), row("opus 6", None, 2.2, 0.9)]}) == []


def test_fit_entropy_command(tmp_path, capsys):
    """``speechlm codec fit-entropy`` on a tiny manifest: a model for the shipped codec's tokens, with a packed rate
    per depth; a wrong output name is refused before any work."""
    import json

    from speechlm.cli import main
    from speechlm.data.manifest import Utterance, write_manifest

    rng = np.random.default_rng(7)
    utts = []
    for i in range(6):
        t = np.arange(16000) / 16000
        f0 = 100 + 60 * rng.random()
        x = 0.3 * np.sin(2 * np.pi * f0 * t * (1 + 0.1 * t)) * (0.5 + 0.5 * np.sin(2 * np.pi * 2 * t + i))
        sf.write(tmp_path / f"u{i}.wav", x.astype(np.float32), 16000)
        utts.append(Utterance(id=f"u{i}", audio=f"u{i}.wav", text="", lang="en", speaker="s", duration=1.0,
                              split="train"))
    write_manifest(tmp_path / "m.jsonl", utts)
    out = tmp_path / "e.safetensors"
    assert main(["codec", "fit-entropy", "--data", str(tmp_path / "m.jsonl"), "-o", str(tmp_path / "e.bin")]) == 2
    assert "safetensors" in capsys.readouterr().err
    assert main(["codec", "fit-entropy", "--data", str(tmp_path / "m.jsonl"), "-o", str(out), "--workers", "1"]) == 0
    summary = json.loads(capsys.readouterr().out)
    m = TokenEntropyModel.load(out)
    assert m.id == summary["entropy_id"] and m.tokenizer.startswith("codec_sf@") and summary["files"] == 6
    assert sorted(m.expected_kbps, key=int) == [str(k) for k in range(4, 10)]
    assert list(m.expected_kbps.values()) == sorted(m.expected_kbps.values())  # deeper costs more
