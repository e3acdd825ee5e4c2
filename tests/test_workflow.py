"""The demo through Snakemake end to end with the local profile, in a scratch directory."""

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from conftest import DEMO_THROUGH_FILTER, REPO, TEST_CONFIG
from vidmine.runner import read_status

SNAKEMAKE = [
    sys.executable,
    "-m",
    "snakemake",
    "-s",
    str(REPO / "workflow" / "Snakefile"),
    "--configfile",
    str(TEST_CONFIG),
]
EXPECTED_CLIPS = [
    "bigbuckbunny-c000",
    "bigbuckbunny-c001",
    "bikes-c000",
    "bikes-c001",
    "bikes-c002",
    "bikes-c003",
    "bikes-c004",
    "carphone-c000",
    "carphone-c001",
]


def snakemake(workdir, *args, check=True):
    run = subprocess.run(
        [
            *SNAKEMAKE,
            "--directory",
            str(workdir),
            "--profile",
            str(REPO / "profiles" / "local"),
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=900,
    )
    if check and run.returncode != 0:
        pytest.fail(
            f"snakemake {' '.join(args)} failed:\n{run.stdout[-3000:]}\n{run.stderr[-5000:]}"
        )
    return run


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("demo")
    snakemake(workdir, "all")
    return workdir


@pytest.mark.slow
def test_two_clean_runs_give_byte_identical_dataset_files(demo_run, tmp_path):
    """Every file outside the documented non-reproducible set (logs, journals, timings, locks)
    is the same bytes in a second clean run: a dataset, or a rerun, can be checked by hash.
    (First of the demo_run tests: later ones rebuild exports and purge the private zone.)"""
    import hashlib

    from vidmine.layout import is_reproducible

    snakemake(tmp_path, "all")

    def digests(workdir):
        root = workdir / "results" / "demo"
        return {
            str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*"))
            if p.is_file() and is_reproducible(p.relative_to(root))
        }

    first, second = digests(demo_run), digests(tmp_path)
    assert sorted(first) == sorted(second)
    assert len(first) > 500  # the clips, tables, exports, model and report, not a few files
    differ = [name for name in first if first[name] != second[name]]
    assert not differ, f"{len(differ)} files differ: {differ[:20]}"


@pytest.mark.slow
def test_demo_produces_clips_status_tables_and_report(demo_run):
    root = demo_run / "results" / "demo"
    clips = pd.read_parquet(root / "clips.parquet")
    assert clips.clip_id.tolist() == EXPECTED_CLIPS
    assert clips.path.str.startswith("private/clips/").all()
    assert all((root / p).is_file() for p in clips.path)
    for stage in ("download", "probe", "scenecut"):
        tables = sorted((root / "status" / stage).glob("*.parquet"))
        assert [t.stem for t in tables] == ["s00000", "s00001"]
        assert set(pd.concat(map(read_status, tables)).status) == {"ok"}
    report = pd.read_parquet(root / "download_report.parquet")
    assert sorted(report.video_id) == ["bigbuckbunny", "bikes", "carphone"]
    items = [
        "download_summary.html",
        "clips.html",
        "shots.png",
        "filter.html",
        "filter_scores.png",
        "blur_examples.png",
        "audit.html",
    ]
    for item in items:
        assert (root / "report" / item).stat().st_size > 0


@pytest.mark.slow
def test_demo_drops_the_cartoon_and_releases_only_audited_blurred_clips(demo_run):
    root = demo_run / "results" / "demo"
    released = pd.read_parquet(root / "released_clips.parquet")
    assert released.clip_id.tolist() == [c for c in EXPECTED_CLIPS if not c.startswith("bigbuck")]
    assert released.path.str.startswith("clips/").all()
    assert all((root / p).is_file() for p in released.path)
    scores = pd.concat(map(pd.read_parquet, (root / "tables" / "scores").glob("*.parquet")))
    dropped = scores[scores.decision == "drop"]
    assert sorted(dropped.clip_id) == ["bigbuckbunny-c000", "bigbuckbunny-c001"]
    assert (dropped["flags"] == "cartoon").all()
    audit = pd.concat(map(pd.read_parquet, (root / "tables" / "audit").glob("*.parquet")))
    assert (audit.residual_frames_after == 0).all() and (audit.action != "dropped").all()
    faces = pd.concat(map(pd.read_parquet, (root / "tables" / "faces").glob("*.parquet")))
    assert (faces[faces.clip_id.str.startswith("carphone")].n_faces >= 1).all()
    assert "<td>0</td>" in (root / "report" / "audit.html").read_text()


@pytest.mark.slow
def test_demo_tracks_people_and_writes_trackverse_records_and_subsets(demo_run):
    from vidmine.formats.trackverse import RECORD_KEYS, read_jsonl_gzip

    root = demo_run / "results" / "demo"
    tracks = pd.read_parquet(root / "tracks.parquet")
    people = tracks[tracks.class_name == "person"]
    assert {"carphone", "bikes"} <= set(people.video_id)
    assert not tracks.clip_id.str.startswith("bigbuck").any()  # the filter dropped the cartoon
    assert (people.mean_keypoint_score > 0.3).all()
    index = read_jsonl_gzip(root / "trackverse" / "tracks_subsets" / "COCO-index.jsonl.gzip")
    assert len(index) == tracks.fn.notna().sum() >= 2
    assert all(tuple(record) == RECORD_KEYS for record in index)
    for name in ("1K-RND", "CB2", "VB1", "MinRed-CB2", "MaxQ90Motion-CB2"):
        subset = read_jsonl_gzip(root / "trackverse" / "tracks_subsets" / f"COCO-{name}.jsonl.gzip")
        assert 1 <= len(subset) <= (len(index) if name == "1K-RND" else 2)
        assert all(r in index for r in subset)
    for record in index:  # every record's visual metrics (tracks_motion/, tracks_embeddings/)
        npy = record["fn"].replace(".mp4", ".npy")
        for metric in ("motion", "embeddings"):
            assert (root / "trackverse" / f"tracks_{metric}" / "COCO" / npy).is_file()
    for item in ("track_examples.png", "track_lengths.png", "crops_flow.png"):
        assert (root / "report" / item).stat().st_size > 0


@pytest.mark.slow
def test_demo_crops_every_person_track_with_mask_and_flow(demo_run):
    from vidmine.formats.track_crops import load_track_crops
    from vidmine.formats.track_flow import load_flow

    root = demo_run / "results" / "demo"
    tracks = pd.read_parquet(root / "tracks.parquet")
    crops = pd.read_parquet(root / "crops.parquet")
    people = tracks[tracks.class_name == "person"]
    assert sorted(zip(crops.clip_id, crops.track_id, strict=True)) == sorted(
        zip(people.clip_id, people.track_id, strict=True)
    )
    for row in crops.itertuples():
        assert row.path.startswith("crops/") and row.has_mask
        track = load_track_crops(root / row.path)
        flow, frames = load_flow(root / row.flow_path)
        assert track.crops.shape[1:] == (128, 128, 3) and track.masks is not None
        assert flow.shape == (len(track), 128, 128, 2) and (frames == track.frames).all()


@pytest.mark.slow
def test_demo_exports_load_with_the_format_readers(demo_run):
    from vidmine.formats.hmmr import read_hmmr_tfrecord
    from vidmine.formats.videopose3d import read_custom_2d, read_detectron_clip
    from vidmine.formats.vpd import read_vpd_pose

    export = demo_run / "results" / "demo" / "export"
    entries = read_custom_2d(export / "data_2d_custom_demo.npz")
    assert sorted(e.name for e in entries) == [
        "bikes-c002-t001",
        "carphone-c000-t001",
        "carphone-c001-t001",
    ]
    assert all(e.keypoints.shape[1:] == (17, 2) for e in entries)
    assert len(list((export / "detectron").glob("*.npz"))) == 3
    read_detectron_clip(next((export / "detectron").glob("*.npz")))
    records = [
        r for f in (export / "hmmr" / "train").glob("*.tfrecord") for r in read_hmmr_tfrecord(f)
    ]
    # the demo config asks for no phis (offline): 300 crops for HMMR's --precomputed_phi=False;
    # the 33-frame bikes track is under HMMR's 40-frame minimum
    assert sorted(int(r["meta/N"][0]) for r in records) == [59, 59]
    assert all("image/phis" not in r and r["image/heightwidths"][0] == 300 for r in records)
    log = (demo_run / "results" / "demo" / "logs" / "export" / "hmmr.log").read_text()
    assert "bikes-c002-t001: 33 frames, fewer than 40" in log
    assert len(list((export / "vpd" / "pose").iterdir())) == 3
    read_vpd_pose(next((export / "vpd" / "pose").iterdir()))
    tv = export / "trackverse"
    assert (tv / "tracks_subsets" / "COCO-CB2-0K-T0.0.jsonl.gzip").exists()  # curate_db.py's
    assert (tv / "tracks_subsets" / "COCO-MaxQ90Motion-CB2-0K.jsonl.gzip").exists()
    for metric in ("motion", "embeddings"):
        assert len(list((tv / f"tracks_{metric}" / "COCO").rglob("*.npy"))) >= 2
    index = pd.read_parquet(export / "index.parquet")
    assert len(index) == 3 and index.config_hash.nunique() == 1


@pytest.mark.slow
def test_each_export_builds_on_its_own(demo_run):
    import shutil

    export = demo_run / "results" / "demo" / "export"
    shutil.rmtree(export)
    snakemake(demo_run, "results/demo/export/vpd")
    assert [p.name for p in export.iterdir()] == ["vpd"]
    snakemake(demo_run, "all")  # and the rest comes back


@pytest.mark.slow
def test_demo_trains_and_evaluates_the_lifter(demo_run):
    import json

    lifter = demo_run / "results" / "demo" / "lifter"
    metrics = json.loads((lifter / "metrics.json").read_text())
    assert metrics["overall"]["mpjpe"] < 150  # untrained: about 400 mm
    assert (lifter / "metrics.png").stat().st_size > 0 and (lifter / "model.pt").exists()
    lifted = sorted((lifter / "lifted").glob("*.npz"))
    assert [p.stem for p in lifted] == [
        "bikes-c002-t001",
        "carphone-c000-t001",
        "carphone-c001-t001",
    ]
    import numpy as np

    with np.load(lifted[0]) as data:
        assert data["poses_3d"].shape == (33, 17, 3) and np.isfinite(data["poses_3d"]).all()
        assert data["segments"].tolist() == [[0, 33]] and data["confidence"].shape == (33,)
        assert 0 < data["confidence"].min() <= data["confidence"].max() <= 1
    assert (demo_run / "results" / "demo" / "report" / "lifted_track.gif").stat().st_size > 0


@pytest.mark.slow
def test_rerun_does_nothing_and_status_command_counts(demo_run):
    run = snakemake(demo_run, "all")
    assert "Nothing to be done" in run.stdout + run.stderr
    status = subprocess.run(
        [sys.executable, "-m", "vidmine", "status", "demo", "--results", str(demo_run / "results")],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    lines = {line.split()[0]: line.split()[1:] for line in status.splitlines()[2:]}
    assert lines["download"][:4] == ["3", "0", "0", "0"]
    assert lines["scenecut"][:4] == ["3", "0", "0", "0"]
    assert lines["filter"][:4] == ["7", "0", "2", "0"]  # clips from here on
    assert lines["blur"][:4] == ["7", "0", "0", "0"]
    assert lines["audit"][:4] == ["7", "0", "0", "0"]


@pytest.mark.slow
def test_snakemake_report_builds(demo_run):
    snakemake(demo_run, "--report", "report.html")
    html = (demo_run / "report.html").read_text(errors="replace")
    assert "shots.png" in html and "download_summary.html" in html and "metrics.png" in html
    assert "funnel.png" in html and "1 Funnel" in html and "7 Crops and flow" in html
    assert "Datasets and their settings" in html  # the landing page (workflow/report/workflow.rst)


@pytest.mark.slow
def test_purge_deletes_private_pixels_and_keeps_released_clips(demo_run, tmp_path):
    import shutil

    copy = tmp_path / "results"
    shutil.copytree(demo_run / "results", copy)
    command = [sys.executable, "-m", "vidmine", "purge", "demo", "--results", str(copy)]
    assert subprocess.run(command, capture_output=True).returncode == 1  # asks for --yes
    subprocess.run([*command, "--yes"], check=True, capture_output=True)
    root = copy / "demo"
    assert not (root / "private").exists() and not (root / "work" / "blurred").exists()
    released = pd.read_parquet(root / "released_clips.parquet")
    assert all((root / p).stat().st_size > 0 for p in released.path)


@pytest.mark.slow
def test_report_items_build_without_the_private_zone(demo_run):
    """No report item reads private/ or work/blurred/: with both out of reach every report rule
    runs again and succeeds."""
    from vidmine.registry import REPORT_ITEMS

    root = demo_run / "results" / "demo"
    hidden = [(root / name, demo_run / f"hidden-{i}") for i, name in enumerate(("private", "work"))]
    report_rules = [f"report_{s}" for s in ("download", "scenecut", "filter", "blur", "audit")]
    report_rules += ["report_detect", "report_flow", "report_funnel"]
    items = [*REPORT_ITEMS, "funnel.html", "funnel.png"]
    targets = [f"results/demo/report/{item}" for item in items]
    try:
        for folder, away in hidden:
            folder.rename(away)
        run = snakemake(
            demo_run, *targets, "--forcerun", *report_rules, "--rerun-triggers", "mtime"
        )
        assert run.stdout.count("Finished job") + run.stderr.count("Finished job") >= 8
    finally:
        for folder, away in hidden:
            away.rename(folder)
    assert all((root / "report" / item).stat().st_size > 0 for item in items)


@pytest.mark.slow
def test_aim_at_one_dataset_file(tmp_path):
    snakemake(tmp_path, "results/demo/download_report.parquet")
    root = tmp_path / "results" / "demo"
    assert (root / "download_report.parquet").exists()
    assert not (root / "status" / "scenecut").exists()  # only what that file needs ran


def test_bad_config_stops_with_one_line(tmp_path):
    run = snakemake(tmp_path, "-n", "all", "--config", "retry_failed=maybe", check=False)
    assert run.returncode != 0
    lines = [line for line in (run.stdout + run.stderr).splitlines() if "vidmine:" in line]
    assert lines == ["vidmine: config key retry_failed: 'maybe' is not of type 'boolean'"]


@pytest.mark.slow
def test_a_dataset_where_every_video_fails_yields_every_file_and_the_report(tmp_path, http_server):
    """404s, a refused port, a file URL outside the roots and a bad row: nothing downloads,
    yet every dataset file, export and report item is made (empty), and --report builds."""
    from vidmine.registry import REPORT_ITEMS

    (tmp_path / "list.csv").write_text(
        f"url\n{http_server}/missing.mp4\nhttp://127.0.0.1:1/x.mp4\nfile:///etc/hostname\n,\n"
    )
    config = tmp_path / "dead.yaml"
    config.write_text(
        "datasets:\n  dead:\n    source: {type: urls, path: list.csv}\n    shard_size: 2\n"
        "    download: {allow_file_urls: true, file_url_roots: [.], retries: 0}\n"
    )
    snakemake(tmp_path, "all", "--configfile", str(config))
    root = tmp_path / "results" / "dead"
    status = read_status(root / "status" / "download" / "s00000.parquet")
    assert set(status.status) == {"failed"} and status.reason.str.len().min() > 0
    assert len(pd.read_parquet(root / "rejected_rows.parquet")) == 1  # the empty row
    for name in ("clips", "released_clips", "tracks", "crops", "download_report"):
        assert (root / f"{name}.parquet").is_file(), name
    assert pd.read_parquet(root / "released_clips.parquet").empty
    assert (root / "export" / "index.parquet").is_file()
    assert all((root / "report" / item).stat().st_size > 0 for item in REPORT_ITEMS)
    assert (
        "Nothing got past download: all 3 videos" in (root / "report" / "funnel.html").read_text()
    )
    report = snakemake(tmp_path, "--configfile", str(config), "--report", str(tmp_path / "r.html"))
    assert report.returncode == 0 and (tmp_path / "r.html").stat().st_size > 0


def test_gpu_backends_plan_once_the_manifest_exists(tmp_path):
    """Torchvision detection and RAFT flow between CPU stages: the shard groups must not wrap
    each other, or Snakemake refuses every run after the first (the manifest is a checkpoint,
    so the whole plan is only checked once it exists)."""
    import yaml

    config = yaml.safe_load(TEST_CONFIG.read_text())
    config["datasets"]["demo"].update(
        detect={"backend": "torchvision"}, flow={"backend": "raft"}, lifter={"enabled": False}
    )
    path = tmp_path / "gpu.yaml"
    path.write_text(yaml.safe_dump(config))
    snakemake(tmp_path, "results/demo/manifest.parquet", "--configfile", str(path))
    plan = snakemake(tmp_path, "-n", "all", "--configfile", str(path), check=False)
    assert plan.returncode == 0, (plan.stdout + plan.stderr)[-3000:]
    assert "detect_torchvision" in plan.stdout and "flow_raft" in plan.stdout


def test_missing_source_file_stops_the_run_before_any_job(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text("datasets:\n  k:\n    source: {type: urls, path: lists/gone.csv}\n")
    run = snakemake(tmp_path, "-n", "all", "--configfile", str(config), check=False)
    assert run.returncode != 0
    lines = [line for line in (run.stdout + run.stderr).splitlines() if "vidmine:" in line]
    assert lines == ["vidmine: dataset k: source.path: no such file: lists/gone.csv"]


def test_workflow_lint_is_clean():
    run = subprocess.run([*SNAKEMAKE, "--lint"], capture_output=True, text=True, cwd=REPO)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "Congratulations" in run.stdout + run.stderr


def test_trained_filter_scorers_run_in_the_torch_env(tmp_path):
    """A dataset with a trained cartoon or aesthetic scorer gets the filter rule with torch."""
    import yaml

    config = yaml.safe_load(TEST_CONFIG.read_text())
    demo = config["datasets"]["demo"]
    demo["filter"] = {"aesthetic": {"backend": "clip_linear", "head_weights": "head.pth"}}
    path = tmp_path / "trained.yaml"
    path.write_text(yaml.safe_dump(config))
    plan = {}
    for name, configfile in (("default", TEST_CONFIG), ("trained", path)):
        target = "results/demo/tables/scores/s00000.parquet"  # shard jobs follow a checkpoint
        run = snakemake(tmp_path, "-n", target, "--configfile", str(configfile))
        plan[name] = run.stdout + run.stderr
    assert "rule filter:" in plan["default"] and "filter_torch" not in plan["default"]
    assert "rule filter_torch:" in plan["trained"] and "rule filter:" not in plan["trained"]


def test_lifter_rules_declare_the_human36m_files_they_read(tmp_path):
    """With Human3.6M as the lifter's data, training and evaluation list its three files as
    inputs, so a missing one stops the plan naming it (and an edited one retrains)."""
    import yaml

    config = yaml.safe_load(TEST_CONFIG.read_text())
    lifter = config["datasets"]["demo"]["lifter"]
    lifter.update(data="h36m", h36m_dir=str(tmp_path / "h36m"), h36m_cameras="cams.json")
    path = tmp_path / "h36m.yaml"
    path.write_text(yaml.safe_dump(config))
    run = snakemake(
        tmp_path, "-n", "results/demo/lifter/model.pt", "--configfile", str(path), check=False
    )
    assert run.returncode != 0
    out = run.stdout + run.stderr
    assert "MissingInputException" in out and "data_3d_h36m.npz" in out
    assert "data_2d_h36m_cpn_ft_h36m_dbb.npz" in out and "cams.json" in out


@pytest.mark.slow
def test_readme_own_videos_steps_release_a_dataset(tmp_path):
    """README's "Your own videos in five steps", as a newcomer runs them: its config block
    (aimed at a folder of real videos), check-config, then the run command with
    --replace-workflow-config: the dataset is released and the demo does not come along."""
    import re
    import shutil
    import textwrap

    import pandas as pd
    import yaml

    from vidmine.sources import demo_video_paths

    readme = (REPO / "README.md").read_text()
    section = readme.split("## Your own videos in five steps", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```yaml\n(.*?)```", section, re.S)[1]
    config = yaml.safe_load(textwrap.dedent(block))
    videos = tmp_path / "my_videos"
    (videos / "street").mkdir(parents=True)
    paths = demo_video_paths()
    shutil.copy(paths["bikes"], videos / "street" / "bikes.mp4")
    shutil.copy(paths["carphone"], videos / "carphone.mp4")
    config["datasets"]["my_videos"]["source"]["path"] = str(videos)
    path = tmp_path / "my_videos.yaml"
    path.write_text(yaml.safe_dump(config))
    vidmine = [sys.executable, "-m", "vidmine"]
    check = subprocess.run([*vidmine, "check-config", str(path)], capture_output=True, text=True)
    assert check.returncode == 0, check.stderr
    for command in ("vidmine check-config my_videos.yaml", "--replace-workflow-config all"):
        assert command in section.replace("\n   ", " ").replace(".venv/bin/", ""), command
    run = subprocess.run(
        [*SNAKEMAKE[:5], "--directory", str(tmp_path), "--profile",
         str(REPO / "profiles" / "local"), "--configfile", str(path),
         "--replace-workflow-config", "all"],
        capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    released = pd.read_parquet(tmp_path / "results" / "my_videos" / "released_clips.parquet")
    videos = sorted(set(released.video_id))  # ids from the relative path, made file-safe
    assert len(released) >= 5 and videos[0] == "carphone" and videos[1].startswith("street_bikes")
    assert not (tmp_path / "results" / "demo").exists()
    status = subprocess.run(
        [*vidmine, "status", "my_videos"], cwd=tmp_path, capture_output=True, text=True
    )
    assert status.returncode == 0 and "audit" in status.stdout


@pytest.mark.slow
def test_lift_tracks_lifts_with_the_configured_model(demo_run, tmp_path):
    """A published model: lift_tracks runs without training or evaluating; a checkpoint path:
    declared as the rule's input, so a missing file stops the plan naming it."""
    import yaml

    config = yaml.safe_load(TEST_CONFIG.read_text())
    lifter = config["datasets"]["demo"]["lifter"]
    target = ["-n", "-p", "results/demo/lifter/lifted", "--forcerun", "lift_tracks"]
    for spec in ("videopose3d_coco", str(tmp_path / "epoch_80.bin")):
        lifter["lift_model"] = spec
        path = tmp_path / "lift.yaml"
        path.write_text(yaml.safe_dump(config))
        run = snakemake(demo_run, *target, "--configfile", str(path), check=False)
        out = run.stdout + run.stderr
        if spec == "videopose3d_coco":
            assert run.returncode == 0, out[-2000:]
            assert "vidmine lifter lift --model videopose3d_coco --render 1 --max-gap 12" in out
            assert "train_lifter" not in out and "evaluate_lifter" not in out
        else:
            assert run.returncode != 0 and "MissingInputException" in out and spec in out


def _videopose3d_frames(path):
    """The frames of a video as VideoPose3D's ``common/visualization.py:read_video`` decodes
    them: ffmpeg to raw BGR with ``-vsync 0`` (every decoded frame, in order)."""
    import json

    import numpy as np

    probe = subprocess.run(
        ["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries",
         "stream=width,height", "-of", "json", str(path)],
        capture_output=True, check=True, text=True,
    )  # fmt: skip
    stream = json.loads(probe.stdout)["streams"][0]
    w, h = int(stream["width"]), int(stream["height"])
    raw = subprocess.run(
        ["ffmpeg", "-v", "error", "-i", str(path), "-f", "image2pipe", "-pix_fmt", "bgr24",
         "-vsync", "0", "-vcodec", "rawvideo", "-"],
        capture_output=True, check=True,
    ).stdout  # fmt: skip
    return np.frombuffer(raw, np.uint8).reshape(-1, h, w, 3).astype(np.int16)


@pytest.mark.slow
def test_videopose3d_sequences_are_drawn_on_their_person_in_their_video(demo_run):
    """What ``run.py -d custom -k demo --render --viz-subject <name> --viz-video <video>`` gets.

    run.py loads ``positions_2d`` / ``metadata`` (``np.load(allow_pickle=True)``), normalises
    each sequence with ``normalize_screen_coordinates`` (x / w * 2 - [1, h / w]) and pairs
    keypoint row i with frame i of ``--viz-video``. So each sequence must have a video in the
    export with exactly its frames (the bikes walker starts at clip frame 28), and every
    keypoint must be in the image (carphone's driver has legs far below the 144-pixel frame).
    """
    import numpy as np

    from vidmine.tracks import keypoint_array, read_tracks

    root = demo_run / "results" / "demo"
    export = root / "export"
    with np.load(export / "data_2d_custom_demo.npz", allow_pickle=True) as npz:
        positions = npz["positions_2d"].item()
        videos = npz["metadata"].item()["video_metadata"]
        scores = npz["scores_2d"].item()
    released = pd.read_parquet(root / "released_clips.parquet").set_index("clip_id")
    tracks = pd.read_parquet(root / "tracks.parquet")
    starts = []
    for name, actions in positions.items():
        (kp,) = actions["custom"]
        meta = videos[name]
        w, h = meta["w"], meta["h"]
        assert kp.dtype == np.float32 and kp.shape[1:] == (17, 2)
        assert scores[name]["custom"][0].shape == kp.shape[:2]
        normed = kp / w * 2 - [1, h / w]  # VideoPose3D's normalize_screen_coordinates
        assert np.abs(normed[..., 0]).max() <= 1 and np.abs(normed[..., 1]).max() <= h / w
        frames = _videopose3d_frames(export / "videopose3d_videos" / meta["video"])
        assert len(frames) == len(kp), name
        clip_id, track_id = name.rsplit("-t", 1)
        clip = _videopose3d_frames(root / released.loc[clip_id, "path"])
        first = meta["first_frame"]
        starts.append(first)
        for i in (0, len(kp) // 2, len(kp) - 1):  # frame i of the video is clip frame first+i
            diffs = [np.abs(frames[i] - clip[j]).mean() for j in range(len(clip))]
            assert int(np.argmin(diffs)) == first + i, (name, i)
        summary = tracks[(tracks.clip_id == clip_id) & (tracks.track_id == int(track_id))]
        table = read_tracks(root / summary.path.iloc[0])
        rows = table[table.track_id == int(track_id)].set_index("frame")
        trusted = scores[name]["custom"][0] >= 0.3
        for i in range(len(kp)):  # trusted keypoints lie on the person's box of that frame
            if first + i not in rows.index:
                continue
            row = rows.loc[first + i]
            pad = 0.1 * max(row.x2 - row.x1, row.y2 - row.y1)
            x, y = kp[i, trusted[i], 0], kp[i, trusted[i], 1]
            assert ((x >= row.x1 - pad) & (x <= row.x2 + pad)).all(), (name, i)
            assert ((y >= row.y1 - pad) & (y <= row.y2 + pad)).all(), (name, i)
        detected = keypoint_array(rows.reset_index())
        assert (detected[..., 1] > h).any() or name.startswith("bikes")  # the defect is real
    assert sorted(starts) == [1, 1, 28]


@pytest.mark.slow
def test_vpd_keeps_the_clearly_visible_drivers_at_its_default_gate(demo_run):
    """VPD's teacher gate: ``apply_vipe_model.py`` takes ``np.mean(kp[:, 2])`` of each pose in
    ``coco_keypoints.json.gz`` as ``kp_score`` and ``vpd_dataset/single_frame.py`` drops the
    frame below ``DEFAULT_MIN_POSE_SCORE`` = 0.5. Carphone's driver is seen from the chest up
    (BlazePose gives the legs about 0), yet is a clearly detected person."""
    import gzip
    import json

    import numpy as np

    pose = demo_run / "results" / "demo" / "export" / "vpd" / "pose"
    for folder in sorted(pose.iterdir()):
        with gzip.open(folder / "coco_keypoints.json.gz", "rt", encoding="ascii") as fh:
            frames = json.load(fh)
        kept = [
            np.mean(np.array(kp, np.float32)[:, 2]) >= 0.5 for _, ps in frames for _, _, kp in ps
        ]
        assert np.mean(kept) > 0.9, folder.name
        points = np.array([kp for _, ps in frames for _, _, kp in ps], np.float32)
        assert points[..., 1].max() <= 143 or folder.name.startswith("bikes")


VIDEOPOSE3D_GIT = Path(
    os.environ.get("VIDMINE_VIDEOPOSE3D_GIT", "/work/.mirror/facebookresearch+VideoPose3D/repo")
)


@pytest.mark.slow
@pytest.mark.skipif(
    not VIDEOPOSE3D_GIT.is_dir(), reason="no VideoPose3D git repository (VIDMINE_VIDEOPOSE3D_GIT)"
)
def test_videopose3d_run_py_renders_each_demo_sequence_on_its_video(demo_run, tmp_path):
    """The user's command, VideoPose3D's own code: ``run.py -d custom -k demo --render
    --viz-video`` on each exported sequence and its video (a checkpoint of random weights
    written by VideoPose3D's own TemporalModel, so only the loading and drawing are tested)."""
    import shutil

    code = tmp_path / "VideoPose3D"
    code.mkdir()
    archive = subprocess.run(
        ["git", f"--git-dir={VIDEOPOSE3D_GIT}", "archive", "HEAD"], check=True, capture_output=True
    ).stdout
    subprocess.run(["tar", "x", "-C", str(code)], input=archive, check=True)
    export = demo_run / "results" / "demo" / "export"
    shutil.copy(export / "data_2d_custom_demo.npz", code / "data")
    (code / "checkpoint").mkdir()
    write = (
        "import torch; from common.model import TemporalModel; torch.manual_seed(0);"
        " m = TemporalModel(17, 2, 17, [3, 3, 3], channels=64);"
        " torch.save({'epoch': 1, 'lr': 1e-3, 'model_pos': m.state_dict()}, 'checkpoint/r.bin')"
    )
    subprocess.run([sys.executable, "-c", write], cwd=code, check=True)
    for video in sorted((export / "videopose3d_videos").glob("*.mp4")):
        out = tmp_path / f"{video.stem}.mp4"
        subprocess.run(
            [sys.executable, "run.py", "-d", "custom", "-k", "demo", "-arc", "3,3,3", "-ch", "64",
             "-c", "checkpoint", "--evaluate", "r.bin", "--render", "--viz-subject", video.stem,
             "--viz-action", "custom", "--viz-camera", "0", "--viz-video", str(video),
             "--viz-output", str(out), "--viz-size", "2"],
            cwd=code, check=True, capture_output=True,
        )  # fmt: skip
        assert len(_videopose3d_frames(out)) == len(_videopose3d_frames(video))


def _stage_jobs(workdir):
    """pids of ``vidmine run-stage`` processes working in ``workdir``."""
    pids = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().split(b"\0")
            cwd = os.readlink(proc / "cwd")
        except OSError:
            continue
        if b"run-stage" in cmdline and cwd == str(workdir):
            pids.append(int(proc.name))
    return pids


@pytest.mark.slow
def test_a_rerun_after_killing_snakemake_alone_never_runs_a_second_copy(tmp_path):
    """Snakemake killed alone leaves its running job behind; ``--unlock`` and
    ``--rerun-incomplete`` at once start the same job again. The shard lock makes the new copy
    wait for the old one and then reuse its items: no item is processed twice."""
    import json
    import signal
    import time

    workdir = tmp_path / "run"
    workdir.mkdir()
    command = [*SNAKEMAKE, "--directory", str(workdir), "--profile", str(REPO / "profiles/local")]
    first = subprocess.Popen(
        [*command, "all"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 300
    while not (orphans := _stage_jobs(workdir)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert orphans, "no stage job started"
    os.kill(first.pid, signal.SIGKILL)
    first.wait()
    assert _stage_jobs(workdir), "the job should outlive its Snakemake"
    snakemake(workdir, "--unlock")
    # the killed job is the first stage job (download / probe); the rerun finishes the shard
    # stages up to the filter, past it, and not the rest of the demo, which it does not touch
    snakemake(workdir, *DEMO_THROUGH_FILTER, "--rerun-incomplete")
    journals = list((workdir / "results" / "demo" / "status").rglob("*.journal.jsonl"))
    assert journals
    for journal in journals:
        entries = [json.loads(x) for x in journal.read_text().splitlines() if x.strip()]
        done = [e["id"] for e in entries if e["status"] != "interrupted"]
        assert len(done) == len(set(done)), f"{journal}: an item was processed twice"
