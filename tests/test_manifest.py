import re

import pandas as pd

from vidmine.ids import resolve_collisions, safe_id
from vidmine.manifest import (
    assign_shards,
    build_manifest,
    read_manifest,
    rejected_path,
    write_manifest,
)
from vidmine.sources import RejectedRow, SourceRecord

SAFE = re.compile(r"^[A-Za-z0-9_-]+$")


def test_safe_ids_are_safe_deterministic_and_keep_clean_ids():
    assert safe_id("KV4jIAq3WJo") == "KV4jIAq3WJo"
    for raw in ["deadlift/44825418_n", "a b", "a_b", "ünïcode ✓", "-dash", "x" * 300, "", "../.."]:
        assert SAFE.match(safe_id(raw)), raw
        assert safe_id(raw) == safe_id(raw)
        assert len(safe_id(raw)) <= 96
    # Two raw ids that clean to the same text still get different ids.
    assert safe_id("a b") != safe_id("a/b")


def test_collisions_are_resolved_in_source_order_and_reported():
    ids, collisions = resolve_collisions(["v", "v", "w", "v"], ["r1", "r2", "r3", "r4"])
    assert ids == ["v", "v-2", "w", "v-3"]
    assert [(c.video_id, c.renamed_to, c.raw_id) for c in collisions] == [
        ("v", "v-2", "r2"),
        ("v", "v-3", "r4"),
    ]


def records(n, prefix="v"):
    return [
        SourceRecord(raw_id=f"{prefix}{i}", url=f"https://x.org/{prefix}{i}.mp4") for i in range(n)
    ]


def test_shards_are_fixed_size_in_source_order():
    frame, _ = build_manifest(records(5), "urls", shard_size=2)
    assert list(frame.shard) == ["s00000", "s00000", "s00001", "s00001", "s00002"]


def test_new_videos_never_reshuffle_existing_shards():
    before, _ = build_manifest(records(5), "urls", shard_size=2)
    # New videos inserted at the front and the end of the source.
    grown = records(2, prefix="new") + records(5) + records(3, prefix="late")
    after, _ = build_manifest(grown, "urls", shard_size=2, previous=before)
    merged = before.merge(after, on="video_id", suffixes=("_before", "_after"))
    assert (merged.shard_before == merged.shard_after).all()
    new = after[~after.video_id.isin(before.video_id)]
    # The half-full last shard is filled first, then new shards follow.
    assert list(new.shard) == ["s00002", "s00003", "s00003", "s00004", "s00004"]
    assert after.groupby("shard").size().max() <= 2


def test_assign_shards_without_previous_is_deterministic():
    ids = [f"v{i}" for i in range(7)]
    assert assign_shards(ids, 3, {}) == assign_shards(ids, 3, {})


def test_duplicates_dropped_and_collisions_marked(tmp_path):
    recs = [
        SourceRecord(raw_id="a b", url="u1"),
        SourceRecord(raw_id="a b", url="u1"),  # exact repeat: dropped
        SourceRecord(raw_id="a b", url="u2"),  # same id, other URL: renamed
    ]
    path = tmp_path / "manifest.parquet"
    frame = write_manifest(recs, "urls", 10, path)
    assert len(frame) == 2
    assert frame.video_id.iloc[1] == frame.video_id.iloc[0] + "-2"
    assert frame.id_renamed_from.iloc[1] == frame.video_id.iloc[0]
    stored = read_manifest(path)
    columns = ["video_id", "shard", "raw_id", "url", "source"]
    pd.testing.assert_frame_equal(stored[columns], frame[columns])
    rejected = pd.read_parquet(rejected_path(path))  # the dropped repeat is accounted for
    assert rejected.to_dict("records") == [
        {
            "file": "source",
            "where": "id a b",
            "reason": "a repeat of an earlier row (same id, URL and span)",
        }
    ]


def test_rejected_source_rows_are_written_next_to_the_manifest(tmp_path):
    path = tmp_path / "manifest.parquet"
    reader_rows = [RejectedRow("list.csv", "line 3", "empty url")]
    write_manifest([SourceRecord(raw_id="a", url="u")], "urls", 10, path, reader_rows)
    assert rejected_path(path) == tmp_path / "rejected_rows.parquet"
    table = pd.read_parquet(rejected_path(path))
    assert table.to_dict("records") == [
        {"file": "list.csv", "where": "line 3", "reason": "empty url"}
    ]
    write_manifest([], "urls", 10, tmp_path / "empty" / "manifest.parquet")  # none: an empty table
    assert pd.read_parquet(tmp_path / "empty" / "rejected_rows.parquet").empty


def test_rewriting_manifest_keeps_assignments(tmp_path):
    path = tmp_path / "manifest.parquet"
    first = write_manifest(records(3), "urls", 2, path)
    second = write_manifest(records(1, prefix="z") + records(3), "urls", 2, path)
    kept = second.set_index("video_id").loc[first.video_id, "shard"]
    assert list(kept) == list(first.shard)
