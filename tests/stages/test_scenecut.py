"""Scene cut on the demo's real videos: known cuts found, clips planned and cut frame-exactly."""

import cv2
import numpy as np

from vidmine.config import validate_config
from vidmine.layout import DatasetLayout
from vidmine.probing import probe_video
from vidmine.stages.scenecut.stage import SceneCutStage, detect_shots, plan_clips, split_long

BIKES_CUTS = [30, 76, 137, 187, 242]


def stage_settings(stage, **overrides):
    config = validate_config({"datasets": {"d": {"source": {"type": "demo"}, stage: overrides}}})
    return config["datasets"]["d"][stage]


def test_known_cuts_of_bikes_are_found(demo_videos):
    shots = detect_shots(demo_videos["bikes"], "adaptive", None, 15)
    assert [start for start, _ in shots[1:]] == BIKES_CUTS
    content = detect_shots(demo_videos["bikes"], "content", None, 15)
    assert [start for start, _ in content[1:]] == BIKES_CUTS


def test_plan_drops_short_and_splits_long():
    kept, dropped = plan_clips([(0, 30), (30, 250)], 250, 25.0, min_seconds=1.5, max_seconds=4.0)
    assert dropped == [((0, 30), "shorter than 1.5s (1.20s)")]
    assert kept == [(30, 103), (103, 177), (177, 250)]
    assert split_long((0, 10), 3) == [(0, 2), (2, 5), (5, 8), (8, 10)]


def test_plan_intersects_source_windows_and_handles_no_cut():
    # No cut found: the whole video is one shot, clipped to the source's windows.
    kept, _ = plan_clips([], 250, 25.0, 1.0, 600, windows=[(50, 100), (200, 300)])
    assert kept == [(50, 100), (200, 250)]
    kept, dropped = plan_clips([(0, 60), (60, 250)], 250, 25.0, 1.0, 600, windows=[(50, 100)])
    assert kept == [(60, 100)] and dropped == [((50, 60), "shorter than 1s (0.40s)")]


def test_plan_names_source_spans_beyond_the_video():
    kept, dropped = plan_clips([], 250, 25.0, 1.0, 600, windows=[(50, 100), (300, 400)])
    assert kept == [(50, 100)]
    assert dropped == [
        ((300, 400), "source span 12.00-16.00s starts after the video's end (10.00s)")
    ]


def read_frame(path, index):
    capture = cv2.VideoCapture(str(path))
    capture.set(cv2.CAP_PROP_POS_FRAMES, index)
    ok, frame = capture.read()
    capture.release()
    assert ok
    return frame.astype(np.float32)


def test_cuts_are_frame_exact(results, demo_videos):
    layout = DatasetLayout(results, "d")
    stage = SceneCutStage(layout, "s00000", stage_settings("scenecut", min_clip_seconds=1.0))
    item = {"id": "bikes", "video": str(demo_videos["bikes"]), "fps": 25.0, "n_frames": 250}
    result = stage.process(item)
    assert result.status == "ok", result.reason
    assert [(r["start_frame"], r["end_frame"]) for r in result.rows] == [
        (0, 30),
        (30, 76),
        (76, 137),
        (137, 187),
        (187, 242),
    ]
    assert result.fields["dropped"] == [[242, 250, "shorter than 1s (0.32s)"]]
    for row in result.rows:
        clip = layout.root / row["path"]
        assert probe_video(clip)["n_frames"] == row["n_frames"]
        first, last = read_frame(clip, 0), read_frame(clip, row["n_frames"] - 1)
        # The clip's first and last frames are the source's, not a neighbour across the cut.
        for clip_frame, index in ((first, row["start_frame"]), (last, row["end_frame"] - 1)):
            errors = {
                i: np.abs(clip_frame - read_frame(demo_videos["bikes"], i)).mean()
                for i in (index - 1, index, index + 1)
                if 0 <= i < 250
            }
            assert min(errors, key=errors.get) == index, (row["clip_id"], errors)


def test_a_video_whose_source_spans_lie_beyond_its_end_says_so(results, demo_videos):
    layout = DatasetLayout(results, "d")
    stage = SceneCutStage(layout, "s00000", stage_settings("scenecut", min_clip_seconds=1.0))
    item = {"id": "bikes", "video": str(demo_videos["bikes"]), "fps": 25.0, "n_frames": 250}
    result = stage.process({**item, "spans": [[20.0, 30.0]]})  # bikes is 10 s long
    assert result.status == "dropped"
    assert result.reason == "source span 20.00-30.00s starts after the video's end (10.00s)"
