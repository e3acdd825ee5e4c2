"""The dataset's crop table (``crops.parquet``): one row per person track with its crop file
and, once the flow stage ran, its flow file (``flow_path``) and magnitudes."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from vidmine.tables import CROP_TABLE, CROPS, FLOW

log = logging.getLogger(__name__)


def gather_crops(
    tables: Sequence[str | Path], flow_tables: Sequence[str | Path], out: str | Path
) -> pd.DataFrame:
    crops = CROPS.concat(tables)
    flow = FLOW.concat(flow_tables).rename(columns={"path": "flow_path"})
    crops = crops.merge(flow, on=["clip_id", "track_id"], how="left")
    CROP_TABLE.write(crops, out)
    log.info("%d tracks -> %s", len(crops), out)
    return crops
