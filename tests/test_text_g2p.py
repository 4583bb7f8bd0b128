"""G2P through espeak-ng 1.52: every language gives phones, word groups match the words."""

import re
import subprocess
import sys

import pytest

from speechlm.errors import SpeechLMError
from speechlm.text.g2p import (
    espeak_version,
    phonemize,
    phonemize_words,
    split_phonemes,
    split_words,
    supported_languages,
)
from speechlm.text.normalize import normalize_text
from speechlm.text.symbols import default_symbols

# Simple sentences (no digits, no word espeak merges) and their word counts.
SIMPLE = {
    "en": ("Hello world this is a test", 6),
    "en-gb": ("The water is cold today", 5),
    "de": ("Guten Tag wie geht es dir", 6),
    "fr": ("Bonjour je suis content de vous voir", 7),
    "es": ("Hola cómo estás hoy amigo", 5),
    "it": ("Buongiorno a tutti gli amici", 5),
    "ru": ("Привет как у тебя дела", 5),
    "cs": ("Dobrý den jak se máte", 5),
    "nl": ("Goedemorgen hoe gaat het met je", 6),
    "fi": ("Hyvää päivää mitä kuuluu", 4),
    "pt": ("Bom dia tudo bem contigo", 5),
    "pl": ("Dzień dobry jak się masz", 5),
}
# Not used to derive the shipped inventory (see speechlm/text/inventory.py).
COVERAGE_SAMPLE = {
    "en": [
        "Yesterday the children played football in the park near the river.",
        "Could you please pass me the salt and pepper?",
    ],
    "de": ["Morgen fahren wir mit dem Zug nach München.", "Die Kinder spielen gern im Schnee."],
    "fr": ["Nous allons au marché acheter des légumes frais.", "Quelle heure est-il maintenant?"],
    "es": ["Mañana vamos a la playa con nuestros amigos.", "El perro duerme debajo de la mesa."],
    "it": ["Domani andiamo al mare con la famiglia.", "Il gatto dorme sul divano."],
    "ru": ["Завтра мы поедем на поезде в Москву.", "Дети любят играть в снегу."],
    "cmn": ["明天我们坐火车去上海。", "孩子们喜欢在雪地里玩。"],
    "ja": ["明日は電車で大阪に行きます。", "子供たちは雪の中で遊ぶのが好きです。"],
    "cs": ["Zítra pojedeme vlakem do Brna.", "Děti si rády hrají ve sněhu."],
    "nl": ["Morgen gaan we met de trein naar Amsterdam.", "De kinderen spelen graag in de sneeuw."],
    "fi": ["Huomenna menemme junalla Helsinkiin.", "Lapset leikkivät mielellään lumessa."],
    "pt": ["Amanhã vamos de comboio para Lisboa.", "As crianças gostam de brincar na neve."],
    "pl": ["Jutro pojedziemy pociągiem do Krakowa.", "Dzieci lubią bawić się w śniegu."],
}


def test_uses_bundled_espeak_152():
    major, minor = map(int, espeak_version().split(".")[:2])
    assert (major, minor) >= (1, 52)


@pytest.mark.parametrize("lang", sorted(SIMPLE))
def test_word_groups_match_words(lang):
    text, n_words = SIMPLE[lang]
    (ph,) = phonemize([text], lang)
    groups = split_phonemes(ph)
    assert len(groups) == n_words == len(split_words(text, lang))
    assert all(groups)
    assert "(" not in ph and "ˈ" not in ph and "ˌ" not in ph
    # Single spaces between phones, " | " between words.
    assert re.fullmatch(r"\S+(?: \S+)*", ph)
    assert ph.count(" | ") == n_words - 1


@pytest.mark.parametrize("lang", ["cmn", "ja"])
def test_cjk_gives_phones_not_letters(lang):
    text = {"cmn": "我们是中国人，说汉语。", "ja": "東京は日本の首都です。"}[lang]
    pairs = phonemize_words(text, lang)
    phones = [p for _, ph in pairs for p in ph]
    assert len(phones) > 10
    # No language-switch flags, no Latin letters spelled out in English ("chinese letter" would give tʃ aɪ n).
    joined = " ".join(phones)
    assert "(" not in joined and "tʃ aɪ n iː z" not in joined
    assert not any(re.search(r"[a-zA-Z]{3,}", p) for p in phones)
    # Every word is a piece of the text, in order.
    assert "".join(w for w, _ in pairs) == re.sub(r"[，。]", "", text)


def test_cmn_tones_are_full_contours():
    # The four lexical tones of "ma", and the neutral one: espeak's IPA mode would print 5 for both 1 and 4.
    pairs = phonemize_words("妈麻马骂吗", "cmn")
    tones = [p for _, ph in pairs for p in ph if p[0] in "˥˦˧˨˩"]
    assert tones == ["˥˥", "˧˥", "˨˩˦", "˥˩", "˩˩"]


def test_stress_option_and_mismatch_fallback():
    (ph,) = phonemize(["Hello world"], "en", stress=True)
    assert "ˈ" in ph.split()
    # espeak reads "of the" as one word; the fallback keeps one group per input word.
    pairs = phonemize_words("most of the time", "en")
    assert [w for w, _ in pairs] == ["most", "of", "the", "time"]
    assert all(ph for _, ph in pairs)


def test_batch_equals_single_and_empty():
    texts = ["one two", "", "three, four!"]
    assert phonemize(texts, "en") == [phonemize([t], "en")[0] for t in texts]
    assert phonemize(texts, "en")[1] == ""


def test_unknown_language():
    with pytest.raises(SpeechLMError, match="supported: en"):
        phonemize(["x"], "klingon")
    assert "cmn" in supported_languages() and "ja" in supported_languages()


def test_asset_covers_a_multilanguage_sample():
    table = default_symbols()
    texts = []
    for lang, sents in COVERAGE_SAMPLE.items():
        texts += phonemize([normalize_text(s, lang) for s in sents], lang, stress=True)
    assert table.coverage(texts) >= 0.99


def test_cli_g2p_and_unknown_language():
    cmd = [sys.executable, "-c", "import sys; from speechlm.cli import main; sys.exit(main())"]
    ok = subprocess.run(
        [*cmd, "text", "g2p", "-", "--lang", "de"],
        input="Guten Tag\nTschüss\n",
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert ok.returncode == 0, ok.stderr
    lines = ok.stdout.splitlines()
    assert len(lines) == 2 and lines[0].count(" | ") == 1
    bad = subprocess.run(
        [*cmd, "text", "g2p", "hello", "--lang", "xx"], capture_output=True, text=True, timeout=60
    )
    assert bad.returncode != 0
    assert bad.stdout == ""
    err = bad.stderr.strip().splitlines()
    assert len(err) == 1 and "unsupported language" in err[0]
