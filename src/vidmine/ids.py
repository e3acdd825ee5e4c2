"""Stable, filesystem-safe identifiers.

Ids name files and folders on every cluster filesystem, so they use only ``[A-Za-z0-9_-]``. An id
that is already safe is kept as it is (YouTube ids are); any other raw id is cleaned and given a
short hash of the raw text, so two raw ids that clean to the same text still differ.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

_UNSAFE = re.compile(r"[^A-Za-z0-9_-]+")
MAX_ID_LENGTH = 96


_UNSAFE_IN_NAME = re.compile(r"[^A-Za-z0-9_.-]+")


def file_name_part(text: str) -> str:
    """``text`` as part of a file name other projects pick by (HMMR's ``<tag>_<video_id>``):
    every run of characters other than ``[A-Za-z0-9_.-]`` becomes one ``_``. Readable, not
    unique (no hash): for names whose raw text the user controls, such as download tags."""
    return _UNSAFE_IN_NAME.sub("_", text).strip("_") or "x"


def short_hash(text: str, length: int = 8) -> str:
    return hashlib.sha1(text.encode("utf-8")).hexdigest()[:length]


def safe_id(raw: str) -> str:
    """Map a raw id (URL, path, tag/name) to a deterministic filesystem-safe id."""
    raw = str(raw)
    if raw and not _UNSAFE.search(raw) and len(raw) <= MAX_ID_LENGTH and not raw.startswith("-"):
        return raw
    cleaned = _UNSAFE.sub("_", raw).strip("_-")[: MAX_ID_LENGTH - 9] or "video"
    return f"{cleaned}-{short_hash(raw)}"


@dataclass(frozen=True)
class Collision:
    """Two different source records whose ids came out equal; the later one was renamed."""

    video_id: str
    renamed_to: str
    raw_id: str


def resolve_collisions(ids: list[str], raw_ids: list[str]) -> tuple[list[str], list[Collision]]:
    """Make ``ids`` unique in source order by suffixing ``-2``, ``-3``...; report each rename."""
    taken: set[str] = set()
    unique: list[str] = []
    collisions: list[Collision] = []
    for video_id, raw in zip(ids, raw_ids, strict=True):
        candidate, n = video_id, 1
        while candidate in taken:
            n += 1
            candidate = f"{video_id}-{n}"
        if candidate != video_id:
            collisions.append(Collision(video_id, candidate, raw))
        taken.add(candidate)
        unique.append(candidate)
    return unique, collisions


def clip_id(video_id: str, index: int) -> str:
    return f"{video_id}-c{index:03d}"


def video_of_clip(clip: str) -> str:
    """The video a clip id belongs to (the inverse of :func:`clip_id`)."""
    return clip.rsplit("-c", 1)[0]


def shard_name(index: int) -> str:
    return f"s{index:05d}"
