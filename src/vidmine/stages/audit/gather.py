"""The released clip table (``released_clips.parquet``): blurred, audited clips with their
filter scores. Every later stage and export reads pixels from it (``path`` points into
``clips/``, never ``private/``)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from vidmine.registry import BY_NAME
from vidmine.runner import read_status
from vidmine.tables import CLIPS, RELEASED, RELEASED_SCORE_COLUMNS, SCORES

log = logging.getLogger(__name__)
AUDIT_SPEC = BY_NAME["audit"]


def gather_released(
    clips: Sequence[str | Path],
    scores: Sequence[str | Path],
    audits: Sequence[str | Path],
    out: str | Path,
) -> pd.DataFrame:
    """Clips whose audit status is ok, with the released path the audit wrote."""
    table = CLIPS.concat(clips)
    audit = pd.concat([read_status(a) for a in audits], ignore_index=True) if audits else None
    if audit is None or not len(audit) or not len(table):
        released = RELEASED.empty()
    else:
        passed = audit[audit.status == "ok"]
        released_path = [AUDIT_SPEC.named_outputs(list(o))["released"] for o in passed.outputs]
        paths = dict(zip(passed.id, released_path, strict=True))
        actions = dict(zip(passed.id, passed.action, strict=True))
        released = table[table.clip_id.isin(paths)].drop(columns=["path"])
        scored = SCORES.concat(scores)[["clip_id", *RELEASED_SCORE_COLUMNS]]
        released = released.merge(scored, on="clip_id")
        released["path"] = released.clip_id.map(paths)
        released["audit_action"] = released.clip_id.map(actions)
        released = released.sort_values("clip_id").reset_index(drop=True)
    RELEASED.write(released, out)
    log.info("released clips: %d -> %s", len(released), out)
    return released
