"""The tokens file: round trip, refusal of another tokenizer's tokens, truncated and foreign files."""

from __future__ import annotations

import numpy as np
import pytest

from speechlm.tokenizers.tokens import Tokens, TokensFileError, check_tokenizer, load_tokens, save_tokens


def _tokens(k: int = 3, t: int = 20, card: int = 1024, tok: str = "tiny@abc") -> Tokens:
    codes = np.random.default_rng(0).integers(0, card, (k, t))
    return Tokens(
        codes=codes, sample_rate=16000, frame_rate=50.0, n_samples=t * 320 - 5, tokenizer=tok, bitrate=1.5
    )


def test_round_trip(tmp_path):
    tok = _tokens()
    save_tokens(tmp_path / "a.npz", tok)
    back = load_tokens(tmp_path / "a.npz")
    np.testing.assert_array_equal(back.codes, tok.codes)
    assert back.codes.dtype == np.int16
    assert (back.sample_rate, back.frame_rate, back.n_samples, back.tokenizer, back.bitrate) == (
        16000,
        50.0,
        tok.n_samples,
        "tiny@abc",
        1.5,
    )
    with np.load(tmp_path / "a.npz", allow_pickle=False) as z:  # plain arrays: readable without speechlm
        assert set(z.files) == {"codes", "sample_rate", "frame_rate", "n_samples", "tokenizer", "bitrate"}


def test_large_cardinality_uses_int32(tmp_path):
    save_tokens(tmp_path / "b.npz", _tokens(card=70000))
    assert load_tokens(tmp_path / "b.npz").codes.dtype == np.int32


def test_other_tokenizer_refused(tmp_path):
    tok = _tokens(tok="other@123")
    with pytest.raises(TokensFileError, match="other@123"):
        check_tokenizer(tok, "tiny@abc")


def test_truncated_file_clear_error(tmp_path):
    save_tokens(tmp_path / "a.npz", _tokens(t=500))
    data = (tmp_path / "a.npz").read_bytes()
    for cut in (10, len(data) // 2, len(data) - 30):
        (tmp_path / "cut.npz").write_bytes(data[:cut])
        with pytest.raises(TokensFileError, match="truncated|not a"):
            load_tokens(tmp_path / "cut.npz")


def test_foreign_and_missing_files(tmp_path):
    np.savez(tmp_path / "x.npz", codes=np.zeros((1, 2), np.int16))
    with pytest.raises(TokensFileError, match="missing"):
        load_tokens(tmp_path / "x.npz")
    with pytest.raises(TokensFileError, match="does not exist"):
        load_tokens(tmp_path / "nope.npz")
    (tmp_path / "t.npz").write_text("hello")
    with pytest.raises(TokensFileError):
        load_tokens(tmp_path / "t.npz")
