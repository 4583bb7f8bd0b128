"""How ``speechlm/assets/phonemes_v1.json`` was made (a development-time tool; nothing calls it at run time).

:func:`derive_inventory` phonemizes sample sentences of every supported language (with stress marks, so ``ˈ`` and
``ˌ`` are in the inventory) and returns the sorted set of phones with their counts. ``speechlm text
build-inventory`` feeds it real sentences (Debian's fortunes, Fish Fillets dialogues and gettext catalogues, see
:mod:`speechlm.data.sentences`) plus :data:`SEED_SENTENCES`, and writes the asset. The asset is then frozen: the
default table must never change silently, so a new inventory is a new file (``phonemes_v2.json``) and a new
version, never an edit of v1.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping

from speechlm.text.g2p import STRESS_MARKS, phonemize, resolve_lang
from speechlm.text.normalize import normalize_text

# A few hand-written sentences per language that cover sounds the real-text pools are thin on (Mandarin and
# Japanese have almost no sentence source installed offline).
SEED_SENTENCES: dict[str, list[str]] = {
    "en": [
        "The quick brown fox jumps over the lazy dog.",
        "She measured the beige garage with a ruler.",
        "Thank you, where are you going tonight?",
        "Our boy enjoyed the noisy toy.",
    ],
    "en-gb": [
        "The quick brown fox jumps over the lazy dog.",
        "I can't dance on the path after the bath.",
        "Where is the water bottle? It's here, near the door.",
        "Tourists hurry to the pure sure cure.",
    ],
    "de": [
        "Zwölf Boxkämpfer jagen Viktor quer über den großen Sylter Deich.",
        "Ich möchte ein Brötchen mit Käse, bitte.",
        "Die Bäume rauschen im Herbstwind.",
    ],
    "fr": [
        "Portez ce vieux whisky au juge blond qui fume.",
        "Un bon vin blanc et du pain brun.",
        "Les enfants jouent dans le jardin pendant que les oiseaux chantent.",
        "Il fait beau aujourd'hui.",
    ],
    "es": [
        "El veloz murciélago hindú comía feliz cardillo y kiwi.",
        "La cigüeña tocaba el saxofón detrás del palenque de paja.",
        "¿Dónde está la estación de tren?",
    ],
    "it": [
        "Quel vituperabile xenofobo zelante assaggia il whisky ed esclama: alleluja!",
        "Gli gnocchi sono buonissimi.",
        "Ciao, come stai oggi?",
    ],
    "ru": [
        "Съешь же ещё этих мягких французских булок да выпей чаю.",
        "В чащах юга жил бы цитрус? Да, но фальшивый экземпляр!",
        "Щука плывёт в холодной реке.",
    ],
    "cmn": [
        "你好，我是学生。",
        "我们是中国人，说汉语。",
        "今天天气很好，我们去公园散步吧。",
        "他昨天买了三本书和一支笔。",
        "请问火车站在哪里？",
        "这个问题非常重要，需要认真考虑。",
        "北京是中华人民共和国的首都。",
        "妈妈骑马，马慢，妈妈骂马。",
        "四是四，十是十，十四是十四，四十是四十。",
        "吃葡萄不吐葡萄皮。",
        "春眠不觉晓，处处闻啼鸟。",
        "女儿喜欢绿色的裙子。",
        "一二三四五六七八九十。",
        "日本和韩国都在亚洲。",
        "他说的话让我很感动。",
        "学习中文需要很多时间和耐心。",
        "熊猫是中国的国宝。",
        "我想喝一杯热茶。",
        "下雨了，别忘了带伞。",
        "这家饭馆的菜又便宜又好吃。",
    ],
    "ja": [
        "こんにちは、世界。",
        "東京は日本の首都です。",
        "私は学生です。",
        "今日はいい天気ですね。",
        "ありがとうございます。",
        "コンピューターを使って仕事をします。",
        "駅はどこですか。",
        "猫が好きです。",
        "いろはにほへと ちりぬるを わかよたれそ つねならむ うゐのおくやま けふこえて あさきゆめみし ゑひもせす",
        "きゃきゅきょ しゃしゅしょ ちゃちゅちょ にゃにゅにょ ひゃひゅひょ",
        "みゃみゅみょ りゃりゅりょ ぎゃぎゅぎょ びゃびゅびょ ぴゃぴゅぴょ",
        "がぎぐげご ざじずぜぞ だぢづでど ばびぶべぼ ぱぴぷぺぽ",
        "ファイル、ティーカップ、ディスク、ウィンドウ、ヴァイオリン。",
        "新しい車を買いました。",
        "雨が降っています。",
        "富士山に登りたいです。",
    ],
    "cs": ["Příliš žluťoučký kůň úpěl ďábelské ódy.", "Dobrý den, jak se máte?"],
    "nl": [
        "Pa's wijze lynx bezag vroom het fikse aquaduct.",
        "Goedemorgen, hoe gaat het met je?",
        "De ui en de uil zijn buiten.",
    ],
    "fi": ["Törkylempijävongahdus.", "Hyvää huomenta, mitä kuuluu?", "Yöllä järvellä on hiljaista."],
    "pt": [
        "Luís argüia à Júlia que «brações, fé, chá, óxido, pôr, zângão» eram palavras do português.",
        "Bom dia, tudo bem?",
        "O pão e a mãe estão em casa.",
    ],
    "pl": [
        "Pchnąć w tę łódź jeża lub ośm skrzyń fig.",
        "Dzień dobry, jak się masz?",
        "Źdźbło trawy w szczebrzeszynie.",
    ],
}


def derive_inventory(samples: Mapping[str, Iterable[str]], batch: int = 256) -> Counter[str]:
    """Phone counts over ``samples`` ({lang: sentences}), each normalised then phonemized with stress marks."""
    counts: Counter[str] = Counter()
    for lang, sentences in samples.items():
        code = resolve_lang(lang)
        texts = [normalize_text(s, code) for s in sentences]
        for i in range(0, len(texts), batch):
            for ph in phonemize(texts[i : i + batch], code, stress=True):
                counts.update(p for p in ph.split() if p != "|")
    for mark in STRESS_MARKS:
        counts.setdefault(mark, 0)
    return counts
