"""The recognizer's alphabet: index 0 is the CTC blank, then one index per character."""
from __future__ import annotations

import string
from collections.abc import Iterable, Sequence

# printable ASCII in both cases (bills print lower case even where the GT is upper case)
DEFAULT_CHARS = "".join(chr(c) for c in range(32, 127))
assert set(DEFAULT_CHARS) >= set(string.ascii_letters + string.digits + string.punctuation + " ")


class Charset:
    blank = 0

    def __init__(self, chars: str = DEFAULT_CHARS) -> None:
        if len(set(chars)) != len(chars):
            raise ValueError("charset has repeated characters")
        self.chars = chars
        self._index = {ch: i + 1 for i, ch in enumerate(chars)}

    def __len__(self) -> int:
        """Number of classes including the blank."""
        return len(self.chars) + 1

    def normalize(self, text: str) -> str:
        """Map text onto the charset: unknown characters dropped, runs of spaces collapsed."""
        kept = "".join(ch for ch in text if ch in self._index)
        return " ".join(kept.split())

    def encode(self, text: str) -> list[int]:
        try:
            return [self._index[ch] for ch in text]
        except KeyError as exc:
            raise ValueError(f"character {exc.args[0]!r} is not in the charset") from exc

    def decode(self, indices: Iterable[int]) -> str:
        return "".join(self.chars[i - 1] for i in indices if i != self.blank)

    def to_manifest(self) -> str:
        return self.chars

    @classmethod
    def from_manifest(cls, chars: str | Sequence[str]) -> Charset:
        return cls("".join(chars))
