"""`vidmine status` counts from finished status tables and from journals of running shards."""

from vidmine.io import write_table_atomic
from vidmine.layout import DatasetLayout
from vidmine.manifest import write_manifest
from vidmine.runner import Journal, journal_path, status_table
from vidmine.sources import RejectedRow, SourceRecord
from vidmine.status import format_summary, rejected_rows, summarise


def entry(item_id, status, reason=""):
    return {
        "id": item_id,
        "status": status,
        "reason": reason,
        "seconds": 1.0,
        "outputs": [],
        "settings_hash": "x",
        "fields": {},
    }


def test_counts_finished_and_running_shards(results):
    layout = DatasetLayout(results, "d")
    records = [SourceRecord(raw_id=f"v{i}", url=f"https://x.org/{i}.mp4") for i in range(5)]
    write_manifest(records, "urls", 3, layout.manifest)  # s00000: v0-v2, s00001: v3-v4
    finished = [entry("v0", "ok"), entry("v1", "failed", "HTTP Error 404"), entry("v2", "ok")]
    write_table_atomic(status_table(finished), layout.status("download", "s00000"))
    Journal(journal_path(layout.status("download", "s00001"))).append(
        entry("v3", "failed", "HTTP Error 404")
    )
    download, probe, *_ = summarise(layout)
    assert (download.counts["ok"], download.counts["failed"], download.pending) == (2, 2, 1)
    assert (download.shards_done, download.shards_running) == (1, 1)
    assert download.reasons.most_common(1) == [(("failed", "HTTP Error 404"), 2)]
    assert probe.pending == 3  # 2 passed on + 1 still pending upstream
    text = format_summary("d", summarise(layout), 2)
    assert "2 x failed: HTTP Error 404" in text
    # a shard a signal stopped: its item in flight is still pending, and the status says why
    Journal(journal_path(layout.status("download", "s00001"))).append(
        entry("v4", "interrupted", "stopped by SIGTERM")
    )
    download, *_ = summarise(layout)
    assert (download.counts["ok"], download.counts["failed"], download.pending) == (2, 2, 1)
    text = format_summary("d", summarise(layout), 2)
    assert "1 x interrupted: stopped by SIGTERM at v4" in text


def test_status_shows_dropped_reasons_in_full_and_rejected_source_rows(results):
    layout = DatasetLayout(results, "d")
    records = [SourceRecord(raw_id=f"v{i}", url=f"https://x.org/{i}.mp4") for i in range(2)]
    rejected = [RejectedRow("list.csv", f"line {n}", "empty url") for n in (4, 7)]
    write_manifest(records, "urls", 5, layout.manifest, rejected)
    long_reason = "no clip within the length bounds: " + "x" * 120
    clips = [entry("v0", "dropped", long_reason), entry("v1", "ok")]
    write_table_atomic(status_table(clips), layout.status("download", "s00000"))
    text = format_summary("d", summarise(layout), 1, rejected=rejected_rows(layout))
    assert "source: 2 rows rejected (rejected_rows.parquet)" in text
    assert "2 x empty url (e.g. list.csv, line 4)" in text
    assert f"1 x dropped: {long_reason}" in text  # in full, not cut at 90 characters
