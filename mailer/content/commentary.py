"""Commentary files: front matter (TOML between +++ lines, or YAML between ---) and a Markdown body.

Reading reports every problem of a file as `file:line: message`; a table maps each front matter
field to its converter. A Commentary owns its derived values (slug, links, preheader).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import difflib
import hashlib
import re
import zoneinfo
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from mailer.content import markdown
from mailer.content.files import PDF_TYPE, Beside, FileProblem, LocalFile, Stamp, is_local
from mailer.core import tomltext
from mailer.core.errors import ContentError, Problem, RequestError
from mailer.core.languages import language_code

_DATED_NAME = re.compile(r"^\d{4}-\d{2}-\d{2}-")
_SLUG = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_DELIMITERS = {"+++": "TOML", "---": "YAML"}


@dataclass(frozen=True)
class Commentary:
    slug: str
    path: Path
    title: str
    authors: tuple[str, ...]
    date: dt.datetime
    archive_url: str
    """Its page in the web archive, the "view in browser" target and its stable feed id."""
    html: str
    text: str
    number: str = ""
    summary: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    url: str = ""
    pdf: str = ""
    pdf_size: int = 0
    """The PDF's size in bytes, when known: RSS writes an enclosure only with its length."""
    draft: bool = False
    language: str = "en"
    """Its language tag (`it`, `en-GB`): the newsletter's unless the front matter says otherwise."""
    translation_of: str = ""
    """The slug of the commentary this one translates, if any."""
    translation_of_line: int | None = field(default=None, compare=False, repr=False)
    updated: dt.datetime | None = None
    """When a correction was published, if one was (the `updated` field)."""
    source: str = field(default="", repr=False, compare=False)
    """The Markdown body as written, whose fingerprint tells a correction."""
    fingerprint: str = field(default="", repr=False, compare=False)
    """The SHA-256 of `source`, kept when the body is let go (see `without_body`)."""
    files: tuple[LocalFile, ...] = ()
    """The images and PDF beside it, which the build publishes with the archive."""
    publish_at: dt.datetime | None = None
    """When it may be published, if not at its date (`date` is what readers see)."""

    @property
    def has_body(self) -> bool:
        return bool(self.html)

    def without_body(self) -> Commentary:
        """Its metadata alone: what indexes, feeds' lists and "latest" boxes need, in a fraction
        of the memory (a build of thousands keeps only these; `with_body` reads one back)."""
        return dataclasses.replace(self, html="", text=self.preheader, source="")

    @property
    def public_at(self) -> dt.datetime:
        """When it leaves embargo: its `publish_at`, else its date."""
        return self.publish_at or self.date

    def embargoed(self, now: dt.datetime) -> bool:
        return self.public_at > now

    @property
    def link(self) -> str:
        """Where readers go for the piece: its canonical URL, else its archive page."""
        return self.url or self.archive_url

    @property
    def preheader(self) -> str:
        """The line mail clients show after the subject: the first key point, else the opening."""
        if self.summary:
            return self.summary[0]
        opening = " ".join(self.text.split())
        return opening[:150].rsplit(" ", 1)[0] if len(opening) > 150 else opening


@dataclass(frozen=True)
class Issue:
    """One email: the first commentary leads in full; the others follow as title, byline, points."""

    commentaries: tuple[Commentary, ...]
    latest: tuple[Commentary, ...] = ()
    """The series' commentaries before the lead, newest first ("Latest in this series")."""

    @property
    def lead(self) -> Commentary:
        return self.commentaries[0]

    @property
    def others(self) -> tuple[Commentary, ...]:
        return self.commentaries[1:]

    @property
    def subject(self) -> str:
        return self.lead.title


@dataclass(frozen=True)
class Site:
    """What reading needs to know of the newsletter: links and the time zone of plain dates."""

    site_url: str
    zone: zoneinfo.ZoneInfo
    language: str = "en"

    def archive_url(self, slug: str) -> str:
        return f"{self.site_url}archive/{slug}/"


@dataclass
class Collection:
    """Every commentary of a folder, with the problems found while reading them."""

    commentaries: list[Commentary] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if not p.warning]

    @property
    def warnings(self) -> list[Problem]:
        return [p for p in self.problems if p.warning]

    def published(self) -> list[Commentary]:
        """Everything but drafts, newest first (the slug breaks ties so order never wavers)."""
        live = [c for c in self.commentaries if not c.draft]
        return sorted(live, key=lambda c: (c.date, c.slug), reverse=True)

    def public(self, now: dt.datetime) -> list[Commentary]:
        """What readers may see at `now`: published and out of embargo, newest first."""
        return [c for c in self.published() if not c.embargoed(now)]

    def seen_at(self, now: dt.datetime) -> Collection:
        """The collection as readers may see it at `now`: what is embargoed left out."""
        visible = [c for c in self.commentaries if not c.embargoed(now)]
        return Collection(visible, self.problems)

    def embargoed(self, now: dt.datetime) -> list[Commentary]:
        """Published but not before a time still to come, the soonest released first."""
        waiting = [c for c in self.published() if c.embargoed(now)]
        return sorted(waiting, key=lambda c: (c.public_at, c.slug))

    def issue(self, slugs: Sequence[str], latest: int = 0) -> Issue:
        """The issue made of these commentaries, the first one leading, with the `latest`
        commentaries published before the lead."""
        known = {c.slug: c for c in self.commentaries}
        unknown = [s for s in slugs if s not in known]
        if unknown:
            names = ", ".join(sorted(known)) or "none"
            raise RequestError(
                f"no commentary with the slug '{unknown[0]}'; the slugs are: {names}"
            )
        chosen = tuple(known[s] for s in slugs)
        return Issue(chosen, tuple(self.before(chosen[0], latest)))

    def before(self, commentary: Commentary, count: int) -> list[Commentary]:
        """The `count` published commentaries in its language that came out before it."""
        older = [
            c
            for c in self.published()
            if c.language == commentary.language
            and (c.date, c.slug) < (commentary.date, commentary.slug)
        ]
        return older[:count]

    def versions(self, commentary: Commentary) -> list[Commentary]:
        """The other published languages of the same piece: the one it translates, those that
        translate it, and their other translations; by language."""
        return _Families(self.published()).versions(commentary)

    def every_version(self) -> dict[str, list[Commentary]]:
        """`versions` of every published commentary by slug, found in one pass."""
        published = self.published()
        families = _Families(published)
        return {c.slug: families.versions(c) for c in published}

    def every_before(self, count: int) -> dict[str, list[Commentary]]:
        """`before(c, count)` of every published commentary by slug, found in one pass."""
        earlier: dict[str, list[Commentary]] = {}
        found: dict[str, list[Commentary]] = {}
        for commentary in reversed(self.published()):  # the oldest first
            older = earlier.setdefault(commentary.language, [])
            found[commentary.slug] = older[: -count - 1 : -1] if count > 0 else []
            older.append(commentary)
        return found

    def languages(self) -> list[str]:
        """Every language a published commentary is in."""
        return sorted({c.language for c in self.published()})

    def raise_errors(self) -> None:
        if self.errors:
            raise ContentError(self.errors)


class _Families:
    """Published commentaries grouped by the piece they are versions of."""

    def __init__(self, published: Sequence[Commentary]) -> None:
        self.live = {c.slug: c for c in published}
        self.translations: dict[str, list[Commentary]] = {}
        for commentary in published:
            if commentary.translation_of:
                self.translations.setdefault(commentary.translation_of, []).append(commentary)

    def versions(self, commentary: Commentary) -> list[Commentary]:
        original = self.live.get(commentary.translation_of, commentary)
        family = [original, *self.translations.get(original.slug, [])]
        return sorted((c for c in family if c.slug != commentary.slug), key=lambda c: c.language)


Reader = Callable[[Path], tuple[Commentary | None, list[Problem]]]
"""Reads one commentary file: `read` with the site given, or a shelf's (mailer.content.shelf)."""


def load_folder(
    folder: Path, site: Site, bodies: bool = True, reader: Reader | None = None
) -> Collection:
    """Read every `*.md` of the folder; a problem in one file does not hide the others'.
    Without `bodies`, each commentary keeps its metadata alone once read and checked. Each
    file is read by `reader`, by default parsed anew."""
    reader = reader or (lambda path: read(path, site))
    collection = Collection()
    if not folder.is_dir():
        collection.problems.append(
            Problem(folder, None, "no such folder; create it or set [paths] commentaries")
        )
        return collection
    seen: dict[str, Path] = {}
    for path in sorted(folder.glob("*.md")):
        commentary, problems = reader(path)
        collection.problems.extend(problems)
        if commentary is None:
            continue
        if commentary.slug in seen:
            collection.problems.append(
                Problem(
                    path,
                    None,
                    f"the slug '{commentary.slug}' is taken by {seen[commentary.slug].name}; "
                    "rename one of the two files",
                )
            )
            continue
        seen[commentary.slug] = path
        collection.commentaries.append(commentary if bodies else commentary.without_body())
    collection.problems.extend(_unknown_originals(collection.commentaries, folder))
    return collection


def _unknown_originals(commentaries: Sequence[Commentary], folder: Path) -> list[Problem]:
    slugs = {c.slug for c in commentaries}
    return [
        Problem(
            c.path,
            c.translation_of_line,
            f"translation_of names '{c.translation_of}', which no commentary in {folder.name}/ "
            f"has as its slug; the slugs are: {', '.join(sorted(slugs))}",
        )
        for c in commentaries
        if c.translation_of and c.translation_of not in slugs
    ]


def with_body(commentary: Commentary, site: Site, reader: Reader | None = None) -> Commentary:
    """The commentary whole again, its file read by `reader` (by default anew; a commentary
    that has its body is returned as it is)."""
    if commentary.has_body:
        return commentary
    found, problems = (reader or (lambda path: read(path, site)))(commentary.path)
    errors = [p for p in problems if not p.warning]
    if found is None or errors:
        raise ContentError(errors or [Problem(commentary.path, None, "changed while in use")])
    return found


def slug_of(path: Path) -> str:
    return _DATED_NAME.sub("", path.stem)


@dataclass(frozen=True)
class Reading:
    """One file read: its commentary (None when it cannot be used), the problems found, and
    what the reading depended on beside the file itself."""

    commentary: Commentary | None
    problems: list[Problem]
    looked: dict[Path, Stamp | None] = field(default_factory=dict)
    """Each place an image or PDF it names was looked for, with what was there then."""


def read(path: Path, site: Site) -> tuple[Commentary | None, list[Problem]]:
    """The commentary in one file, or None with the reasons it cannot be used."""
    found = reading(path, site)
    return found.commentary, found.problems


def reading(path: Path, site: Site) -> Reading:
    """`read`, saying also where the files it names were looked for (see mailer.content.shelf)."""
    try:
        raw = path.read_bytes()
    except OSError as error:
        return Reading(None, [Problem(path, None, f"cannot be read: {error.strerror}")])
    return _reading(raw, path, site)


def read_bytes(raw: bytes, path: Path, site: Site) -> tuple[Commentary | None, list[Problem]]:
    """The commentary these bytes would be as the file `path` (the console checks a draft so,
    finding the files beside it, before anything is written)."""
    found = _reading(raw, path, site)
    return found.commentary, found.problems


def _reading(raw: bytes, path: Path, site: Site) -> Reading:
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = raw.count(b"\n", 0, error.start) + 1
        return Reading(
            None, [Problem(path, line, "is not UTF-8 text; save the file as UTF-8 in your editor")]
        )
    text = text.replace("\r\n", "\n")
    slug = slug_of(path)
    if not _SLUG.match(slug):
        return Reading(
            None,
            [
                Problem(
                    path,
                    None,
                    f"the file name gives the slug '{slug}', which cannot go in a web address; "
                    "rename the file using letters, digits and hyphens",
                )
            ],
        )
    front = _front_matter(text, path)
    if isinstance(front, Problem):
        return Reading(None, [front])
    problems: list[Problem] = []
    values = _fields(front, path, problems)
    archive_url = site.archive_url(slug)
    beside = Beside(path, slug, site.site_url)
    rendered = markdown.render(
        front.body,
        base_url=archive_url,
        path=path,
        first_line=front.body_line,
        anchor=slug,
        files=beside,
    )
    problems.extend(rendered.problems)
    problems.extend(_pdf_beside(values, beside, path, front.key_lines.get("pdf", 1)))
    if any(not p.warning for p in problems):
        return Reading(None, problems, beside.looked)
    values.setdefault("language", site.language)
    translation_of_line = front.key_lines.get("translation_of")
    date = _moment(values.pop("date"), site.zone)
    if "updated" in values:
        values["updated"] = _moment(values["updated"], site.zone)
    if "publish_at" in values:
        values["publish_at"] = _moment(values["publish_at"], site.zone)
    return Reading(
        Commentary(
            slug=slug,
            path=path,
            date=date,
            archive_url=archive_url,
            html=rendered.html,
            text=rendered.text,
            translation_of_line=translation_of_line,
            files=tuple(beside.found.values()),
            source=front.body,
            fingerprint=hashlib.sha256(front.body.encode("utf-8")).hexdigest(),
            **values,
        ),
        problems,
        beside.looked,
    )


def _moment(value: dt.date, zone: zoneinfo.ZoneInfo) -> dt.datetime:
    """A date-time as written; a plain date is its midnight in the newsletter's time zone."""
    if isinstance(value, dt.datetime):
        return value
    return dt.datetime.combine(value, dt.time(), tzinfo=zone)


def _pdf_beside(values: dict[str, Any], beside: Beside, path: Path, line: int) -> list[Problem]:
    """A `pdf` file name becomes the published PDF's URL and measured size; a URL without its
    size is a warning, since RSS can then give no enclosure."""
    pdf = values.get("pdf", "")
    if pdf and not is_local(pdf):
        if "pdf_size" in values:
            return []
        return [
            Problem(
                path,
                line,
                "pdf has no pdf_size, so RSS readers get no enclosure (the feed links the PDF in "
                "the text instead): add pdf_size = its size in bytes, or put the PDF beside the "
                "commentary and give its file name",
                warning=True,
            )
        ]
    if not pdf:
        return []
    try:
        found = beside.pdf(pdf)
    except FileProblem as problem:
        return [Problem(path, line, f"pdf {problem}")]
    if found.media_type != PDF_TYPE:
        beside.found.pop(pdf)
        return [Problem(path, line, f"pdf '{pdf}' is not a PDF file")]
    values["pdf"], values["pdf_size"] = found.url, found.size
    return []


# Front matter ----------------------------------------------------------------------------------


def source(text: str, path: Path) -> tuple[dict[str, Any], str] | Problem:
    """A commentary's front matter values, unchecked, and its Markdown body (for an editor)."""
    front = _front_matter(text.replace("\r\n", "\n"), path)
    if isinstance(front, Problem):
        return front
    return front.data, front.body


@dataclass(frozen=True)
class _FrontMatter:
    kind: str
    data: dict[str, Any]
    text: str
    body: str
    body_line: int
    key_lines: dict[str, int]


def _front_matter(text: str, path: Path) -> _FrontMatter | Problem:
    lines = text.split("\n")
    opener = lines[0].strip()
    if opener not in _DELIMITERS:
        return Problem(
            path,
            1,
            "a commentary starts with front matter between +++ lines (TOML) or --- lines (YAML); "
            "see commentaries/ for an example",
        )
    closing = next((i for i, line in enumerate(lines[1:], 1) if line.strip() == opener), None)
    if closing is None:
        return Problem(
            path, 1, f"the front matter opened here is never closed; add a line {opener}"
        )
    inner = "\n".join(lines[1:closing])
    body_text = "\n".join(lines[closing + 1 :])
    if _DELIMITERS[opener] == "TOML":
        parsed = tomltext.parse(inner, path, first_line=2)
        if isinstance(parsed, Problem):
            return parsed
        keys = {key: tomltext.key_line(inner, (), key, first_line=2) for key in parsed}
    else:
        loaded = _yaml(inner, path)
        if isinstance(loaded, Problem):
            return loaded
        parsed, keys = loaded
    return _FrontMatter(_DELIMITERS[opener], parsed, inner, body_text, closing + 2, keys)


class _YamlLoader(yaml.SafeLoader):
    """PyYAML's safe loader, except that an impossible date (2025-13-45) stays text, so that
    it is reported at its line like any other bad date instead of stopping the whole file."""

    def construct_yaml_timestamp(self, node: yaml.ScalarNode) -> Any:
        try:
            return super().construct_yaml_timestamp(node)
        except ValueError:
            return self.construct_scalar(node)


_YamlLoader.add_constructor("tag:yaml.org,2002:timestamp", _YamlLoader.construct_yaml_timestamp)


def _yaml(text: str, path: Path) -> tuple[dict[str, Any], dict[str, int]] | Problem:
    try:
        node = yaml.compose(text, Loader=_YamlLoader)
        data = yaml.load(text, Loader=_YamlLoader)
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        line = mark.line + 2 if mark else 1
        return Problem(path, line, f"this is not valid YAML: {error.problem or error}")
    except yaml.YAMLError as error:
        return Problem(path, 1, f"this is not valid YAML: {error}")
    if data is None:
        data, node = {}, None
    if not isinstance(data, dict) or not isinstance(node, yaml.MappingNode | None):
        return Problem(path, 2, "the front matter must be a set of `key: value` lines")
    keys = {str(k.value): k.start_mark.line + 2 for k, _ in node.value} if node else {}
    return {str(k): v for k, v in data.items()}, keys


# Fields ----------------------------------------------------------------------------------------


def _text(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError(f"must be text in quotes, not {value!r}")
    if value and value.splitlines() != [value]:  # CR, LF, and every other line break
        raise ValueError("must be on one line")
    if not value.strip():
        raise ValueError("must not be empty")
    return value.strip()


def _prose(value: Any) -> str:
    """Text a reader sees beside the body (title, key points), typeset like the body."""
    return markdown.typeset(_text(value))


def _proses(value: Any) -> tuple[str, ...]:
    return tuple(markdown.typeset(item) for item in _texts(value))


def _texts(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list):
        raise ValueError(f'must be a list in brackets, like ["one", "two"], not {value!r}')
    return tuple(_text(item) for item in value)


def _some_texts(value: Any) -> tuple[str, ...]:
    items = _texts(value)
    if not items:
        raise ValueError('needs at least one name, like ["Nona Mikhelidze"]')
    return items


def _date(value: Any) -> dt.date:
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            raise ValueError(
                f"{value.isoformat()} has no time zone offset; write it like "
                f"{value.isoformat()}+02:00, or give just the date"
            )
        return value
    if isinstance(value, dt.date):
        return value
    if isinstance(value, str):
        try:
            return _date(
                dt.datetime.fromisoformat(value) if "T" in value else dt.date.fromisoformat(value)
            )
        except ValueError as error:
            if "offset" in str(error):
                raise
    raise ValueError(
        f"{value!r} is not a date; write a date like 2025-09-17 (no quotes) "
        "or a date-time with offset like 2025-09-17T09:00:00+02:00"
    )


def _web_url(value: Any) -> str:
    url = _text(value)
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"'{url}' is not a full web address starting with https://")
    return url


def _pdf(value: Any) -> str:
    """A PDF's full web address, or the file name of one beside the commentary."""
    name = _text(value)
    return name if is_local(name) else _web_url(name)


def _size(value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise ValueError(
            f"must be the PDF's size in bytes, a whole number like 482133, not {value!r}"
        )
    return value


def _language(value: Any) -> str:
    return language_code(_text(value))


def _slug(value: Any) -> str:
    slug = _text(value)
    if not _SLUG.match(slug):
        raise ValueError(
            f"'{slug}' is not a slug: the file name of a commentary without its date and .md"
        )
    return slug


def _flag(value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"must be true or false, not {value!r}")
    return value


_FIELDS: dict[str, tuple[Callable[[Any], Any], bool]] = {
    # name: (converter, required)
    "title": (_prose, True),
    "authors": (_some_texts, True),
    "date": (_date, True),
    "number": (_text, False),
    "summary": (_proses, False),
    "tags": (_texts, False),
    "url": (_web_url, False),
    "pdf": (_pdf, False),
    "pdf_size": (_size, False),
    "draft": (_flag, False),
    "updated": (_date, False),
    "language": (_language, False),
    "translation_of": (_slug, False),
    "publish_at": (_date, False),
}
FIELDS = tuple(_FIELDS)
"""The front matter's fields, in the order a person writes them."""


def _fields(front: _FrontMatter, path: Path, problems: list[Problem]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for key, value in front.data.items():
        line = front.key_lines.get(key, 2)
        if key not in _FIELDS:
            problems.append(Problem(path, line, _unknown_field(key)))
            continue
        convert, _ = _FIELDS[key]
        try:
            values[key] = convert(value)
        except ValueError as error:
            problems.append(Problem(path, line, f"{key} {error}"))
    for key, (_, required) in _FIELDS.items():
        if required and key not in front.data:
            example = {
                "title": 'title = "…"',
                "authors": 'authors = ["…"]',
                "date": "date = 2025-09-17",
            }
            hint = example[key] if front.kind == "TOML" else example[key].replace(" =", ":")
            problems.append(Problem(path, 1, f"the front matter has no {key}; add `{hint}`"))
    return values


def _unknown_field(key: str) -> str:
    nearest = difflib.get_close_matches(key, list(_FIELDS), n=1, cutoff=0.6)
    hint = f"did you mean '{nearest[0]}'?" if nearest else f"the fields are: {', '.join(_FIELDS)}"
    return f"unknown field '{key}'; {hint}"
