"""The shelf: the commentaries folder as last read, each file parsed again only when it, or a
place where a file it names was looked for, changed. Real files and the real reader throughout;
what was parsed is told by the shelf's count and by the very objects it hands out."""

from __future__ import annotations

import os
import shutil

from mailer.content.shelf import WHOLE, Shelf
from tests.conftest import Folder

STALEMATE = "2025-09-17-stalemate-to-escalation.md"
BESIDE = "commentaries/stalemate-to-escalation"


def shelf_of(folder: Folder) -> Shelf:
    return Shelf(folder.newsletter().site)


def test_an_unchanged_folder_is_read_without_parsing_a_file(folder: Folder) -> None:
    shelf = shelf_of(folder)
    first = shelf.folder(folder.commentaries)
    files = len(list(folder.commentaries.glob("*.md")))
    assert shelf.parsed == files and len(first.commentaries) == files
    again = shelf.folder(folder.commentaries)
    assert shelf.parsed == files
    assert all(a is b for a, b in zip(first.commentaries, again.commentaries, strict=True))
    assert not any(c.has_body for c in again.commentaries)  # metadata only is kept


def test_a_changed_file_is_parsed_again_and_only_it(folder: Folder) -> None:
    shelf = shelf_of(folder)
    before = {c.slug: c for c in shelf.folder(folder.commentaries).commentaries}
    path = folder.commentaries / STALEMATE
    text = path.read_text(encoding="utf-8")
    path.write_text(text.replace('title = "', 'title = "Changed: ', 1), encoding="utf-8")
    parsed = shelf.parsed
    after = {c.slug: c for c in shelf.folder(folder.commentaries).commentaries}
    assert shelf.parsed == parsed + 1
    assert after["stalemate-to-escalation"].title.startswith("Changed: ")
    assert all(after[s] is before[s] for s in before if s != "stalemate-to-escalation")


def test_a_file_replaced_with_the_same_size_and_time_is_still_seen(folder: Folder) -> None:
    """A save renames a new file over the old one: its inode tells it, whatever the clock."""
    shelf = shelf_of(folder)
    path = folder.commentaries / STALEMATE
    assert shelf.read(path)[0] is not None
    text = path.read_text(encoding="utf-8")
    same_size = text.replace('title = "F', 'title = "Z', 1)
    assert len(same_size) == len(text) and same_size != text
    was = path.stat()
    replacement = path.with_suffix(".new")
    replacement.write_text(same_size, encoding="utf-8")
    os.utime(replacement, ns=(was.st_atime_ns, was.st_mtime_ns))
    replacement.replace(path)
    commentary, _ = shelf.read(path)
    assert commentary is not None and commentary.title.startswith("Z")


def test_an_image_added_beside_a_commentary_is_seen_without_touching_its_text(
    folder: Folder,
) -> None:
    shelf = shelf_of(folder)
    path = folder.commentaries / STALEMATE
    image = folder.path / BESIDE / "front-line.png"
    kept = folder.path / "front-line.png"
    image.rename(kept)
    commentary, problems = shelf.read(path)
    assert commentary is None and any("'front-line.png' is not there" in str(p) for p in problems)
    assert shelf.read(path)[0] is None and shelf.parsed == 1
    shutil.copyfile(kept, folder.commentaries / "front-line.png")  # beside the file: found too
    commentary, problems = shelf.read(path)
    assert commentary is not None and not [p for p in problems if not p.warning]
    assert shelf.parsed == 2
    folder.image(f"{BESIDE}/front-line.png", 700)  # its folder comes first: this one now
    commentary, _ = shelf.read(path)
    assert commentary is not None and shelf.parsed == 3
    (found,) = [f for f in commentary.files if f.source.name == "front-line.png"]
    assert found.source == (folder.path / BESIDE / "front-line.png").resolve()
    assert found.width == 700


def test_a_replaced_pdf_is_measured_again(folder: Folder) -> None:
    shelf = shelf_of(folder)
    path = folder.commentaries / STALEMATE
    before, _ = shelf.read(path)
    assert before is not None
    pdf = folder.path / BESIDE / "2553.pdf"
    pdf.write_bytes(pdf.read_bytes() + b"\n% a corrected edition\n")
    after, _ = shelf.read(path)
    assert after is not None and after.pdf_size == before.pdf_size + 23 and shelf.parsed == 2


def test_a_removed_file_leaves_the_collection_and_the_shelf(folder: Folder) -> None:
    shelf = shelf_of(folder)
    shelf.folder(folder.commentaries)
    (folder.commentaries / STALEMATE).unlink()
    collection = shelf.folder(folder.commentaries)
    assert "stalemate-to-escalation" not in {c.slug for c in collection.commentaries}
    assert folder.commentaries / STALEMATE not in shelf._kept


def test_the_commentaries_asked_for_whole_last_are_kept_with_their_bodies(folder: Folder) -> None:
    shelf = shelf_of(folder)
    path = folder.commentaries / STALEMATE
    first, _ = shelf.whole(path)
    assert first is not None and first.has_body and shelf.parsed == 1
    assert shelf.whole(path)[0] is first and shelf.parsed == 1
    assert shelf.read(path)[0] is not None and shelf.parsed == 1  # its metadata came along
    text = path.read_text(encoding="utf-8")
    path.write_text(text.replace("Three and a half", "Three and a bit", 1), encoding="utf-8")
    changed, _ = shelf.whole(path)
    assert changed is not None and "Three and a bit" in changed.html and shelf.parsed == 2
    for number in range(WHOLE):
        copy = folder.commentaries / f"copy-{number}.md"
        copy.write_text(
            f'+++\ntitle = "{number}"\nauthors = ["A"]\ndate = 2025-01-01\n+++\n\nText.\n'
        )
        assert shelf.whole(copy)[0] is not None
    parsed = shelf.parsed
    shelf.whole(path)  # asked longest ago: let go
    assert shelf.parsed == parsed + 1
