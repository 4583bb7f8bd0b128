"""Symbol tables: ids, round trips, byte-stable JSON, atomic save, the shipped assets."""

import json

import pytest

from speechlm.errors import SpeechLMError
from speechlm.text.symbols import SPECIALS, SymbolTable, char_symbols, default_symbols


def test_specials_first():
    t = default_symbols()
    assert t.symbols[: len(SPECIALS)] == ("<pad>", "<unk>", "<bos>", "<eos>", "|", "<mask>")
    assert (t.pad_id, t.unk_id, t.bos_id, t.eos_id, t.word_id, t.mask_id) == (0, 1, 2, 3, 4, 5)
    assert t.id("<pad>") == 0 and t.id("|") == 4


def test_default_table_is_sorted_and_stable():
    a, b = default_symbols(), default_symbols()
    assert a.to_json().encode() == b.to_json().encode()
    assert a.hash == b.hash
    assert list(a.phonemes) == sorted(a.phonemes)
    assert {"ə", "ʃ", "ˈ", "˥˩", "ɯᵝ"} <= set(a.phonemes)
    assert len(a.phonemes) > 100


def test_encode_decode_round_trip_and_unknown_count():
    t = default_symbols()
    ids = t.encode("h ə l oʊ | w ɜː l d", add_bos=True, add_eos=True)
    assert ids[0] == t.bos_id and ids[-1] == t.eos_id and t.word_id in ids
    assert t.decode(ids) == "h ə l oʊ | w ɜː l d"
    assert t.unknown == {}
    ids = t.encode("h ☃ ə ☃")
    assert ids.count(t.unk_id) == 2 and t.unknown["☃"] == 2
    assert t.decode(ids) == "h <unk> ə <unk>"
    with pytest.raises(SpeechLMError):
        t.decode([len(t)])


def test_json_round_trip_and_save_load(tmp_path):
    t = default_symbols()
    assert SymbolTable.from_json(t.to_json()) == t
    path = t.save(tmp_path / "sub" / "symbols.json")
    loaded = SymbolTable.load(path)
    assert loaded.symbols == t.symbols and loaded.hash == t.hash
    assert path.read_bytes() == t.to_json().encode()
    assert [p.name for p in path.parent.iterdir()] == ["symbols.json"]  # no temp file left


def test_tampered_or_bad_json_is_refused(tmp_path):
    d = json.loads(default_symbols().to_json())
    d["symbols"][10], d["symbols"][11] = d["symbols"][11], d["symbols"][10]
    with pytest.raises(SpeechLMError, match="hash"):
        SymbolTable.from_dict(d)
    with pytest.raises(SpeechLMError):
        SymbolTable.from_json("{not json")
    with pytest.raises(SpeechLMError):
        SymbolTable.load(tmp_path / "missing.json")
    with pytest.raises(SpeechLMError, match="duplicate"):
        SymbolTable(["a", "b", "a"])
    with pytest.raises(SpeechLMError):
        SymbolTable(["a b"])


def test_hash_depends_on_order():
    assert SymbolTable(["a", "b"]).hash != SymbolTable(["b", "a"]).hash
    assert SymbolTable(["a", "b"]).hash == SymbolTable(["a", "b"], name="other").hash


def test_char_table():
    t = char_symbols()
    assert "'" in t and "ß" in t and "я" in t and "ł" in t and "A" not in t
    ids = t.encode("don't stop")
    assert ids.count(t.word_id) == 1
    assert t.decode(ids) == "don't stop"
    # The ids depend on the set of languages, not their order.
    assert char_symbols(["de", "en"]).to_json() == char_symbols(["en", "de"]).to_json()
    assert "я" not in char_symbols(["en"])
    with pytest.raises(SpeechLMError, match="no character alphabet"):
        char_symbols(["cmn"])
