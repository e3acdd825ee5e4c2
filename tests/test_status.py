"""`vidmine status` counts from finished status tables and from journals of running shards."""

from conftest import status_entry as entry
from vidmine.io import write_table_atomic
from vidmine.layout import DatasetLayout
from vidmine.manifest import write_manifest
from vidmine.runner import Journal, journal_path, status_table
from vidmine.sources import RejectedRow, SourceRecord
from vidmine.status import format_summary, rejected_rows, summarise


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


def test_watch_reprints_with_the_throughput_since_the_last_refresh(results):
    from vidmine.status import watch

    layout = DatasetLayout(results, "d")
    records = [SourceRecord(raw_id=f"v{i}", url=f"https://x.org/{i}.mp4") for i in range(4)]
    write_manifest(records, "urls", 4, layout.manifest)
    journal = Journal(journal_path(layout.status("download", "s00000")))
    journal.append(entry("v0", "ok"))
    now = [100.0]
    shown = []

    def sleep(seconds):  # the run goes on while the watch waits: 3 more videos in 30 s
        for video in ("v1", "v2", "v3"):
            journal.append(entry(video, "failed" if video == "v3" else "ok", "HTTP Error 404"))
        now[0] += seconds

    watch(layout, 30, 1, refreshes=2, show=shown.append, clock=lambda: now[0], sleep=sleep)
    assert len(shown) == 2 and "throughput" not in shown[0]
    first = {line.split()[0]: line.split()[1:] for line in shown[0].splitlines()[2:4]}
    assert first["download"][:4] == ["1", "0", "0", "3"]
    assert "throughput over the last 30 s (items/min):" in shown[1]
    assert "download       6.0  (+3)" in shown[1]
    assert "probe          0.0  (+0)" in shown[1]
    assert "2 x failed" not in shown[1] and "1 x failed: HTTP Error 404" in shown[1]
