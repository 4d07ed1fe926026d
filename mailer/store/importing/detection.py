"""How a CSV file of subscribers is written: its encoding and the character between its cells.

Staff bring what their spreadsheet saved: UTF-8 with or without a byte order mark, or, from
Excel on Windows in Western Europe, Windows-1252 separated by `;` where the decimal mark is a
comma. Both are told apart for certain by the standard library: a file that decodes as UTF-8
is UTF-8 (8-bit text that happens to be valid UTF-8 is vanishingly rare), and one that does not
is read as Windows-1252, or as Latin-1 when it holds the few bytes Windows-1252 leaves undefined.
A statistical detector is not used: on files as short and as ASCII-heavy as a subscriber list
it guesses Central European code pages for Italian text, which misreads accented letters.
"""

from __future__ import annotations

import codecs
import csv
from dataclasses import dataclass
from typing import IO

DELIMITERS = {",": "comma", ";": "semicolon", "\t": "tab"}
_CHUNK = 1 << 20
_NAMES = {"utf-8": "UTF-8", "utf-8-sig": "UTF-8 with BOM", "cp1252": "Windows-1252"}


@dataclass(frozen=True)
class Detected:
    """How the file will be read; `chosen` says which parts staff gave rather than mailer found."""

    encoding: str
    delimiter: str
    chosen: frozenset[str] = frozenset()

    def describe(self) -> str:
        encoding = encoding_name(self.encoding)
        delimiter = DELIMITERS.get(self.delimiter, repr(self.delimiter))
        return (
            f"read as {encoding}{self._how('encoding')}, "
            f"cells separated by {delimiter}{self._how('delimiter')}"
        )

    def _how(self, part: str) -> str:
        return " (as given)" if part in self.chosen else " (detected)"


def encoding_name(encoding: str) -> str:
    """An encoding as staff know it ("Windows-1252", not "cp1252")."""
    return _NAMES.get(encoding, encoding)


def encoding_of(raw: IO[bytes]) -> str:
    """The encoding the whole file decodes in, read a chunk at a time (memory stays flat), then
    rewound: "utf-8-sig" (a byte order mark), "utf-8", "cp1252" or "latin-1"."""
    try:
        if raw.read(3) == codecs.BOM_UTF8:
            return "utf-8-sig"
        for encoding in ("utf-8", "cp1252"):
            raw.seek(0)
            if _decodes(raw, encoding):
                return encoding
        return "latin-1"  # every byte is a Latin-1 character
    finally:
        raw.seek(0)


def _decodes(raw: IO[bytes], encoding: str) -> bool:
    decoder = codecs.getincrementaldecoder(encoding)()
    try:
        while chunk := raw.read(_CHUNK):
            decoder.decode(chunk)
        decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        return False
    return True


def delimiter_of(first_line: str) -> str:
    """The separator of the header line: comma, semicolon or tab; a comma when the line has one
    column only, which any separator reads alike."""
    try:
        return csv.Sniffer().sniff(first_line, delimiters="".join(DELIMITERS)).delimiter
    except csv.Error:
        return ","
