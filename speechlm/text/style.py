"""Style descriptions: the vocabulary shared by the data pipeline's descriptions and the TTS's ``--description``.

The data pipeline (:mod:`speechlm.pipeline.describe`) writes a sentence such as "A woman speaks quickly in a high,
lively voice in a quiet room." from measured tags; :func:`parse_description` reads such a sentence (or a user's
own words) back into the same tags, TextrolSpeech-style:

- ``gender``: ``female`` | ``male``;
- ``pitch_bin``: ``low`` | ``moderate`` | ``high`` (relative to the gender, as the tags are);
- ``range_bin``: ``monotone`` | ``moderate`` | ``expressive`` (the pitch range);
- ``rate_bin``: ``slow`` | ``moderate`` | ``fast``;
- ``noise_bin``: ``quiet`` | ``slightly noisy`` | ``noisy``;
- ``reverb_bin``: ``close`` | ``slightly distant`` | ``distant``;
- and one the pipeline does not tag: ``phonation``: ``whispered``.

Matching is by words and phrases (case-insensitive, whole words), more specific phrases first ("no background
noise" is quiet, not noisy; "at an even pace" is a pace, not a flat voice); a tag that is not mentioned is left
out. What is not understood is reported, never guessed (:class:`Style` ``.unknown``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

# The phrases the pipeline's descriptions are written with (one is drawn per tag value).
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

TAGS = ("gender", "pitch_bin", "range_bin", "rate_bin", "noise_bin", "reverb_bin")  # the pipeline's
EXTRA_TAGS = ("phonation",)
VOICE_TAGS = ("gender", "pitch_bin", "range_bin")  # what a voice prompt sets instead

# (tag, value, pattern), tried in this order; a match's words are used up, so later patterns do not see them.
_PATTERNS: tuple[tuple[str, str, str], ...] = (
    ("noise_bin", "quiet", r"(no|without|free of|no background) (background )?noise|clean background|"
                           r"quiet (room|place|environment|setting|background)|silent background|noise-free"),
    ("noise_bin", "slightly noisy", r"(some|a little|a bit of|light|slight|faint) (background )?noise|"
                                    r"slightly noisy|a little noisy"),
    ("noise_bin", "noisy", r"(loud|heavy|lots of|a lot of|much) (background )?noise|noisy|background noise|"
                           r"noise in the background"),
    ("reverb_bin", "slightly distant", r"slightly (away|distant|far|reverberant|echoey)|"
                                       r"(a little|some|slight|a bit of) (room )?(echo|reverb|reverberation)"),
    ("reverb_bin", "distant", r"far (away )?from the (microphone|mic)|(a lot of|lots of|much|heavy|strong) "
                              r"(echo|reverb|reverberation)|very reverberant|reverberant|echoey|echoing|"
                              r"(large|big|empty) (hall|room|church|cathedral)|distant|in a hall|cathedral"),
    ("reverb_bin", "close", r"close to the (microphone|mic)|close, dry|up close|close-up|close-miked|"
                            r"dry (sound|recording|room)|no (echo|reverb)|without (echo|reverb)|intimate"),
    ("rate_bin", "moderate", r"(at )?an? (moderate|normal|even|steady|average|medium|regular) "
                             r"(pace|speed|tempo|rate)"),
    ("rate_bin", "slow", r"slow(ly)?|unhurried(ly)?|measured|leisurely|drawl(ing)?|at a slow pace"),
    ("rate_bin", "fast", r"quick(ly)?|fast|rapid(ly)?|brisk(ly)?|hurried(ly)?|swift(ly)?|speedy"),
    ("pitch_bin", "high", r"high-pitched|high pitch(ed)?|high|bright|squeaky|shrill"),
    ("pitch_bin", "low", r"low-pitched|low pitch(ed)?|low|deep|bass|booming|gravelly"),
    ("pitch_bin", "moderate", r"medium-pitched|mid-range|moderate pitch|medium pitch|moderate|medium"),
    ("range_bin", "monotone", r"monotone|monotonous|flat|even|robotic|droning|dull|unexpressive"),
    ("range_bin", "expressive", r"lively|expressive|animated|excited|energetic|dynamic|cheerful|enthusiastic|"
                                r"emphatic|varied"),
    ("phonation", "whispered", r"whisper(s|ed|ing|y)?|in a whisper|hushed|under (his|her|their) breath"),
    ("gender", "female", r"woman|women|female|girl|lady|she|her"),
    ("gender", "male", r"man|men|male|guy|boy|gentleman|he|his"),
)
# Words that carry no style (subjects, verbs, articles): what remains after matching and these is "unknown".
_FILLER = set("""a an the in with and or of to at on by for from into over using use voice voices tone pitch
pitched speaker speakers person someone somebody speaks speak speaking talks talk talking says say saying reads read
reading delivers deliver delivering the words word sentence text recording recorded this that very quite rather
somewhat slightly bit little sound sounds sounding room setting environment microphone mic pace speed tempo rate
way manner style who is are it its their them they was were be been being like as but not no clear clearly
clean background""".split())


@dataclass(frozen=True)
class Style:
    """Tags read from a description (``tags``: tag -> value, only those mentioned) and the words of it that were
    not understood (``unknown``)."""

    tags: dict[str, str] = field(default_factory=dict)
    unknown: tuple[str, ...] = ()

    def summary(self, unknown: bool = True) -> str:
        """One line, e.g. ``gender female, pitch high, rate slow (whispers not understood)``."""
        text = ", ".join(f"{t.removesuffix('_bin')} {v}" for t, v in self.tags.items()) or "nothing understood"
        return text + (f" ({', '.join(self.unknown)} not understood)" if unknown and self.unknown else "")


def parse_description(text: str) -> Style:
    """A free-text style description -> :class:`Style` (module docstring). The first mention of a tag wins;
    a later, different value of the same tag is ignored."""
    s = " " + re.sub(r"\s+", " ", text.lower().replace("\u2019", "'")) + " "
    tags: dict[str, str] = {}
    for tag, value, pat in _PATTERNS:
        rx = re.compile(r"(?<![\w-])(?:" + pat + r")(?![\w-])")
        hits = list(rx.finditer(s))
        if not hits:
            continue
        tags.setdefault(tag, value)
        s = rx.sub(lambda m: " " * len(m.group(0)), s)
    words = re.findall(r"[a-z][a-z'-]*", s)
    unknown = tuple(w for w in words if w not in _FILLER)
    return Style({t: tags[t] for t in TAGS + EXTRA_TAGS if t in tags}, unknown)
