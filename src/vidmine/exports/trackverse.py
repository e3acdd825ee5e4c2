"""The TrackVerse export: one domain of the dataset's TrackVerse database
(docs/formats/trackverse.md, "Database layout (v1)"), the files the trackverse stage and the subset
builder already wrote, linked into one folder under the names TrackVerse's own code reads and writes
(docs/formats/trackverse.md)."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

from vidmine.exports.common import dataset_root, layout_of
from vidmine.formats import FormatError
from vidmine.formats.trackverse import (
    EMBEDDINGS,
    META_SUFFIX,
    MOTION,
    metric_path,
    read_lines_gzip,
)
from vidmine.io import atomic_dir, link_or_copy
from vidmine.stages.trackverse.curation import curate_db_name

log = logging.getLogger(__name__)

SUBSET_SUFFIX = ".jsonl.gzip"


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


def export_name(path: Path, domain: str, curation: dict[str, Any]) -> str | None:
    """The exported file name of a subset file: the index as is, a subset under the name
    curate_db.py writes (its size in it), None for a file that is no configured subset."""
    stem = path.name[: -len(SUBSET_SUFFIX)]
    if stem == f"{domain}-index":
        return path.name
    try:
        return curate_db_name(stem, len(read_lines_gzip(path)), curation) + SUBSET_SUFFIX
    except ValueError as exc:
        log.warning("%s: not exported: %s", path.name, exc)
        return None


def export_trackverse(
    dataset_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    domain: str,
    curation: dict[str, Any] | None = None,
) -> dict[str, int]:
    """TrackVerse's database layout (docs/formats/trackverse.md, "Database layout (v1)") for one
    domain.

    * ``tracks_subsets/``: the index (``<domain>-index.jsonl.gzip``) and each curated subset,
      named as curate_db.py names it (``curate_db_name``; ``curation`` is the dataset's
      ``trackverse.curation`` section, whose constraints are part of the class-balanced names);
    * ``tracks_meta/<domain>/<yid[:2]>/<yid>-meta.jsonl.gzip`` (+ ``-progress.txt``) and
      ``completed.txt`` listing the videos whose meta file exists (parse_tracks.py's tracker);
    * ``tracks_motion/<domain>/`` and ``tracks_embeddings/<domain>/``: one ``.npy`` per record
      at its ``fn`` (``.mp4`` -> ``.npy``), with ``completed.txt`` listing the ``fn`` of each
      (visual_metrics.py's tracker).

    Files are hard-linked where possible (else copied). Records of the index without a motion
    or an embedding file are counted (``without_metrics``) and logged: TrackVerse's MinRed
    raises on a missing embedding and its motion reader takes a missing file as no motion.
    """
    root = dataset_root(dataset_dir)
    if not domain or "/" in domain or domain.startswith("."):
        raise FormatError(f"trackverse domain {domain!r} is not a plain name")
    layout = layout_of(root)
    index = layout.trackverse_subsets / f"{domain}-index{SUBSET_SUFFIX}"
    if not index.exists():
        raise FileNotFoundError(f"{index}: TrackVerse index missing (build it first)")
    subsets = sorted(
        p
        for p in layout.trackverse_subsets.glob(f"{domain}-*{SUBSET_SUFFIX}")
        if not p.name.startswith(".")
    )
    meta_dir = layout.trackverse_meta(domain)
    counts = {"subsets": 0, "meta_files": 0, "videos": 0, "motion_files": 0}
    counts |= {"embedding_files": 0, "without_metrics": 0, "linked": 0, "copied": 0}
    with atomic_dir(out_dir) as tmp:
        for path in subsets:
            name = export_name(path, domain, curation or {})
            if name is None:
                continue
            counts[link_or_copy(path, tmp / "tracks_subsets" / name)] += 1
            counts["subsets"] += 1
            log.info("subset %s -> %s", path.name, name)
        out_meta = tmp / "tracks_meta" / domain
        yids = []
        for path in _visible_files(meta_dir):
            counts[link_or_copy(path, out_meta / path.relative_to(meta_dir))] += 1
            counts["meta_files"] += 1
            if path.name.endswith(META_SUFFIX):
                yids.append(path.name[: -len(META_SUFFIX)])
                log.info("video %s", yids[-1])
        _write_completed(out_meta, sorted(yids))
        counts["videos"] = len(yids)
        fns = [json.loads(line)["fn"] for line in read_lines_gzip(index)]
        found = {MOTION: set(), EMBEDDINGS: set()}
        for metric, key in ((MOTION, "motion_files"), (EMBEDDINGS, "embedding_files")):
            source = layout.trackverse_dir / f"tracks_{metric}" / domain
            out = tmp / f"tracks_{metric}" / domain
            for fn in fns:
                path = metric_path(layout.trackverse_dir, metric, domain, fn)
                if path.is_file() and fn not in found[metric]:
                    counts[link_or_copy(path, out / path.relative_to(source))] += 1
                    counts[key] += 1
                    found[metric].add(fn)
            _write_completed(out, sorted(found[metric]))
        for fn in fns:
            if fn not in found[MOTION] or fn not in found[EMBEDDINGS]:
                counts["without_metrics"] += 1
                log.warning("%s: no motion or embedding file (MinRed cannot use it)", fn)
    return counts


def _write_completed(folder: Path, lines: list[str]) -> None:
    """A TrackVerse ``completed.txt`` (misc.ProgressTracker: one entry per line)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "completed.txt").write_text("".join(f"{line}\n" for line in lines))
