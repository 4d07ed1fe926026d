"""Which column of a subscriber CSV holds which field, from the header line.

Files come from spreadsheets and from other newsletter services, so a field goes by several
spellings (`Email Address` in a Mailchimp export, `E-mail`, the Italian `Nome` and `Cognome`);
staff map any other with `--map COLUMN=FIELD`. A first and a last name are joined into the name.
A column no field claims is reported, so that nobody believes it was imported.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

FIELDS = ("email", "name", "first_name", "last_name", "lists", "status", "language", "frequency")
SPELLINGS: Mapping[str, str] = {
    spelling: field
    for field, spellings in {
        "email": (
            "email",
            "e mail",
            "email address",
            "e mail address",
            "mail",
            "indirizzo email",
            "indirizzo e mail",
            "posta elettronica",
        ),
        "name": ("name", "full name", "nome completo", "nominativo"),
        "first_name": ("first name", "firstname", "given name", "fname", "nome"),
        "last_name": ("last name", "lastname", "surname", "family name", "lname", "cognome"),
        "lists": ("lists", "list", "liste", "lista"),
        "status": ("status", "stato"),
        "language": ("language", "lang", "lingua", "idioma", "sprache", "langue"),
        "frequency": ("frequency", "frequenza"),
    }.items()
    for spelling in spellings
}
LEFT_OUT = ""
"""A column mapped to this is not imported, whatever its header says (the console's choice)."""
EXPORTED_ONLY = frozenset({"created at", "updated at"})
"""Columns of mailer's own export that an import does not read: the times are the database's."""
_SEPARATORS = re.compile(r"[\s_\-.]+")


def spelling(column: str) -> str:
    """A header cell as it is compared: case, BOM, spaces, `-`, `_` and `.` do not matter."""
    return _SEPARATORS.sub(" ", column.replace("\ufeff", "").casefold()).strip()


class BadHeader(ValueError):
    """The header line names no email column, or names a field twice; the message says why."""


@dataclass(frozen=True)
class Columns:
    """The position of each field found in the header, and the columns left out."""

    at: Mapping[str, int]
    header: Sequence[str]
    unknown: Sequence[str]

    def describe(self) -> str:
        found = ", ".join(
            f"{self.header[index].strip()} → {field}" for field, index in self.at.items()
        )
        text = f"columns {found}"
        if self.unknown:
            text += (
                f"; not imported: {', '.join(self.unknown)} "
                "(--map COLUMN=FIELD imports one, FIELD being one of " + ", ".join(FIELDS) + ")"
            )
        return text


def parse_map(entries: Sequence[str]) -> dict[str, str]:
    """`--map COLUMN=FIELD` options as {column spelling: field}; ValueError names a bad one."""
    mapping: dict[str, str] = {}
    for entry in entries:
        column, equals, field = entry.rpartition("=")
        field = field.strip().lower()
        if not equals or not column.strip():
            raise ValueError(f"--map {entry!r}: write it as COLUMN=FIELD, e.g. 'Posta=email'")
        if field not in FIELDS:
            raise ValueError(f"--map {entry!r}: the field must be one of {', '.join(FIELDS)}")
        mapping[spelling(column)] = field
    return mapping


def columns_of(header: Sequence[str], mapping: Mapping[str, str]) -> Columns:
    """Where each field is, given the header cells and the staff's `--map`; BadHeader if the
    file has no email column or two columns for one field."""
    at: dict[str, int] = {}
    unknown: list[str] = []
    for index, cell in enumerate(header):
        said = spelling(cell)
        field = mapping[said] if said in mapping else SPELLINGS.get(said)
        if field == LEFT_OUT:
            continue
        if field is None:
            if said and said not in EXPORTED_ONLY:
                unknown.append(cell.strip())
            continue
        if field in at:
            raise BadHeader(
                f"the columns {header[at[field]].strip()!r} and {cell.strip()!r} both hold "
                f"the {field}; keep one, or map the other with --map COLUMN=FIELD"
            )
        at[field] = index
    if "email" not in at:
        raise BadHeader("there is no email column")
    return Columns(at, header, unknown)
