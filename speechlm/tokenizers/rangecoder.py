"""A byte-oriented range coder (the carry-propagating coder of LZMA and 7-Zip's PPMd) over integer frequencies.

Lossless arithmetic coding of a symbol sequence whose probabilities the caller states symbol by symbol, as integer
frequencies ``(cum, freq, total)`` with ``total <= 2**16``: the caller's model decides, the coder turns a symbol of
probability ``p`` into ``-log2 p`` bits plus about 40 bits per stream (one leading zero byte and a 4-byte flush).

The encoder keeps a 33-bit ``low`` and a 32-bit ``range``; a byte leaves when the top byte of ``low`` can no longer
change, except for runs of 0xFF held back until a carry either arrives or cannot (``cache`` + ``pending``).
The decoder mirrors it with a 32-bit ``code``. Both are plain Python integers: about 1 µs of arithmetic per symbol.
"""

from __future__ import annotations

TOP = 1 << 24
MASK32 = (1 << 32) - 1
MAX_TOTAL = 1 << 16


class RangeEncoder:
    """Append symbols with :meth:`encode`, then :meth:`finish` for the bytes."""

    def __init__(self) -> None:
        self.low = 0
        self.range = MASK32
        self.cache = 0
        self.pending = 1  # bytes held back: ``cache`` then ``pending - 1`` times 0xFF
        self.out = bytearray()

    def encode(self, cum: int, freq: int, total: int) -> None:
        """Code the symbol occupying ``[cum, cum + freq)`` of ``total`` (``0 < freq``, ``cum + freq <= total``)."""
        r = self.range // total
        self.low += r * cum
        self.range = r * freq
        while self.range < TOP:
            self.range <<= 8
            self._shift_low()

    def _shift_low(self) -> None:
        if self.low < 0xFF000000 or self.low > MASK32:
            carry = self.low >> 32
            temp = self.cache
            while self.pending:
                self.out.append((temp + carry) & 0xFF)
                temp = 0xFF
                self.pending -= 1
            self.cache = (self.low >> 24) & 0xFF
        self.pending += 1
        self.low = (self.low << 8) & MASK32

    def finish(self) -> bytes:
        """The coded bytes (the encoder cannot be used after this)."""
        for _ in range(5):
            self._shift_low()
        return bytes(self.out)


class RangeDecoder:
    """Read symbols back: ``v = target(total)``, find the symbol whose ``[cum, cum + freq)`` holds ``v``, then
    :meth:`consume` it. Reading past the end of ``data`` supplies zero bytes (the encoder's flush makes that
    harmless); a corrupt stream decodes to garbage, never an exception here."""

    def __init__(self, data: bytes, pos: int = 0) -> None:
        self.data = data
        self.pos = pos
        self.range = MASK32
        self.code = 0
        for _ in range(5):
            self.code = ((self.code << 8) | self._byte()) & MASK32

    def _byte(self) -> int:
        b = self.data[self.pos] if self.pos < len(self.data) else 0
        self.pos += 1
        return b

    def target(self, total: int) -> int:
        """The point of ``[0, total)`` the next symbol's interval contains."""
        self.range //= total
        return min(self.code // self.range, total - 1)

    def consume(self, cum: int, freq: int) -> None:
        """Remove the symbol ``[cum, cum + freq)`` found from the last :meth:`target`."""
        self.code -= cum * self.range
        self.range *= freq
        while self.range < TOP:
            self.code = ((self.code << 8) | self._byte()) & MASK32
            self.range <<= 8
