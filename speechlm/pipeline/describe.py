"""Stage 7b: a natural-language style description from the binned tags (TextrolSpeech / Parler-TTS style).

``describe(tags, seed)`` turns ``gender``, ``pitch_bin``, ``rate_bin``, ``noise_bin``, ``reverb_bin`` and the
pitch range (monotone / expressive) into one sentence such as "A woman speaks quickly in a high, lively voice in
a quiet room." The phrasing varies (several templates, synonyms for every bin, the order of the clauses) and is
fixed by ``seed``: the same tags and seed always give the same text. A missing tag is left out of the sentence,
never guessed.
"""

from __future__ import annotations

import random
from typing import Any

SUBJECT = {"female": ("A woman", "A female speaker"), "male": ("A man", "A male speaker"),
           None: ("A speaker", "Someone", "A person")}
RATE = {"slow": ("slowly", "at a slow pace", "unhurriedly", "in a slow, measured way"),
        "moderate": ("at a moderate pace", "at a normal speed", "at an even pace", "at a steady tempo"),
        "fast": ("quickly", "at a fast pace", "rapidly", "briskly")}
PITCH = {"low": ("low", "deep", "low-pitched"), "moderate": ("moderate", "medium-pitched", "mid-range"),
         "high": ("high", "high-pitched", "bright")}
RANGE = {"monotone": ("flat", "monotone", "even"), "moderate": ("", "", ""),
         "expressive": ("lively", "expressive", "animated")}
NOISE = {"quiet": ("in a quiet room", "with a clean background", "with no background noise"),
         "slightly noisy": ("with some background noise", "in a slightly noisy setting", "over a little noise"),
         "noisy": ("in a noisy environment", "over loud background noise", "in a noisy recording")}
REVERB = {"close": ("close to the microphone", "with a close, dry sound", "up close"),
          "slightly distant": ("slightly away from the microphone", "with a little room echo",
                               "in a slightly reverberant room"),
          "distant": ("far from the microphone", "with a lot of echo", "in a very reverberant room")}
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
