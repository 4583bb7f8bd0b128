"""Text normalisation: what a reader would say, written out in words.

:func:`normalize_text` (for TTS input and G2P) keeps case and sentence punctuation; it applies, in order:

1. Unicode NFC (NFKC for ``cmn``/``ja``, which folds full-width digits and Latin), typographic quotes and dashes
   to ASCII, whitespace collapsed.
2. Abbreviations (English: Mr., Mrs., Dr., St., Prof., etc., e.g., i.e., vs., No. before a number, ...; a few
   per language for de, fr, es, it) and, in English, telephone keys (``press * or #`` -> "press star or pound").
3. Numbers, through num2words: currency (``$3.50`` -> "three dollars and fifty cents", ``€5`` / ``5 €``),
   percentages, times (``10:30`` -> "ten thirty", ``10:00`` -> "ten o'clock"), ordinals (``1st``; fr ``1er``/``2e``;
   es/it/pt ``1º``/``1ª``), years (English four-digit numbers 1100-2099 read as years: ``1984`` -> "nineteen
   eighty-four"), decimals (``3.14`` -> "three point one four"; ``3,14`` in languages with a decimal comma),
   grouped thousands (``1,000,000`` / ``1.000.000`` / ``1 000 000``), negative numbers and plain cardinals.
   Mandarin digits are left to espeak-ng, which reads them in Mandarin.

4. English patterns around the digits (before the plain numbers): web and e-mail addresses (``www.debian.org``
   -> "www dot debian dot org"), North American telephone numbers (``555-1234`` -> "five five five, one two
   three four"), dates (``12/25/2023`` month first, ``2023-12-25``), proper fractions with a common denominator
   (``3/4`` -> "three quarters"; ``24/7`` -> "twenty-four seven"), temperatures (``72°F``), clock times with a
   glued a.m./p.m. (``5pm``), ranges (``1990-2000`` -> "nineteen ninety to two thousand"), units after a number
   (``5 km``, ``1 kg``, ``60 mph``, ``16 GB``: :data:`_EN_UNITS`), dotted version numbers (``2.0.1`` -> "two point
   zero point one"), Roman numerals after a capitalised word (below).

Limits: Roman numerals are read only after a capitalised word (``World War II`` -> "World War two", ``Henry
VIII`` -> "Henry the Eighth" after a regnal name from a list, so an unlisted monarch gets the cardinal); units
outside English, other countries' telephone numbers and dates outside English are not read; ``5/12`` is "five
twelve", never a date (day/month order differs between countries); ``100-1000`` reads as a telephone number,
``737-800`` as a range (a range goes up: a score like ``3-2`` is "three-two"); German/Russian case and gender
agreement of numbers is not attempted (the nominative cardinal is used).

:func:`normalize_for_wer` is the comparison form used by the evaluation suite: the above, then lower case,
punctuation removed, hyphens split, whitespace collapsed; for ``cmn``/``ja`` each CJK character becomes a "word",
so a WER over it is a character error rate.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from decimal import Decimal

from speechlm.errors import SpeechLMError

# Languages with a num2words converter (our code -> num2words code).
_NUM2WORDS_LANG = {
    "en": "en",
    "en-us": "en",
    "en-gb": "en",
    "de": "de",
    "fr": "fr",
    "es": "es",
    "it": "it",
    "ru": "ru",
    "cs": "cs",
    "nl": "nl",
    "fi": "fi",
    "pt": "pt",
    "pl": "pl",
    "ja": "ja",
}
SUPPORTED_LANGUAGES = (*_NUM2WORDS_LANG, "cmn")
_DECIMAL_COMMA = {"de", "fr", "es", "it", "ru", "cs", "nl", "fi", "pt", "pl"}
_POINT_WORD = {
    "en": "point",
    "de": "Komma",
    "fr": "virgule",
    "es": "coma",
    "it": "virgola",
    "ru": "запятая",
    "cs": "celá",
    "nl": "komma",
    "fi": "pilkku",
    "pt": "vírgula",
    "pl": "przecinek",
    "ja": "点",
}
_PERCENT_WORD = {
    "en": "percent",
    "de": "Prozent",
    "fr": "pour cent",
    "es": "por ciento",
    "it": "per cento",
    "ru": "процентов",
    "cs": "procent",
    "nl": "procent",
    "fi": "prosenttia",
    "pt": "por cento",
    "pl": "procent",
    "ja": "パーセント",
    "cmn": "百分之",
}
_AND_WORD = {
    "en": "and",
    "de": "und",
    "fr": "et",
    "es": "y",
    "it": "e",
    "ru": "и",
    "cs": "a",
    "nl": "en",
    "fi": "ja",
    "pt": "e",
    "pl": "i",
}
# symbol -> (singular, plural, cent singular, cent plural) per language; English is the default.
_CURRENCY = {
    "en": {
        "$": ("dollar", "dollars", "cent", "cents"),
        "€": ("euro", "euros", "cent", "cents"),
        "£": ("pound", "pounds", "penny", "pence"),
        "¥": ("yen", "yen", "sen", "sen"),
    },
    "de": {
        "$": ("Dollar", "Dollar", "Cent", "Cent"),
        "€": ("Euro", "Euro", "Cent", "Cent"),
        "£": ("Pfund", "Pfund", "Penny", "Pence"),
    },
    "fr": {
        "$": ("dollar", "dollars", "cent", "cents"),
        "€": ("euro", "euros", "centime", "centimes"),
        "£": ("livre", "livres", "penny", "pence"),
    },
    "es": {"$": ("dólar", "dólares", "centavo", "centavos"), "€": ("euro", "euros", "céntimo", "céntimos")},
    "it": {
        "$": ("dollaro", "dollari", "centesimo", "centesimi"),
        "€": ("euro", "euro", "centesimo", "centesimi"),
    },
    "ru": {
        "$": ("доллар", "долларов", "цент", "центов"),
        "€": ("евро", "евро", "цент", "центов"),
        "₽": ("рубль", "рублей", "копейка", "копеек"),
    },
    "nl": {"$": ("dollar", "dollar", "cent", "cent"), "€": ("euro", "euro", "cent", "cent")},
    "pt": {"$": ("dólar", "dólares", "centavo", "centavos"), "€": ("euro", "euros", "cêntimo", "cêntimos")},
    "pl": {
        "$": ("dolar", "dolarów", "cent", "centów"),
        "€": ("euro", "euro", "cent", "centów"),
        "zł": ("złoty", "złotych", "grosz", "groszy"),
    },
    "cs": {
        "$": ("dolar", "dolarů", "cent", "centů"),
        "€": ("euro", "eur", "cent", "centů"),
        "Kč": ("koruna", "korun", "haléř", "haléřů"),
    },
    "fi": {"$": ("dollari", "dollaria", "sentti", "senttiä"), "€": ("euro", "euroa", "sentti", "senttiä")},
}
_SCALE_WORDS = {"thousand", "million", "billion", "trillion"}

_EN_ABBREV = {
    "mr": "mister",
    "mrs": "missus",
    "ms": "miz",
    "dr": "doctor",
    "prof": "professor",
    "jr": "junior",
    "sr": "senior",
    "capt": "captain",
    "gen": "general",
    "lt": "lieutenant",
    "col": "colonel",
    "sgt": "sergeant",
    "rev": "reverend",
    "hon": "honorable",
    "gov": "governor",
    "sen": "senator",
    "rep": "representative",
    "mt": "mount",
    "ft": "fort",
    "ave": "avenue",
    "rd": "road",
    "blvd": "boulevard",
    "dept": "department",
    "approx": "approximately",
    "vs": "versus",
    "etc": "et cetera",
    "jan": "january",
    "feb": "february",
    "aug": "august",
    "sept": "september",
    "oct": "october",
    "nov": "november",
    "dec": "december",
}
_ABBREV = {
    "de": {
        "z.b.": "zum Beispiel",
        "d.h.": "das heißt",
        "usw.": "und so weiter",
        "bzw.": "beziehungsweise",
        "dr.": "Doktor",
        "prof.": "Professor",
        "nr.": "Nummer",
        "ca.": "circa",
        "hr.": "Herr",
        "fr.": "Frau",
        "str.": "Straße",
        "u.a.": "unter anderem",
        "evtl.": "eventuell",
        "vgl.": "vergleiche",
    },
    "fr": {
        "m.": "monsieur",
        "mme": "madame",
        "mlle": "mademoiselle",
        "dr": "docteur",
        "dr.": "docteur",
        "etc.": "et cetera",
        "p.ex.": "par exemple",
        "av.": "avenue",
        "bd": "boulevard",
        "st": "saint",
    },
    "es": {
        "sr.": "señor",
        "sra.": "señora",
        "srta.": "señorita",
        "dr.": "doctor",
        "dra.": "doctora",
        "etc.": "etcétera",
        "ud.": "usted",
        "uds.": "ustedes",
        "p.ej.": "por ejemplo",
        "av.": "avenida",
    },
    "it": {
        "sig.": "signor",
        "sig.ra": "signora",
        "dott.": "dottor",
        "prof.": "professor",
        "ecc.": "eccetera",
        "p.es.": "per esempio",
        "dr.": "dottor",
    },
}


def _n2w(value: int | Decimal, lang: str, to: str = "cardinal") -> str:
    from num2words import num2words

    # num2words writes "one thousand, nine hundred": the commas would make espeak pause mid-number.
    return num2words(value, lang=_NUM2WORDS_LANG[lang], to=to).replace(",", "")


# Longer digit strings (IDs, card numbers, a 300-digit number) are read digit by digit: num2words overflows or
# recurses on them in several languages (Spanish from 15 digits), and no one reads them as one number anyway.
MAX_NUMBER_DIGITS = 12


def _digit_by_digit(digits: str, lang: str) -> str:
    return " ".join(_n2w(int(d), lang) for d in digits)


def _cardinal(digits: str, lang: str) -> str:
    if len(digits.lstrip("0")) > MAX_NUMBER_DIGITS:
        return _digit_by_digit(digits, lang)
    return _n2w(int(digits), lang)


def _ordinal(digits: str, lang: str) -> str:
    if len(digits.lstrip("0")) > MAX_NUMBER_DIGITS:
        return _digit_by_digit(digits, lang)
    return _n2w(int(digits), lang, to="ordinal")


def _decimal(int_part: str, frac: str, lang: str) -> str:
    """``3`` ``14`` -> "three point one four" (digits after the point read one by one, as people say them)."""
    whole = _cardinal(int_part or "0", lang)
    return " ".join([whole, _POINT_WORD[lang], *(_cardinal(d, lang) for d in frac)])


def _lang_base(lang: str) -> str:
    return "en" if lang.startswith("en") else lang


def _number_pattern(lang: str) -> str:
    """Regex source for a number with optional grouping and decimal part, in the language's convention."""
    if lang in _DECIMAL_COMMA:
        # 1.000.000 / 1 000 000 / 1'000 grouping, decimal comma
        return r"\d{1,3}(?:[. \u00a0\u202f]\d{3})+(?:,\d+)?|\d+(?:,\d+)?"
    return r"\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?"


def _split_number(s: str, lang: str) -> tuple[str, str]:
    """'1,234.5' -> ('1234', '5') in the language's convention."""
    dec, group = (",", ".") if lang in _DECIMAL_COMMA else (".", ",")
    s = re.sub(r"[ \u00a0\u202f']", "", s).replace(group, "")
    whole, _, frac = s.partition(dec)
    return whole, frac


def _read_number(s: str, lang: str) -> str:
    whole, frac = _split_number(s, lang)
    if frac:
        return _decimal(whole, frac, lang)
    return _cardinal(whole, lang)


def _currency_words(symbol: str, amount: str, scale: str | None, lang: str) -> str:
    table = _CURRENCY.get(lang, {}).get(symbol) or _CURRENCY["en"].get(symbol)
    if table is None:  # a currency sign we have no words for: read the number, keep the sign
        return f"{_read_number(amount, lang)} {symbol}"
    one, many, cent_one, cent_many = table
    whole, frac = _split_number(amount, lang)
    if scale:  # "$5 million" -> "five million dollars"; "$1.5 billion" -> "one point five billion dollars"
        return f"{_read_number(amount, lang)} {scale} {many}"
    words = f"{_cardinal(whole or '0', lang)} {one if whole.lstrip('0') == '1' else many}"
    if frac.strip("0"):
        cents = int((frac + "0")[:2])
        cent_words = f"{_cardinal(str(cents), lang)} {cent_one if cents == 1 else cent_many}"
        if not whole.strip("0"):
            return cent_words
        return f"{words} {_AND_WORD.get(lang, '')} {cent_words}".replace("  ", " ")
    return words


def _en_year(n: int) -> str:
    return _n2w(n, "en", to="year")


def _en_time(h: int, m: int, suffix: str | None, sentence_end: bool = False) -> str:
    hours = _cardinal(str(h), "en")
    if m == 0:
        words = f"{hours} o'clock" if not suffix else hours
    elif m < 10:
        words = f"{hours} oh {_cardinal(str(m), 'en')}"
    else:
        words = f"{hours} {_cardinal(str(m), 'en')}"
    if suffix:
        words += " " + " ".join(suffix.replace(".", "").lower())
        if suffix.endswith(".") and sentence_end:  # "at 10 p.m." closing a sentence: the period was both
            words += "."
    return words


_HOUR_WORD = {
    "de": "Uhr",
    "fr": "heures",
    "nl": "uur",
    "pl": "",
    "ru": "",
    "cs": "",
    "fi": "",
    "es": "",
    "it": "",
    "pt": "",
    "ja": "時",
}


def _time(h: int, m: int, lang: str) -> str:
    hour_word = _HOUR_WORD.get(lang, "")
    parts = [_cardinal(str(h), lang), hour_word]
    if m:
        parts.append(_cardinal(str(m), lang) + ("分" if lang == "ja" else ""))
    return " ".join(p for p in parts if p)


def _sub(pattern: str, repl: Callable[[re.Match], str], text: str, flags: int = 0) -> str:
    return re.sub(pattern, repl, text, flags=flags)


_MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
           "November", "December")
_FRACTION_DENOMINATORS = {2, 3, 4, 5, 6, 8, 10, 16}
_URL_SYMBOLS = {".": "dot", "/": "slash", "@": "at", "-": "dash", "_": "underscore", ":": "colon",
                "?": "question mark", "=": "equals", "&": "and", "+": "plus", "#": "hash", "~": "tilde",
                "%": "percent"}


# English units after a number: symbol -> (singular, plural). Case matters ("mB" is nothing, "MB" megabytes);
# ambiguous symbols ("in", "s", "m" after a currency amount) are left out or guarded below.
_EN_UNITS = {
    "km": ("kilometer", "kilometers"), "cm": ("centimeter", "centimeters"), "mm": ("millimeter", "millimeters"),
    "m": ("meter", "meters"), "mi": ("mile", "miles"), "ft": ("foot", "feet"), "yd": ("yard", "yards"),
    "kg": ("kilogram", "kilograms"), "g": ("gram", "grams"), "mg": ("milligram", "milligrams"),
    "lb": ("pound", "pounds"), "lbs": ("pound", "pounds"), "oz": ("ounce", "ounces"),
    "ml": ("milliliter", "milliliters"), "mL": ("milliliter", "milliliters"), "l": ("liter", "liters"),
    "L": ("liter", "liters"), "km/h": ("kilometer per hour", "kilometers per hour"),
    "mph": ("mile per hour", "miles per hour"), "kph": ("kilometer per hour", "kilometers per hour"),
    "KB": ("kilobyte", "kilobytes"), "kB": ("kilobyte", "kilobytes"), "MB": ("megabyte", "megabytes"),
    "GB": ("gigabyte", "gigabytes"), "TB": ("terabyte", "terabytes"), "Hz": ("hertz", "hertz"),
    "kHz": ("kilohertz", "kilohertz"), "MHz": ("megahertz", "megahertz"), "GHz": ("gigahertz", "gigahertz"),
    "ms": ("millisecond", "milliseconds"), "min": ("minute", "minutes"), "hr": ("hour", "hours"),
    "hrs": ("hour", "hours"), "kW": ("kilowatt", "kilowatts"), "kWh": ("kilowatt hour", "kilowatt hours"),
    "V": ("volt", "volts"), "dB": ("decibel", "decibels"),
}


# Roman numerals after a capitalised word: after a regnal name an ordinal ("Henry VIII" -> "Henry the Eighth"),
# after any other word a cardinal ("World War II" -> "World War two", "Neutron Bomb II" -> "Neutron Bomb two").
# Only I, V, X, L (C, D, M make abbreviations: DC, CD, MD, CV); a single letter only after a regnal name or a word of
# :data:`_ROMAN_CARDINAL_AFTER` ("Part I", "Henry V"; not "Malcolm X", "Bob I think").
_REGNAL_NAMES = {
    "Henry", "Edward", "George", "William", "Richard", "Charles", "James", "John", "Louis", "Elizabeth", "Mary",
    "Anne", "Philip", "Frederick", "Peter", "Catherine", "Alexander", "Nicholas", "Paul", "Pius", "Leo",
    "Benedict", "Gregory", "Innocent", "Clement", "Urban", "Boniface", "Ferdinand", "Francis", "Joseph", "Leopold",
    "Ludwig", "Otto", "Rudolf", "Wilhelm", "Gustav", "Christian", "Olaf", "Haakon", "Harald", "Juan", "Felipe",
    "Alfonso", "Pedro", "Manuel", "Umberto", "Napoleon", "Ivan", "Constantine", "Ramesses", "Ptolemy", "Cleopatra",
    "Robert", "David", "Victor", "Carl", "Sixtus", "Julius", "Honorius", "Stephen", "Alexios", "Basil",
}
_ROMAN_CARDINAL_AFTER = {
    "War", "Chapter", "Part", "Act", "Scene", "Book", "Volume", "Vol", "Section", "Phase", "Type", "Class", "Level",
    "Grade", "Stage", "Article", "Title", "Episode", "Apollo", "Bowl", "Round", "Series", "Mark", "Version",
    "Appendix", "Figure", "Table", "Unit", "Division", "Psalm", "Canto", "Movement", "Vatican",
}
_ROMAN_RE = r"(?=[IVXL]+\b)(?:L?X{0,3})(?:IX|IV|V?I{0,3})"


def _roman_value(r: str) -> int:
    vals = {"I": 1, "V": 5, "X": 10, "L": 50}
    total = 0
    for i, c in enumerate(r):
        v = vals[c]
        total += -v if i + 1 < len(r) and vals[r[i + 1]] > v else v
    return total


def _en_roman(m: re.Match) -> str:
    word, numeral = m.group(1), m.group(2)
    n = _roman_value(numeral)
    if word in _REGNAL_NAMES:
        return f"{word} the {_ordinal(str(n), 'en').capitalize()}"
    if word.rstrip(".") in _ROMAN_CARDINAL_AFTER or len(numeral) >= 2:
        return f"{word} {_cardinal(str(n), 'en')}"
    return m.group(0)


def _en_unit(m: re.Match) -> str:
    amount, unit = m.group(1), m.group(2)
    one = amount.replace(",", "") in ("1", "1.0")
    return f"{amount} {_EN_UNITS[unit][0 if one else 1]}"


def _en_spell_address(m: re.Match) -> str:
    """A URL or e-mail address as read aloud: "https://www.example.com/a" -> "www dot example dot com slash a"."""
    addr = re.sub(r"^[a-z]+://", "", m.group(0), flags=re.I)
    parts = re.split(r"([./@\-_:?=&+#~%])", addr)
    words = [_URL_SYMBOLS.get(p, p) for p in parts if p]
    # Digits inside an address are said one by one ("route66" -> "route six six").
    return " ".join(re.sub(r"\d", lambda d: f" {_n2w(int(d.group(0)), 'en')} ", w) for w in words)


def _en_phone(m: re.Match) -> str:
    """"555-1234", "(555) 123-4567", "+1 555 123 4567": each digit said, a pause between groups."""
    groups = re.findall(r"\d+", m.group(0))
    lead = "plus " if m.group(0).lstrip().startswith("+") else ""
    return lead + ", ".join(_digit_by_digit(g, "en") for g in groups)


def _en_date(month: int, day: int, year: str | None) -> str | None:
    if not (1 <= month <= 12 and 1 <= day <= 31):
        return None
    words = f"{_MONTHS[month - 1]} {_ordinal(str(day), 'en')}"
    if year is not None:
        y = int(year) + (2000 if len(year) == 2 and int(year) < 50 else 1900 if len(year) == 2 else 0)
        words += ", " + _en_year(y) if 1100 <= y <= 2099 else ", " + _cardinal(str(y), "en")
    return words


def _en_fraction(num: str, den: str) -> str:
    """"1/2" -> "one half", "3/4" -> "three quarters", "5/8" -> "five eighths"."""
    n, d = int(num), int(den)
    head = _cardinal(num, "en")
    if d == 2:
        tail = "half" if n == 1 else "halves"
    elif d == 4:
        tail = "quarter" if n == 1 else "quarters"
    else:
        tail = _ordinal(den, "en") + ("" if n == 1 else "s")
    return f"{head} {tail}"


def _expand_en_patterns(text: str) -> str:
    """English readings that depend on the pattern around the digits (run before the plain numbers): addresses,
    telephone numbers, dates, ranges, fractions, temperatures, clock times with a glued a.m./p.m., Roman numerals,
    currency scales ($5m), units, dotted versions."""
    text = _sub(r"\b(?:https?://|www\.)[^\s<>\"']*[^\s<>\"'.,;:!?)]", _en_spell_address, text, flags=re.I)
    text = _sub(r"\b[\w.+-]+@[\w-]+(?:\.[\w-]+)+\b", _en_spell_address, text)
    text = _sub(r"(?<![\w.,/-])(?:\+?\d{1,3}[ .-])?(?:\(\d{3}\) ?|\d{3}[ .-])?\d{3}-\d{4}(?![\w-]|[.,]\d)",
                _en_phone, text)
    # Dates: 12/25/2023 (month first, as in the US), 2023-12-25 (ISO); left alone when not a valid date.
    text = _sub(r"(?<![\w/.])(\d{1,2})/(\d{1,2})/(\d{4}|\d{2})(?![\w/])",
                lambda m: _en_date(int(m.group(1)), int(m.group(2)), m.group(3)) or m.group(0), text)
    text = _sub(r"(?<![\w/.-])(\d{4})-(\d{2})-(\d{2})(?![\w-])",
                lambda m: _en_date(int(m.group(2)), int(m.group(3)), m.group(1)) or m.group(0), text)
    # Ranges: "1990-2000" -> "1990 to 2000", "5-10" -> "5 to 10" (the numbers themselves are read below); a pair
    # that goes down ("3-2", a score) is left to the plain numbers.
    text = _sub(r"(?<![\w.,/-])(\d{1,4})-(\d{1,4})(?![\w-]|[.,]\d)",
                lambda m: f"{m.group(1)} to {m.group(2)}" if int(m.group(1)) < int(m.group(2)) else m.group(0), text)
    # Proper fractions with a common denominator; other pairs ("24/7", "50/50", "9/11") are read as two numbers.
    text = _sub(r"(?<![\w/.])(\d{1,2})/(\d{1,2})(?![\w/]|\.\d)",
                lambda m: _en_fraction(m.group(1), m.group(2))
                if 0 < int(m.group(1)) < int(m.group(2)) and int(m.group(2)) in _FRACTION_DENOMINATORS
                else f"{m.group(1)} {m.group(2)}", text)
    text = _sub(r"(-?\d+(?:\.\d+)?)\s?°\s?([CF])\b",
                lambda m: f"{m.group(1)} degrees {'Celsius' if m.group(2) == 'C' else 'Fahrenheit'}", text)
    text = _sub(r"(-?\d+(?:\.\d+)?)\s?°", lambda m: f"{m.group(1)} degrees", text)
    text = _sub(r"(?<![\w:.,])(1[0-2]|0?[1-9])\s?([ap])\.?m\b\.?(?P<end>(?=\s*$|\s+(?-i:[A-Z])))?",
                lambda m: f"{_cardinal(m.group(1), 'en')} {m.group(2).lower()} m" + ("." if m.group("end") is not None
                                                                                      and m.group(0).endswith(".")
                                                                                      else ""),
                text, flags=re.I)
    text = _sub(rf"\b([A-Z][a-z]+\.?) ({_ROMAN_RE})\b(?!['-])", _en_roman, text)
    # "$5m", "£2bn", "€300k": the scale written out, for the currency rule below ("five million dollars").
    text = _sub(r"([$£€])(\d+(?:\.\d+)?)(k|m|bn|b)\b",
                lambda m: f"{m.group(1)}{m.group(2)} " + {"k": "thousand", "m": "million"}.get(m.group(3), "billion"),
                text)
    units = "|".join(re.escape(u) for u in sorted(_EN_UNITS, key=len, reverse=True))
    text = _sub(rf"(?<![\w.,$£€])(\d{{1,3}}(?:,\d{{3}})+(?:\.\d+)?|\d+(?:\.\d+)?)\s?({units})(?![\w/]|\.\w)",
                _en_unit, text)
    return _sub(r"(?<![\w.])\d+(?:\.\d+){2,}(?![\w.]|\.\d)",
                lambda m: " point ".join(_cardinal(p, "en") for p in m.group(0).split(".")), text)


def _expand_numbers(text: str, lang: str) -> str:
    if lang == "en":
        text = _expand_en_patterns(text)
    num = _number_pattern(lang)
    symbols = "|".join(
        re.escape(s) for s in sorted({s for t in _CURRENCY.values() for s in t}, key=len, reverse=True)
    )
    scale = r"(?:\s+(thousand|million|billion|trillion))?"

    # Currency before the amount ($3.50, € 5, $5 million) and after it (5 €, 3,50 €, 20 zł).
    text = _sub(
        rf"({symbols})\s?({num}){scale}\b",
        lambda m: _currency_words(m.group(1), m.group(2), m.group(3), lang),
        text,
    )
    text = _sub(
        rf"(?<![\w.,])({num})\s?({symbols})(?!\w)",
        lambda m: _currency_words(m.group(2), m.group(1), None, lang),
        text,
    )
    # Percentages.
    text = _sub(
        rf"(?<![\w.,])(-?)({num})\s?%",
        lambda m: (
            ("minus " if m.group(1) and lang == "en" else "")
            + f"{_read_number(m.group(2), lang)} {_PERCENT_WORD[lang]}"
        ),
        text,
    )
    # Times 10:30, 7:05 pm.
    if lang == "en":
        text = _sub(
            r"\b([01]?\d|2[0-3]):([0-5]\d)(?:\s*([ap]\.?m\.?+)(?=\W|$))?(?P<end>(?=\s*$|\s+(?-i:[A-Z])))?",
            lambda m: _en_time(int(m.group(1)), int(m.group(2)), m.group(3), m.group("end") is not None),
            text,
            flags=re.I,
        )
    else:
        text = _sub(
            r"\b([01]?\d|2[0-3])[:h]([0-5]\d)\b(?:\s*Uhr\b)?",
            lambda m: _time(int(m.group(1)), int(m.group(2)), lang),
            text,
        )
    # Ordinals.
    if lang == "en":
        text = _sub(
            r"\b(\d+)(st|nd|rd|th)\b", lambda m: _ordinal(m.group(1), lang), text, flags=re.I
        )
    elif lang == "fr":
        text = _sub(r"\b(\d+)(er|re|e|ème|eme)\b", lambda m: _ordinal(m.group(1), lang), text)
    elif lang in ("es", "it", "pt"):
        text = _sub(r"\b(\d+)\s?[ºª°]", lambda m: _ordinal(m.group(1), lang), text)
    # English years: a bare four-digit number 1100-2099 (no grouping comma, not a decimal).
    if lang == "en":
        text = _sub(
            r"(?<![\w.,$£€])(1[1-9]\d\d|20\d\d)(s?)(?![\w%]|[.,]\d)",
            lambda m: _plural_year(int(m.group(1))) if m.group(2) else _en_year(int(m.group(1))),
            text,
        )
    # Negative numbers, then everything else.
    text = _sub(
        rf"(?<![\w.,])-({num})(?![\w])",
        lambda m: ("minus " if lang == "en" else "") + _read_number(m.group(1), lang),
        text,
    )
    # Japanese has no spaces: a number may follow a letter directly (東京に3人).
    before = r"(?<![\d.,])" if lang == "ja" else r"(?<![\w])"
    text = _sub(rf"{before}({num})", lambda m: _read_number(m.group(1), lang), text)
    return text


def _plural_year(n: int) -> str:
    """1980s -> "nineteen eighties"."""
    words = _en_year(n)
    last = words.split(" ")[-1].split("-")[-1]
    plural = last[:-1] + "ies" if last.endswith("y") else last + "s"
    return words[: len(words) - len(last)] + plural


def _expand_abbreviations(text: str, lang: str) -> str:
    if lang == "en":
        text = re.sub(r"\be\.g\.", "for example", text, flags=re.I)
        text = re.sub(r"\bi\.e\.", "that is", text, flags=re.I)
        # St. before a capitalised name is Saint, elsewhere Street.
        text = re.sub(r"\bSt\.?(?=\s+[A-Z])", "Saint", text)
        text = re.sub(r"\bSt\.", "Street", text)
        text = re.sub(r"\bNo\.\s*(?=\d)", "number ", text)
        text = re.sub(r"\s&\s", " and ", text)
        # Telephone keys, as the prompts of a phone system say them: "press * or #" -> "press star or pound",
        # "*69" -> "star 69", "#5" -> "number 5". Inside or after a word ("C#", "*bold*") they stay.
        text = re.sub(r"(?<![\w*#])\*(?=\d)", "star ", text)
        text = re.sub(r"(?<![\w*#])\*(?=[\s.,;:!?)]|$)", "star", text)
        text = re.sub(r"(?<![\w*#])#(?=\d)", "number ", text)
        text = re.sub(r"(?<![\w*#])#(?=[\s.,;:!?)]|$)", "pound", text)

        def repl(m: re.Match) -> str:
            word = _EN_ABBREV[m.group(1).lower()]
            word = word.capitalize() if m.group(1)[0].isupper() else word
            # "etc." closing a sentence keeps its full stop.
            if m.group(1).lower() == "etc" and re.match(r"\s*($|[A-Z])", text[m.end() :]):
                word += "."
            return word

        text = re.sub(r"\b(" + "|".join(_EN_ABBREV) + r")\.", repl, text, flags=re.I)
        # British style without the period, only before a name: "Mr Smith", "Dr Who".
        text = re.sub(r"\b(Mr|Mrs|Ms|Dr|Prof)\b(?=\s+[A-Z])", repl, text)
        return text
    table = _ABBREV.get(lang)
    if not table:
        return text
    for abbr, full in sorted(table.items(), key=lambda kv: -len(kv[0])):
        pat = r"(?<!\w)" + re.escape(abbr) + (r"(?=\s|$)" if not abbr.endswith(".") else r"(?=\s|$|,)")
        text = re.sub(
            pat, lambda m, full=full: full.capitalize() if m.group(0)[0].isupper() else full, text, flags=re.I
        )
    return text


_QUOTES = str.maketrans(
    {
        "“": '"',
        "”": '"',
        "„": '"',
        "‟": '"',
        "«": '"',
        "»": '"',
        "‹": "'",
        "›": "'",
        "‘": "'",
        "’": "'",
        "‚": "'",
        "‛": "'",
        "`": "'",
        "´": "'",
        "–": "-",
        "—": "-",
        "‐": "-",
        "‑": "-",
        "‒": "-",
        "−": "-",
        "…": "...",
        "\u00a0": " ",
        "\u2009": " ",
        "\u202f": " ",
    }
)


def _check_lang(lang: str) -> str:
    code = (lang or "").strip().lower().replace("_", "-")
    if code not in SUPPORTED_LANGUAGES:
        raise SpeechLMError(
            f"unsupported language {lang!r} for text normalisation; supported: {', '.join(SUPPORTED_LANGUAGES)}"
        )
    return code


def normalize_text(text: str, lang: str = "en") -> str:
    """Normalise ``text`` for reading aloud: Unicode, quotes, whitespace, abbreviations, numbers (see module doc).

    Case and sentence punctuation are kept. Unknown ``lang`` raises :class:`SpeechLMError`.
    """
    code = _check_lang(lang)
    base = _lang_base(code)
    text = unicodedata.normalize("NFKC" if base in ("cmn", "ja") else "NFC", text)
    # Non-breaking and thin spaces inside numbers are kept until the number has been read.
    text = text.translate(
        {k: v for k, v in _QUOTES.items() if v != " "} if base in _DECIMAL_COMMA else _QUOTES
    )
    text = " ".join(text.split())
    text = _expand_abbreviations(text, base)
    if base != "cmn":  # espeak reads Mandarin digits itself, in Mandarin
        text = _expand_numbers(text, base)
    text = text.translate(_QUOTES)
    # A dash between words (not inside a hyphenated word) is a pause: keep it readable.
    text = re.sub(r"\s+-\s+", ", ", text)
    return " ".join(text.split())


_CJK_RE = re.compile(r"([\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff])")


def normalize_for_wer(text: str, lang: str = "en") -> str:
    """The comparison form of ``text`` for WER: normalised, lower case, no punctuation, single spaces.

    Inner apostrophes are kept (``don't``), hyphens split words. For ``cmn``/``ja`` every CJK character is
    separated by spaces, so WER over the result is a character error rate.
    """
    code = _check_lang(lang)
    text = normalize_text(text, code).lower()
    out = []
    for ch in text:
        cat = unicodedata.category(ch)
        if ch == "'":
            out.append(ch)
        elif cat[0] in "PSZC":  # punctuation, symbols, separators, controls -> space
            out.append(" ")
        else:
            out.append(ch)
    text = "".join(out)
    text = re.sub(r"(?<!\w)'|'(?!\w)", " ", text)  # quotes, not apostrophes
    if _lang_base(code) in ("cmn", "ja"):
        text = _CJK_RE.sub(r" \1 ", text)
    return " ".join(text.split())
