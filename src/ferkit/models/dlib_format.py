"""A reader for dlib's binary serialization (``dlib/serialize.h``), enough to load dlib's ``.dat`` model files.

What each primitive is on disk, as dlib writes it:

- integers (``pack_int``): one control byte whose low 4 bits give the number of bytes that follow (1-8)
  and whose bit 0x80 marks a negative signed value, then that many bytes of the magnitude, little-endian;
- floats and doubles (``float_details``): two integers, a 64-bit mantissa and a 16-bit exponent, the value
  being ``mantissa * 2**exponent`` (exponents 32000, 32001 and 32002 stand for +inf, -inf and NaN);
- ``bool``: the ASCII byte ``'1'`` or ``'0'``;
- ``std::string``: its length as an integer, then its bytes;
- tensors (``dlib/cuda/tensor.h``): the integer version 2, four integers num_samples, k, nr, nc, then the
  values as 4-byte little-endian IEEE floats in that (n, k, r, c) order; an ``alias_tensor`` is version 1
  and the four sizes without values.

Nothing here imports dlib; `DlibReader` walks a byte string and raises `DlibFormatError` (one sentence with
the byte offset) on anything it does not expect.
"""

from __future__ import annotations

import math

import numpy as np

from ferkit.errors import CheckpointError

_INF, _NINF, _NAN = 32000, 32001, 32002


class DlibFormatError(CheckpointError):
    """A dlib ``.dat`` file that does not hold what the reader expects at some offset."""


class DlibReader:
    """Sequential reader of dlib-serialized values from ``data`` (bytes); ``name`` appears in errors."""

    def __init__(self, data: bytes, name: str = "the dlib file"):
        self.data = data
        self.pos = 0
        self.name = name

    def fail(self, what: str) -> DlibFormatError:
        return DlibFormatError(f"{self.name} is not the dlib model ferkit expects: {what} at byte {self.pos}; "
                               "reinstall it with `pip install --force-reinstall face-recognition-models`.")

    def _take(self, n: int) -> bytes:
        if self.pos + n > len(self.data):
            raise self.fail(f"the file ends early ({n} more bytes wanted)")
        out = self.data[self.pos:self.pos + n]
        self.pos += n
        return out

    def int(self, signed: bool = True) -> int:
        """One packed integer (``pack_int``)."""
        at = self.pos
        ctrl = self._take(1)[0]
        size = ctrl & 0x0F
        if size == 0 or size > 8 or (not signed and ctrl & 0x70):
            self.pos = at
            raise self.fail(f"an integer control byte 0x{ctrl:02x}")
        value = int.from_bytes(self._take(size), "little")
        return -value if (signed and ctrl & 0x80) else value

    def float(self) -> float:
        """One float/double (``float_details``: mantissa * 2**exponent)."""
        if self.pos < len(self.data) and self.data[self.pos] & 0x70:
            raise self.fail("an old ASCII-format float (not supported)")
        mantissa, exponent = self.int(), self.int()
        if exponent == _INF:
            return math.inf
        if exponent == _NINF:
            return -math.inf
        if exponent == _NAN:
            return math.nan
        return math.ldexp(float(mantissa), exponent)

    def bool(self) -> bool:
        ch = self._take(1)
        if ch not in (b"0", b"1"):
            raise self.fail(f"a bool byte {ch!r}")
        return ch == b"1"

    def string(self) -> str:
        n = self.int(signed=False)
        return self._take(n).decode("latin-1")

    def expect(self, *names: str) -> str:
        """A version string that must be one of ``names``; returns it."""
        at = self.pos
        s = self.string() if self.pos < len(self.data) and self.data[self.pos] < 0x10 else "?"
        if s not in names:
            self.pos = at
            raise self.fail(f"'{s}' where {' or '.join(repr(n) for n in names)} was expected")
        return s

    def version(self, *allowed: int) -> int:
        at = self.pos
        v = self.int()
        if v not in allowed:
            self.pos = at
            raise self.fail(f"version {v} where {' or '.join(map(str, allowed))} was expected")
        return v

    def tensor(self) -> np.ndarray:
        """A ``resizable_tensor``: float32 array of shape (num_samples, k, nr, nc)."""
        self.version(2)
        shape = tuple(self.int() for _ in range(4))
        count = int(np.prod(shape))
        values = np.frombuffer(self._take(4 * count), dtype="<f4")
        return values.reshape(shape).astype(np.float32)

    def alias_tensor(self) -> tuple[int, int, int, int]:
        """An ``alias_tensor``: only its shape (num_samples, k, nr, nc)."""
        self.version(1)
        return tuple(self.int() for _ in range(4))

    def at_end(self) -> bool:
        return self.pos == len(self.data)
