"""The TrackVerse export: one domain of the dataset's TrackVerse database (FORMATS.md 3.1), the
files the trackverse stage and the subset builder already wrote, linked into one folder."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from vidmine.exports.common import dataset_root, layout_of
from vidmine.formats import FormatError
from vidmine.formats.trackverse import META_SUFFIX
from vidmine.io import atomic_dir, link_or_copy

log = logging.getLogger(__name__)


def _visible_files(folder: Path) -> list[Path]:
    """Files below ``folder``, sorted, leaving out hidden ones (partial writes) and those in
    hidden folders."""
    if not folder.is_dir():
        return []
    return sorted(
        p
        for p in folder.rglob("*")
        if p.is_file() and not any(part.startswith(".") for part in p.relative_to(folder).parts)
    )


def export_trackverse(
    dataset_dir: str | os.PathLike, out_dir: str | os.PathLike, domain: str
) -> dict[str, int]:
    """TrackVerse's database layout (FORMATS.md 3.1) for one domain.

    ``tracks_subsets/<domain>-*.jsonl.gzip`` (the index and the curated subsets) and
    ``tracks_meta/<domain>/<yid[:2]>/<yid>-meta.jsonl.gzip`` (+ ``-progress.txt``), hard-linked
    where possible (else copied), plus ``tracks_meta/<domain>/completed.txt`` listing the
    videos whose meta file exists (TrackVerse's tracker of finished videos).
    """
    root = dataset_root(dataset_dir)
    if not domain or "/" in domain or domain.startswith("."):
        raise FormatError(f"trackverse domain {domain!r} is not a plain name")
    layout = layout_of(root)
    index = layout.trackverse_subsets / f"{domain}-index.jsonl.gzip"
    if not index.exists():
        raise FileNotFoundError(f"{index}: TrackVerse index missing (build it first)")
    subsets = sorted(
        p
        for p in layout.trackverse_subsets.glob(f"{domain}-*.jsonl.gzip")
        if not p.name.startswith(".")
    )
    meta_dir = layout.trackverse_meta(domain)
    metas = _visible_files(meta_dir)
    counts = {"subsets": 0, "meta_files": 0, "videos": 0, "linked": 0, "copied": 0}
    with atomic_dir(out_dir) as tmp:
        for path in subsets:
            counts[link_or_copy(path, tmp / "tracks_subsets" / path.name)] += 1
            counts["subsets"] += 1
            log.info("subset %s", path.name)
        out_meta = tmp / "tracks_meta" / domain
        yids = []
        for path in metas:
            counts[link_or_copy(path, out_meta / path.relative_to(meta_dir))] += 1
            counts["meta_files"] += 1
            if path.name.endswith(META_SUFFIX):
                yids.append(path.name[: -len(META_SUFFIX)])
                log.info("video %s", yids[-1])
        completed = out_meta / "completed.txt"
        if not completed.exists():
            completed.parent.mkdir(parents=True, exist_ok=True)
            completed.write_text("".join(f"{y}\n" for y in sorted(yids)))
        counts["videos"] = len(yids)
    return counts
