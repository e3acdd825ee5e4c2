"""Where a dataset's files live (zones: docs/architecture.md).

Only this module spells out paths, so the Snakemake rules (``workflow/rules/common.smk``) and the
package agree. Everything a stage writes per item is stored relative to the dataset folder.
"""

from __future__ import annotations

from dataclasses import dataclass
from fnmatch import fnmatch
from pathlib import Path

# The files of a dataset folder that differ between two runs of the same config and inputs:
# what was measured (logs, the journals' and timings tables' seconds) and who held a lock.
# Every other file is byte-identical between two clean runs on one machine (README,
# "Reproducible files"; tests/test_workflow.py compares two runs).
NOT_REPRODUCIBLE = ("logs/*", "status/*/*.journal.jsonl", "status/*/timings/*", "*.lock")


def is_reproducible(relative: str | Path) -> bool:
    """Whether a file (its path inside the dataset folder) is in the reproducible set."""
    return not any(fnmatch(str(relative), pattern) for pattern in NOT_REPRODUCIBLE)


@dataclass(frozen=True)
class DatasetLayout:
    results: Path
    dataset: str

    @property
    def root(self) -> Path:
        return Path(self.results) / self.dataset

    @property
    def manifest(self) -> Path:
        return self.root / "manifest.parquet"

    @property
    def clip_table(self) -> Path:
        """The dataset file of the foundation stages: every clip of every shard."""
        return self.root / "clips.parquet"

    @property
    def released_table(self) -> Path:
        """The released clips (blurred, audited): what every export takes pixels from."""
        return self.root / "released_clips.parquet"

    @property
    def crop_table(self) -> Path:
        """One row per person track with its crop and flow files."""
        return self.root / "crops.parquet"

    @property
    def download_report(self) -> Path:
        return self.root / "download_report.parquet"

    def status(self, stage: str, shard: str) -> Path:
        return self.root / "status" / stage / f"{shard}.parquet"

    def status_dir(self, stage: str) -> Path:
        return self.root / "status" / stage

    def table(self, name: str, shard: str) -> Path:
        return self.root / "tables" / name / f"{shard}.parquet"

    def private_videos(self, shard: str) -> Path:
        """Downloaded originals: private zone (unblurred pixels)."""
        return self.root / "private" / "videos" / shard

    def private_clips(self, shard: str) -> Path:
        """Scene clips before face blur: private zone."""
        return self.root / "private" / "clips" / shard

    def blurred_clips(self, shard: str) -> Path:
        """Blurred clips before the privacy audit: work area, not yet released."""
        return self.root / "work" / "blurred" / shard

    def released_clips(self, shard: str) -> Path:
        """Blurred clips that passed the audit: the only source of released pixels."""
        return self.root / "clips" / shard

    def tracks(self, shard: str) -> Path:
        """Per-clip track tables (tables only: no pixels leave the private zone here)."""
        return self.root / "tracks" / shard

    def crops(self, shard: str) -> Path:
        """Person crops per track, cut from released (blurred, audited) clips."""
        return self.root / "crops" / shard

    def flow(self, shard: str) -> Path:
        return self.root / "flow" / shard

    @property
    def track_table(self) -> Path:
        """The dataset file of detection: one row per track of every shard."""
        return self.root / "tracks.parquet"

    @property
    def trackverse_dir(self) -> Path:
        """TrackVerse-format per-video records and curated subsets."""
        return self.root / "trackverse"

    def trackverse_meta(self, domain: str) -> Path:
        """A domain's per-video records (``<yid[:2]>/<yid>-meta.jsonl.gzip``)."""
        return self.trackverse_dir / "tracks_meta" / domain

    @property
    def trackverse_subsets(self) -> Path:
        """The index and curated subsets of every domain (``<domain>-<name>.jsonl.gzip``)."""
        return self.trackverse_dir / "tracks_subsets"

    @property
    def report_dir(self) -> Path:
        return self.root / "report"
