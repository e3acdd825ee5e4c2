"""The documentation a clone of the repository has is the documentation the code cites: no
reference to a file outside the repository (the format notes once kept beside it), every
``docs/...md`` path named in src/ and docs/ exists, every heading cited as
``docs/formats/<page>.md, "<heading>"`` is a heading of that page, and docs/formats/README.md
lists every format page."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SCANNED = ("src", "docs", "tests", "workflow", "README.md")
# Built from parts so that this file does not match its own patterns.
OUTSIDE = [
    re.compile(re.escape("FORMATS" + ".md")),
    re.compile(re.escape(".." + "/shared") + r"\b"),  # the folder beside the repository
    re.compile(r"(?<![\w-])" + re.escape("shared" + "/formats")),
]
DOC_PATH = re.compile(r"(?<![\w./-])docs/[\w./-]*\w\.md")
CITATION = re.compile(r"(?<![\w./-])(docs/formats/[\w-]+\.md)((?:\s*,?\s*(?:#\s*)?\"[^\"\n]+\")+)")
QUOTED = re.compile(r"\"([^\"\n]+)\"")


def tracked_files(*roots: str) -> list[Path]:
    """Text files git tracks under ``roots`` (every file there when git is unavailable)."""
    try:
        out = subprocess.run(
            ["git", "ls-files", "-z", "--", *roots],
            cwd=REPO,
            capture_output=True,
            check=True,
            text=True,
        ).stdout
        paths = [REPO / p for p in out.split("\0") if p]
    except (OSError, subprocess.CalledProcessError):
        paths = []
        for root in roots:
            base = REPO / root
            paths += [base] if base.is_file() else [p for p in base.rglob("*") if p.is_file()]
    return [p for p in paths if p.is_file() and ".egg-info" not in p.as_posix()]


def read_text(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError:  # binary test data
        return None


def texts(*roots: str) -> list[tuple[Path, str]]:
    return [(p, t) for p in tracked_files(*roots) if (t := read_text(p)) is not None]


def test_no_reference_to_files_outside_the_repository():
    hits = []
    for path, text in texts(*SCANNED):
        for number, line in enumerate(text.splitlines(), 1):
            if any(p.search(line) for p in OUTSIDE):
                hits.append(f"{path.relative_to(REPO)}:{number}: {line.strip()[:120]}")
    assert not hits, "cite the page under docs/ instead:\n" + "\n".join(hits)


def test_the_patterns_tell_outside_references_from_other_uses_of_shared():
    def flagged(line: str) -> bool:
        return any(p.search(line) for p in OUTSIDE)

    assert flagged("see " + "FORMATS" + ".md 1.3")
    assert flagged("[notes](../" + "shared/" + "formats/x.md)")
    assert flagged("/work/" + "shared/" + "formats/x.md")
    assert not flagged("shared_auditor = ...")
    assert not flagged("workdir: /shared/project/vidmine")
    assert not flagged("the shared safe pickle helpers")


def test_every_cited_docs_path_exists():
    missing = []
    for path, text in texts("src", "docs"):
        for match in DOC_PATH.finditer(text):
            if not (REPO / match.group(0)).is_file():
                line = text.count("\n", 0, match.start()) + 1
                missing.append(f"{path.relative_to(REPO)}:{line}: {match.group(0)}")
    assert not missing, "cited pages that do not exist:\n" + "\n".join(missing)


def headings(page: Path) -> list[str]:
    return [
        line.lstrip("#").strip().replace("`", "")
        for line in page.read_text(encoding="utf-8").splitlines()
        if line.startswith("#")
    ]


def names_heading(cited: str, heading: str) -> bool:
    """``"Crops"`` names ``Crops (extract_square_crops.py)``; ``"Crop"`` does not."""
    return heading == cited or heading.startswith(cited + " ")


def test_every_cited_heading_is_a_heading_of_its_page():
    wrong = []
    for path, text in texts(*SCANNED):
        for match in CITATION.finditer(text):
            page = REPO / match.group(1)
            if not page.is_file():
                continue  # reported by test_every_cited_docs_path_exists
            known = headings(page)
            for cited in QUOTED.findall(match.group(2)):
                if not any(names_heading(cited.replace("`", ""), h) for h in known):
                    line = text.count("\n", 0, match.start()) + 1
                    wrong.append(f"{path.relative_to(REPO)}:{line}: {match.group(1)}, {cited!r}")
    assert not wrong, "cited headings missing from their page:\n" + "\n".join(wrong)


@pytest.mark.parametrize(
    ("text", "cited"),
    [
        ('(docs/formats/vpd.md, "Crops", "Flow PNGs")', ["Crops", "Flow PNGs"]),
        ('# as in docs/formats/hmmr.md,\n# "TFRecord layout": ...', ["TFRecord layout"]),
        ('docs/formats/hmmr.md, "Per-frame JSON tracks" table, "Head"', ["Per-frame JSON tracks"]),
    ],
)
def test_citations_are_read_with_all_their_headings_and_no_more(text, cited):
    (match,) = CITATION.finditer(text)
    assert QUOTED.findall(match.group(2)) == cited


def test_the_formats_index_lists_every_format_page():
    index = (REPO / "docs" / "formats" / "README.md").read_text(encoding="utf-8")
    pages = sorted(
        p.name for p in (REPO / "docs" / "formats").glob("*.md") if p.name != "README.md"
    )
    unlisted = [name for name in pages if f"({name})" not in index]
    assert not unlisted, f"docs/formats/README.md does not list {unlisted}"
