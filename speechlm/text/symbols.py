"""Symbol tables: the fixed, versioned token inventories that text-conditioned models embed.

A :class:`SymbolTable` maps symbols to ids. The first ids are always the specials::

    0 <pad>   1 <unk>   2 <bos>   3 <eos>   4 |  (word boundary)   5 <mask>

then the inventory in the stored order. A model saves its table (``save``) next to its weights and loads it back
(``load``); the content ``hash`` says whether two tables give the same ids.

* :func:`default_symbols` — phonemes: built from ``speechlm/assets/phonemes_v1.json``, a sorted list of the IPA
  phones (plus stress marks and Mandarin tone letters) that espeak-ng 1.52 produces through
  :mod:`speechlm.text.g2p` for the supported languages. It was derived once at development time by
  phonemizing sample text of every language (:mod:`speechlm.text.inventory`) and frozen: nothing at run time depends
  on data order, so the table is identical across runs and machines. Encoding splits on whitespace
  (``"h ə | l oʊ"``).
* :func:`char_symbols` — characters, for character-level CTC: lower-case letters of the requested Latin/Cyrillic
  alphabets and the apostrophe, frozen in ``speechlm/assets/chars_v1.json``. Encoding goes character by character;
  a space encodes as the word boundary ``|`` and decodes back to a space.

Symbols not in a table encode as ``<unk>``; ``table.unknown`` counts them (per symbol) so a caller can report
coverage.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
from collections import Counter
from collections.abc import Iterable, Sequence
from importlib import resources
from pathlib import Path

from speechlm.errors import SpeechLMError
from speechlm.utils.atomic import atomic_write_text

PAD, UNK, BOS, EOS, WORD, MASK = "<pad>", "<unk>", "<bos>", "<eos>", "|", "<mask>"
SPECIALS: tuple[str, ...] = (PAD, UNK, BOS, EOS, WORD, MASK)
FORMAT = "speechlm-symbols"
KINDS = ("phoneme", "char")


class SymbolTable:
    """An ordered symbol inventory with the specials first (``<pad>`` = 0).

    Args:
        inventory: the symbols after the specials, in id order (must be unique, non-empty strings without
            whitespace, not a special).
        name: a label (``"phonemes"``, ``"chars"``).
        version: the inventory's version; a changed inventory is a new version.
        kind: ``"phoneme"`` (encode splits on whitespace) or ``"char"`` (encode goes character by character).
        languages: the languages the inventory was built for (informational).
    """

    def __init__(
        self,
        inventory: Sequence[str],
        name: str = "phonemes",
        version: int = 1,
        kind: str = "phoneme",
        languages: Sequence[str] = (),
    ):
        if kind not in KINDS:
            raise SpeechLMError(f"symbol table kind must be one of {KINDS}, got {kind!r}")
        inventory = tuple(inventory)
        for s in inventory:
            if not isinstance(s, str) or not s or any(c.isspace() for c in s) or s in SPECIALS:
                raise SpeechLMError(f"bad symbol {s!r} in symbol table {name!r}")
        if len(set(inventory)) != len(inventory):
            dup = sorted(s for s, n in Counter(inventory).items() if n > 1)
            raise SpeechLMError(f"duplicate symbols in symbol table {name!r}: {dup[:10]}")
        self.name = name
        self.version = int(version)
        self.kind = kind
        self.languages = tuple(languages)
        self.symbols: tuple[str, ...] = SPECIALS + inventory
        self._index = {s: i for i, s in enumerate(self.symbols)}
        self.unknown: Counter[str] = Counter()

    # ids of the specials
    pad_id = 0
    unk_id = 1
    bos_id = 2
    eos_id = 3
    word_id = 4
    mask_id = 5
    specials = SPECIALS

    @property
    def phonemes(self) -> tuple[str, ...]:
        """The inventory without the specials (for a char table: the characters)."""
        return self.symbols[len(SPECIALS) :]

    def __len__(self) -> int:
        return len(self.symbols)

    def __contains__(self, symbol: object) -> bool:
        return symbol in self._index

    def __iter__(self):
        return iter(self.symbols)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SymbolTable) and self.hash == other.hash

    def __hash__(self) -> int:
        return hash(self.hash)

    def __repr__(self) -> str:
        return (
            f"SymbolTable(name={self.name!r}, version={self.version}, kind={self.kind!r}, size={len(self)}, "
            f"hash={self.hash!r})"
        )

    def id(self, symbol: str) -> int:
        """The id of one symbol (``<unk>``'s id if absent; not counted)."""
        return self._index.get(symbol, self.unk_id)

    def symbol(self, i: int) -> str:
        return self.symbols[i]

    def tokenize(self, text: str) -> list[str]:
        """The symbols ``encode`` would look up: whitespace-split phones, or characters (space -> ``|``)."""
        if self.kind == "phoneme":
            return text.split()
        return [WORD if c.isspace() else c for c in " ".join(text.split())]

    def encode(self, text: str, add_bos: bool = False, add_eos: bool = False) -> list[int]:
        """``"h ə | l oʊ"`` (phoneme table) or ``"hi there"`` (char table) -> ids ``[N]``.

        Unknown symbols become ``<unk>`` and are counted in ``self.unknown``.
        """
        ids = [self.bos_id] if add_bos else []
        for s in self.tokenize(text):
            i = self._index.get(s)
            if i is None:
                self.unknown[s] += 1
                i = self.unk_id
            ids.append(i)
        if add_eos:
            ids.append(self.eos_id)
        return ids

    def decode(self, ids: Iterable[int], skip_specials: bool = True) -> str:
        """ids -> the symbol string (phones joined by spaces; chars joined, ``|`` -> space).

        ``skip_specials`` drops ``<pad>``, ``<bos>``, ``<eos>`` and ``<mask>``; ``<unk>`` and ``|`` are kept.
        """
        skip = {self.pad_id, self.bos_id, self.eos_id, self.mask_id} if skip_specials else set()
        out = []
        for i in ids:
            i = int(i)
            if not 0 <= i < len(self.symbols):
                raise SpeechLMError(f"id {i} out of range for symbol table {self.name!r} of size {len(self)}")
            if i not in skip:
                out.append(self.symbols[i])
        if self.kind == "phoneme":
            return " ".join(out)
        return "".join(" " if s == WORD else s for s in out)

    def coverage(self, texts: Iterable[str]) -> float:
        """Fraction of the symbols of ``texts`` that are in the table (ignores ``|``)."""
        total = known = 0
        for t in texts:
            for s in self.tokenize(t):
                if s == WORD:
                    continue
                total += 1
                known += s in self._index
        return known / total if total else 1.0

    # -- serialisation -------------------------------------------------------------------------------------------

    @functools.cached_property
    def hash(self) -> str:
        """Content hash (sha256, 16 hex digits) of the id -> symbol mapping and the encoding kind."""
        payload = json.dumps({"kind": self.kind, "symbols": list(self.symbols)}, ensure_ascii=False)
        return hashlib.sha256(payload.encode("utf-8")).hexdigest()[:16]

    def to_dict(self) -> dict:
        return {
            "format": FORMAT,
            "name": self.name,
            "version": self.version,
            "kind": self.kind,
            "languages": list(self.languages),
            "specials": list(SPECIALS),
            "symbols": list(self.symbols),
            "hash": self.hash,
        }

    def to_json(self) -> str:
        """Canonical JSON (fixed key order, UTF-8, one symbol per line): byte-identical for equal tables."""
        d = self.to_dict()
        head = {k: v for k, v in d.items() if k != "symbols"}
        lines = ["{"]
        for k, v in head.items():
            lines.append(f"  {json.dumps(k)}: {json.dumps(v, ensure_ascii=False)},")
        lines.append('  "symbols": [')
        lines.append(",\n".join(f"    {json.dumps(s, ensure_ascii=False)}" for s in self.symbols))
        lines.append("  ]")
        lines.append("}")
        return "\n".join(lines) + "\n"

    @classmethod
    def from_dict(cls, d: dict) -> SymbolTable:
        if not isinstance(d, dict) or d.get("format") != FORMAT:
            raise SpeechLMError("not a speechlm symbol table (missing format: speechlm-symbols)")
        symbols = d.get("symbols")
        if not isinstance(symbols, list) or tuple(symbols[: len(SPECIALS)]) != SPECIALS:
            raise SpeechLMError(f"symbol table must start with the specials {SPECIALS}")
        table = cls(
            symbols[len(SPECIALS) :],
            name=d.get("name", "phonemes"),
            version=d.get("version", 1),
            kind=d.get("kind", "phoneme"),
            languages=d.get("languages", ()),
        )
        if d.get("hash") and d["hash"] != table.hash:
            raise SpeechLMError(
                f"symbol table {table.name!r}: stored hash {d['hash']} does not match its "
                f"content ({table.hash}); the file was edited or is corrupt"
            )
        return table

    @classmethod
    def from_json(cls, text: str) -> SymbolTable:
        try:
            d = json.loads(text)
        except json.JSONDecodeError as exc:
            raise SpeechLMError(f"symbol table is not valid JSON: {exc}") from None
        return cls.from_dict(d)

    def save(self, path: str | os.PathLike) -> Path:
        """Write the table as JSON, atomically."""
        path = Path(path)
        atomic_write_text(path, self.to_json())
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> SymbolTable:
        path = Path(path)
        if not path.is_file():
            raise SpeechLMError(f"symbol table not found: {path}")
        return cls.from_json(path.read_text(encoding="utf-8"))


# ---------------------------------------------------------------------------------------------------------------
# The shipped inventories

PHONEME_ASSET = "phonemes_v1.json"
CHAR_ASSET = "chars_v1.json"


def _asset(name: str) -> dict:
    try:
        text = resources.files("speechlm.assets").joinpath(name).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SpeechLMError(f"shipped asset speechlm/assets/{name} is missing (reinstall speechlm)") from None
    return json.loads(text)


@functools.lru_cache(maxsize=1)
def _phoneme_asset() -> dict:
    return _asset(PHONEME_ASSET)


def default_symbols() -> SymbolTable:
    """The default phoneme table (version 1): specials + the frozen phone list of ``phonemes_v1.json``.

    A new table object each call (its ``unknown`` counter is per object); the ids never change.
    """
    a = _phoneme_asset()
    return SymbolTable(
        a["phones"], name="phonemes", version=a["version"], kind="phoneme", languages=a["languages"]
    )


@functools.lru_cache(maxsize=1)
def _char_asset() -> dict:
    return _asset(CHAR_ASSET)


def char_symbols(langs: Sequence[str] | None = None) -> SymbolTable:
    """A character table: specials + apostrophe + the sorted union of the lower-case alphabets of ``langs``
    (default: every language of the asset: en, de, fr, es, it, ru, cs, nl, fi, pt, pl).

    The ids depend only on the set of languages (the union is sorted), never on their order.
    """
    a = _char_asset()
    alphabets: dict[str, str] = a["alphabets"]
    codes = sorted(alphabets) if langs is None else sorted({_char_lang(c, alphabets) for c in langs})
    chars = sorted(set("".join(alphabets[c] for c in codes)))
    return SymbolTable(
        [*a["extra"], *(c for c in chars if c not in a["extra"])],
        name="chars",
        version=a["version"],
        kind="char",
        languages=codes,
    )


def _char_lang(code: str, alphabets: dict[str, str]) -> str:
    c = code.strip().lower().replace("_", "-")
    c = "en" if c.startswith("en") else c
    if c not in alphabets:
        raise SpeechLMError(f"no character alphabet for language {code!r}; available: {', '.join(alphabets)}")
    return c
