"""`vidmine status` counts from finished status tables and from journals of running shards."""

from vidmine.io import write_table_atomic
from vidmine.layout import DatasetLayout
from vidmine.manifest import write_manifest
from vidmine.runner import Journal, journal_path, status_table
from vidmine.sources import SourceRecord
from vidmine.status import format_summary, summarise


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
    assert download.reasons.most_common(1) == [("HTTP Error 404", 2)]
    assert probe.pending == 3  # 2 passed on + 1 still pending upstream
    text = format_summary("d", summarise(layout), 2)
    assert "2 x HTTP Error 404" in text
