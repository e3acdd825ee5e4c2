"""The one registry of stages: what each stage is called, what it reads and what it writes.

Everything else that lists stages is derived from :data:`STAGES`: ``vidmine run-stage``'s
choices and the pipeline (:mod:`vidmine.pipeline`), the inputs every stage rule declares
(``workflow/rules/common.smk``), ``vidmine status``, the per-stage settings hashes of the export
index (provenance) and the order of the report items. Adding a stage is a folder
``stages/<name>/`` (``items.py`` with ``select_items``, ``stage.py`` with the class), one entry
here, one rule and one config-schema section (``docs/architecture.md``).

This module holds data only (no stage is imported), so planning (Snakemake's main process,
``vidmine status``) stays light.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

VIDEO, CLIP = "video", "clip"


@dataclass(frozen=True)
class StageSpec:
    """One stage of the per-shard DAG."""

    name: str
    stage_class: str  # the class in ``vidmine.stages.<name>.stage``
    item: str  # what one item is: VIDEO (ids ``{video_id}``) or CLIP (``{video_id}-cNNN``)
    reads: tuple[str, ...] = ()  # stages whose status table (ok items) it reads
    reads_tables: tuple[str, ...] = ()  # per-shard row tables of those stages it reads
    reads_manifest: bool = False
    # Names of an item's output files, in the order of the status table's ``outputs`` list; a
    # last name ending in "*" takes all the remaining outputs (one file per track, say).
    outputs: tuple[str, ...] = ()
    table: str | None = None  # the per-shard row table it writes (``vidmine.tables``)
    # Whether the export index records this stage's per-item settings hash (provenance of the
    # pixels and poses a track was made from).
    provenance: bool = True
    report: tuple[str, ...] = ()  # its report items under ``results/{dataset}/report/``

    @property
    def module(self) -> str:
        return f"vidmine.stages.{self.name}"

    def named_outputs(self, outputs: list[str]) -> dict[str, Any]:
        """An item's outputs by name: ``{"video": ..., "info": ...}`` for ``download``."""
        named: dict[str, Any] = {}
        for position, name in enumerate(self.outputs):
            if name.endswith("*"):
                named[name[:-1]] = list(outputs[position:])
                return named
            named[name] = outputs[position] if position < len(outputs) else None
        return named


STAGES: tuple[StageSpec, ...] = (
    StageSpec(
        "download",
        "DownloadStage",
        VIDEO,
        reads_manifest=True,
        outputs=("video", "info"),
        report=("download_summary.html",),
    ),
    StageSpec("probe", "ProbeStage", VIDEO, reads=("download",), provenance=False),
    StageSpec(
        "scenecut",
        "SceneCutStage",
        VIDEO,
        reads=("probe",),
        reads_manifest=True,
        outputs=("clips*",),
        table="clips",
        report=("clips.html", "shots.png"),
    ),
    StageSpec(
        "filter",
        "FilterStage",
        CLIP,
        reads_tables=("clips",),
        table="scores",
        report=("filter.html", "filter_scores.png"),
    ),
    StageSpec(
        "blur",
        "BlurStage",
        CLIP,
        reads=("filter",),
        reads_tables=("clips",),
        outputs=("blurred",),
        table="faces",
        report=("blur_examples.png",),
    ),
    StageSpec(
        "audit",
        "AuditStage",
        CLIP,
        reads=("blur",),
        reads_tables=("clips",),
        outputs=("released",),
        table="audit",
        report=("audit.html",),
    ),
    StageSpec(
        "detect",
        "DetectStage",
        CLIP,
        reads=("filter",),
        reads_tables=("clips",),
        outputs=("tracks",),
        table="tracks",
        report=("track_examples.png", "track_lengths.png"),
    ),
    StageSpec(
        "trackverse",
        "TrackVerseStage",
        VIDEO,
        reads=("detect",),
        reads_tables=("clips",),
        # meta, progress, then each record's tracks_motion/ and tracks_embeddings/ .npy
        outputs=("meta", "progress", "metrics*"),
        table="trackverse",
        provenance=False,
    ),
    StageSpec(
        "crops",
        "CropsStage",
        CLIP,
        reads=("detect", "audit"),
        outputs=("crops*",),
        table="crops",
    ),
    StageSpec(
        "flow",
        "FlowStage",
        CLIP,
        reads=("crops",),
        outputs=("flow*",),
        table="flow",
        report=("crops_flow.png",),
    ),
)

BY_NAME: dict[str, StageSpec] = {spec.name: spec for spec in STAGES}
STAGE_NAMES: tuple[str, ...] = tuple(BY_NAME)
# Stages whose per-item settings hash the export index records (``settings_<stage>`` columns).
PROVENANCE_STAGES: tuple[str, ...] = tuple(s.name for s in STAGES if s.provenance)
REPORT_ITEMS: tuple[str, ...] = tuple(item for s in STAGES for item in s.report)
# Which stage writes each per-shard row table.
TABLE_OWNER: dict[str, str] = {s.table: s.name for s in STAGES if s.table}


def spec(name: str) -> StageSpec:
    """The registry entry of ``name``; a ``ValueError`` naming the known stages otherwise."""
    if name not in BY_NAME:
        raise ValueError(f"unknown stage {name!r} (known: {', '.join(STAGE_NAMES)})")
    return BY_NAME[name]
