"""The clip table: every clip of every shard (``clips.parquet``)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from vidmine.tables import CLIPS

log = logging.getLogger(__name__)


def gather_clips(tables: Sequence[str | Path], out: str | Path) -> pd.DataFrame:
    """Concatenate the per-shard clip tables, sorted by clip id."""
    clips = CLIPS.concat(tables).sort_values("clip_id").reset_index(drop=True)
    CLIPS.write(clips, out)
    log.info("clip table: %d clips from %d videos -> %s", len(clips), clips.video_id.nunique(), out)
    return clips
