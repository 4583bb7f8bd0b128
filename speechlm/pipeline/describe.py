"""Stage 7b: a natural-language style description from the binned tags (TextrolSpeech / Parler-TTS style).

``describe(tags, seed)`` turns ``gender``, ``pitch_bin``, ``rate_bin``, ``noise_bin``, ``reverb_bin`` and the
pitch range (monotone / expressive) into one sentence such as "A woman speaks quickly in a high, lively voice in
a quiet room." The phrasing varies (several templates, synonyms for every bin, the order of the clauses) and is
fixed by ``seed``: the same tags and seed always give the same text. A missing tag is left out of the sentence,
never guessed. The phrases are :mod:`speechlm.text.style`'s, which also reads such a sentence back into tags
(``speechlm tts --description``).
"""

from __future__ import annotations

import random
from typing import Any

from speechlm.text.style import NOISE, PITCH, RANGE, RATE, REVERB, SUBJECT

__all__ = ["NOISE", "PITCH", "RANGE", "RATE", "RANGE_ST", "REVERB", "SUBJECT", "describe", "range_bin"]

RANGE_ST = (4.0, 9.0)  # pitch range (semitones) below: monotone, above: expressive


def range_bin(pitch_range_st: float | None) -> str | None:
    """``monotone`` | ``moderate`` | ``expressive`` from the 5-95 % F0 span in semitones."""
    if pitch_range_st is None or pitch_range_st <= 0:
        return None
    return "monotone" if pitch_range_st < RANGE_ST[0] else "moderate" if pitch_range_st < RANGE_ST[1] else \
        "expressive"


def describe(tags: dict[str, Any], seed: int) -> str:
    """One style description of ``tags`` (see :func:`speechlm.pipeline.tags.tag`); reproducible with ``seed``."""
    rng = random.Random(f"describe:{seed}")
    g = tags.get("gender") if tags.get("gender") in ("female", "male") else None
    subj = rng.choice(SUBJECT[g])
    rate = rng.choice(RATE[tags["rate_bin"]]) if tags.get("rate_bin") in RATE else None
    pitch = rng.choice(PITCH[tags["pitch_bin"]]) if tags.get("pitch_bin") in PITCH else None
    rb = range_bin(tags.get("pitch_range_st"))
    liveliness = rng.choice(RANGE[rb]) if rb else ""
    adjs = [a for a in (pitch, liveliness) if a]
    voice = f"{'an' if adjs and adjs[0][0] in 'aeiou' else 'a'} {', '.join(adjs)} voice" if adjs else None
    places = [rng.choice(NOISE[tags["noise_bin"]])] if tags.get("noise_bin") in NOISE else []
    if tags.get("reverb_bin") in REVERB:
        places.append(rng.choice(REVERB[tags["reverb_bin"]]))
    rng.shuffle(places)
    place = " and ".join(places)
    form = rng.randrange(4)
    if form == 0 or not voice:
        parts = [subj, "speaks", rate, f"in {voice}" if voice else None, place]
        text = " ".join(p for p in parts if p)
    elif form == 1:
        v = voice[0].upper() + voice[1:]
        parts = [f"{v}:", subj.lower(), "talking", rate, place]
        text = " ".join(p for p in parts if p)
    elif form == 2:
        text = " ".join(p for p in [subj, "with", voice, "delivers the words", rate, place] if p)
    else:
        text = " ".join(p for p in ["In this recording,", subj.lower(), "talks", rate, f"using {voice}", place] if p)
    return text[0].upper() + text[1:] + "."
