"""The shared shard runner: skipping, journals, failures, and a SIGKILL in the middle of a shard."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pyarrow as pa

from vidmine.io import atomic_path, partial_path, remove_partials
from vidmine.layout import DatasetLayout
from vidmine.manifest import write_manifest
from vidmine.probing import probe_video
from vidmine.runner import (
    ItemResult,
    Journal,
    journal_path,
    read_status,
    run_shard,
    timings_path,
)
from vidmine.sources import SourceRecord
from vidmine.tables import TEXT, Table

ROWS = Table("rows", "an item of the counting stage", pa.schema([("x", TEXT)]))


class CountingStage:
    """A real stage writing one file per item; counts calls so tests can see what was redone."""

    name = "count"

    def __init__(self, folder: Path, settings=None, fail=(), explode=()):
        self.folder, self.settings = folder, settings or {"k": 1}
        self.fail, self.explode, self.calls = set(fail), set(explode), []

    def result_settings(self):
        return self.settings

    def output_folders(self):
        return [self.folder]

    def process(self, item):
        self.calls.append(item["id"])
        if item["id"] in self.explode:
            raise RuntimeError("boom\nsecond line")
        if item["id"] in self.fail:
            return ItemResult.failed("bad input")
        out = self.folder / f"{item['id']}.txt"
        with atomic_path(out) as tmp:
            tmp.write_text(item["id"])
        return ItemResult.ok(
            [out.name], fields={"length": len(item["id"])}, rows=[{"x": item["id"]}]
        )


def run(stage, ids, tmp_path, **kwargs):
    return run_shard(
        stage,
        [{"id": i} for i in ids],
        tmp_path / "status.parquet",
        base=stage.folder,
        table_path=tmp_path / "rows.parquet",
        table=ROWS,
        **kwargs,
    )


def test_completed_items_are_reused_not_redone(tmp_path):
    stage = CountingStage(tmp_path / "out", fail={"b"}, explode={"c"})
    status = run(stage, ["a", "b", "c", "d"], tmp_path)
    assert list(status.status) == ["ok", "failed", "failed", "ok"]
    assert status.reason[2] == "RuntimeError: boom | second line"
    assert pd.read_parquet(tmp_path / "rows.parquet").x.tolist() == ["a", "d"]
    stage.calls.clear()
    run(stage, ["a", "b", "c", "d", "e"], tmp_path)
    assert stage.calls == ["e"]  # failed items are final unless asked
    stage.calls.clear()
    run(stage, ["a", "b", "c", "d", "e"], tmp_path, retry_failed=True)
    assert stage.calls == ["b", "c"]


def test_missing_output_or_changed_settings_redo_the_item(tmp_path):
    stage = CountingStage(tmp_path / "out")
    run(stage, ["a", "b"], tmp_path)
    (stage.folder / "a.txt").unlink()
    stage.calls.clear()
    run(stage, ["a", "b"], tmp_path)
    assert stage.calls == ["a"]
    stage.settings = {"k": 2}
    stage.calls.clear()
    run(stage, ["a", "b"], tmp_path)
    assert stage.calls == ["a", "b"]


def test_status_table_expands_fields(tmp_path):
    run(CountingStage(tmp_path / "out"), ["abc"], tmp_path)
    status = read_status(tmp_path / "status.parquet")
    assert status.loc[0, "length"] == 3 and status.loc[0, "outputs"].tolist() == ["abc.txt"]


def test_torn_journal_line_is_ignored_and_not_glued_to_the_next(tmp_path):
    journal = Journal(tmp_path / "j.jsonl")
    journal.append({"id": "a", "status": "ok"})
    with journal.path.open("a") as handle:
        handle.write('{"id": "b", "sta')  # a kill in the middle of a write
    journal.append({"id": "c", "status": "ok"})
    assert sorted(journal.load()) == ["a", "c"]


def test_partials_are_swept(tmp_path):
    final = tmp_path / "clip.mp4"
    leftover = partial_path(final)
    leftover.write_bytes(b"half")
    (tmp_path / ".vid.partial-123-abc").mkdir()
    (tmp_path / ".vid.partial-123-abc" / "video.mp4.part").write_bytes(b"x")
    assert remove_partials(tmp_path) == 2
    assert list(tmp_path.iterdir()) == []


def test_sigkill_mid_shard_then_rerun_finishes_without_redoing(results, http_server, demo_videos):
    layout = DatasetLayout(results, "d")
    ids = [f"v{i}" for i in range(6)]
    records = [SourceRecord(raw_id=i, url=f"{http_server}/slow/bikes.mp4?copy={i}") for i in ids]
    write_manifest(records, "urls", 10, layout.manifest)
    command = [
        sys.executable,
        "-m",
        "vidmine",
        "run-stage",
        "download",
        "--shard",
        "s00000",
        "--dataset-dir",
        str(layout.root),
        "--settings",
        json.dumps(download_settings()),
    ]
    journal = journal_path(layout.status("download", "s00000"))

    job = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and job.poll() is None:
        if journal.exists() and len(journal.read_text().splitlines()) >= 2:
            break
        time.sleep(0.05)
    time.sleep(0.2)  # land the kill inside a download, not between items
    os.kill(job.pid, signal.SIGKILL)
    job.wait()
    done_before = list(Journal(journal).load())
    assert 2 <= len(done_before) < len(ids), "the kill must land mid-shard"
    assert not layout.status("download", "s00000").exists()

    subprocess.run(command, check=True, capture_output=True)
    lines = [json.loads(line) for line in journal.read_text().splitlines() if line.strip()]
    counts = pd.Series([entry["id"] for entry in lines]).value_counts()
    assert all(counts[i] == 1 for i in done_before), "finished videos were redone"
    status = read_status(layout.status("download", "s00000"))
    assert sorted(status.id) == ids and set(status.status) == {"ok"}
    source = demo_videos["bikes"].read_bytes()
    folder = layout.private_videos("s00000")
    for video_id in ids:
        assert (folder / f"{video_id}.mp4").read_bytes() == source
        assert probe_video(folder / f"{video_id}.mp4")["n_frames"] == 250
    assert not [p for p in folder.iterdir() if p.name.startswith(".")]


def download_settings():
    from vidmine.config import validate_config

    config = validate_config({"datasets": {"d": {"source": {"type": "demo"}}}})
    return {**config["datasets"]["d"]["download"], "retries": 0, "socket_timeout": 5}


def _download_job(results, http_server, n=6):
    """A download shard of ``n`` slow videos and the command a Snakemake job runs for it."""
    layout = DatasetLayout(results, "d")
    ids = [f"v{i}" for i in range(n)]
    records = [SourceRecord(raw_id=i, url=f"{http_server}/slow/bikes.mp4?copy={i}") for i in ids]
    write_manifest(records, "urls", 10, layout.manifest)
    command = [
        *(sys.executable, "-m", "vidmine", "run-stage", "download", "--shard", "s00000"),
        *("--dataset-dir", str(layout.root), "--settings", json.dumps(download_settings())),
    ]
    return layout, ids, command, journal_path(layout.status("download", "s00000"))


def _wait_for_lines(journal, n, job, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and job.poll() is None:
        if journal.exists() and len(journal.read_text().splitlines()) >= n:
            return
        time.sleep(0.05)
    raise AssertionError(f"{journal}: fewer than {n} lines in {timeout} s")


def test_a_second_copy_of_a_running_shard_waits_then_reuses_its_work(results, http_server):
    """A Snakemake killed alone leaves its job running; the rerun's job must not run beside it.
    It waits on the shard's lock, which the kernel releases when the first job dies (SIGKILL
    included), then reuses every item the first one finished."""
    layout, ids, command, journal = _download_job(results, http_server, n=40)
    first = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _wait_for_lines(journal, 1, first)
    refused = subprocess.run([*command, "--exit-if-locked"], capture_output=True, text=True)
    assert refused.returncode == 2
    (line,) = refused.stderr.strip().splitlines()
    assert f"held by pid {first.pid} on {os.uname().nodename}" in line
    log = results / "second.log"
    with log.open("w") as err:
        second = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=err)
    deadline = time.monotonic() + 60
    while "waiting" not in log.read_text() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert f"held by pid {first.pid}" in log.read_text()  # it waits instead of working
    done_while_waiting = len(Journal(journal).load())
    os.kill(first.pid, signal.SIGKILL)
    first.wait()
    done_by_first = list(Journal(journal).load())
    assert 1 <= len(done_by_first) < len(ids) and len(done_by_first) >= done_while_waiting
    assert second.wait(timeout=120) == 0, log.read_text()[-2000:]
    lines = [json.loads(x) for x in journal.read_text().splitlines() if x.strip()]
    counts = pd.Series([entry["id"] for entry in lines]).value_counts()
    assert all(counts[i] == 1 for i in done_by_first), "the second copy redid finished items"
    assert set(read_status(layout.status("download", "s00000")).status) == {"ok"}


def test_a_stop_signal_is_logged_and_journalled_with_the_item_in_flight(results, http_server):
    layout, ids, command, journal = _download_job(results, http_server)
    job = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    _wait_for_lines(journal, 2, job)
    time.sleep(0.2)  # inside the third download
    job.send_signal(signal.SIGTERM)
    _, err = job.communicate(timeout=60)
    assert job.returncode == -signal.SIGTERM  # it died of the signal, as Snakemake expects
    last = json.loads(journal.read_text().splitlines()[-1])
    assert last["status"] == "interrupted" and last["reason"] == "stopped by SIGTERM"
    assert f"stopped by SIGTERM while processing {last['id']}" in err
    assert not layout.status("download", "s00000").exists()
    subprocess.run(command, check=True, capture_output=True)  # the interrupted item is redone
    status = read_status(layout.status("download", "s00000"))
    assert sorted(status.id) == ids and set(status.status) == {"ok"}
    assert "seconds" not in status.columns  # timings live beside the status
    timings = pd.read_parquet(timings_path(layout.status("download", "s00000")))
    assert sorted(timings.id) == ids and (timings.seconds > 0).all()
