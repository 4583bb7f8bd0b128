"""TTS input tokens (speechlm.text.tts_input): phones with stress, word boundaries, clause punctuation."""

from __future__ import annotations

from speechlm.text.symbols import default_symbols
from speechlm.text.tts_input import PUNCTUATION, readable, token_ids, tts_tokens, vocab_size


def test_tokens_mark_words_clauses_and_ends():
    t = tts_tokens("Hello there, my friend. How are you?")
    assert t[0] == "<bos>" and t[-1] == "<eos>" and t[-2] == "?"
    assert t.count(",") == 1 and t.count(".") == 1 and "ˈ" in t
    assert t[t.index(",") + 1] != "|"  # punctuation replaces the word boundary
    assert t.count("|") == 4  # hello|there , my|friend . how|are|you ?


def test_missing_final_punctuation_and_unreadable_text():
    assert tts_tokens("no full stop here")[-2] == "."
    assert tts_tokens("Semicolons; colons: all commas")[1:-1].count(",") == 2
    assert not readable(tts_tokens("...!?"))
    assert tts_tokens("...!?") == ["<bos>", "<eos>"]


def test_ids_put_punctuation_after_the_phoneme_table():
    sym = default_symbols()
    t = tts_tokens("Yes, no.")
    ids = token_ids(t, sym)
    assert ids[0] == sym.bos_id and ids[-1] == sym.eos_id
    assert ids[t.index(",")] == len(sym) + PUNCTUATION.index(",")
    assert max(ids) < vocab_size(sym) and sym.unk_id not in ids
