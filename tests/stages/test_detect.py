"""Detection backends, ByteTrack tracking and the detect stage, without Snakemake."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile

import numpy as np
import pandas as pd
import pytest

from vidmine.errors import BackendUnavailable
from vidmine.frames import FFMPEG
from vidmine.layout import DatasetLayout
from vidmine.stages.detect.backends.detectron2 import instances_to_detections
from vidmine.stages.detect.backends.torchvision import people_to_detections
from vidmine.stages.detect.detections import Detections, make_detector, no_keypoints
from vidmine.stages.detect.stage import DetectStage, iter_sampled, sampled_frames
from vidmine.stages.detect.tracking import (
    ClipTracker,
    FrameDetections,
    TrackingSettings,
    encode_mask,
    track_rows,
)
from vidmine.tracks import TRACK_COLUMNS, decode_mask_png, keypoint_array, read_tracks
from vidmine.weights import sha256_from_file_name

# bikes.mp4: the walking man is in view from about frame 100 to 136 (scene cut at 137).
BIKES_MAN = (100, 137)


def cut(source, dest, start_frame, frames):
    """A short H.264 clip of ``frames`` frames from ``start_frame`` (frame-exact re-encode)."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [*FFMPEG, "-i", str(source), "-vf", f"select=gte(n\\,{start_frame})", "-frames:v",
         str(frames), "-c:v", "libx264", "-crf", "18", "-pix_fmt", "yuv420p", str(dest)],
        check=True,
    )  # fmt: skip
    return dest


def clip_item(layout, path, clip_id, n_frames, fps, width, height):
    return {
        "id": clip_id,
        "clip_id": clip_id,
        "video_id": clip_id.split("-")[0],
        "path": str(path.relative_to(layout.root)),
        "n_frames": n_frames,
        "fps": fps,
        "width": width,
        "height": height,
        "start_time": 0.0,
        "end_time": n_frames / fps,
    }


@pytest.fixture(scope="module")
def bikes_man_clip(tmp_path_factory, demo_videos):
    root = tmp_path_factory.mktemp("detect") / "results" / "demo"
    path = root / "private" / "clips" / "s00000" / "bikes-c900.mp4"
    cut(demo_videos["bikes"], path, BIKES_MAN[0], BIKES_MAN[1] - BIKES_MAN[0])
    layout = DatasetLayout(root.parent, "demo")
    return layout, clip_item(layout, path, "bikes-c900", 37, 25.0, 640, 272)


@pytest.fixture(scope="module")
def mediapipe_tracks(bikes_man_clip):
    layout, item = bikes_man_clip
    settings = {"backend": "mediapipe", "detect_fps": None, "tracking": {}}
    result = DetectStage(layout, "s00000", settings).process(item)
    assert result.status == "ok", result.reason
    return result, read_tracks(layout.root / result.outputs[0])


# --- the mediapipe backend -----------------------------------------------------------------


def test_pose_bundle_is_an_uncompressed_zip_of_both_models_with_metadata(tmp_path):
    from vidmine.stages.detect.backends.mediapipe import build_pose_bundle

    bundle = build_pose_bundle("full", cache=tmp_path)
    with zipfile.ZipFile(bundle) as archive:
        infos = {i.filename: i for i in archive.infolist()}
        assert set(infos) == {"pose_detector.tflite", "pose_landmarks_detector.tflite"}
        assert all(i.compress_type == zipfile.ZIP_STORED for i in infos.values())
        # TFLite metadata is stored under this buffer name once the writer populated it
        assert b"TFLITE_METADATA" in archive.read("pose_detector.tflite")
    assert build_pose_bundle("full", cache=tmp_path) == bundle  # cached, not rebuilt


def test_mediapipe_tracks_the_walking_man_with_one_id_and_an_upright_skeleton(mediapipe_tracks):
    result, tracks = mediapipe_tracks
    people = tracks[tracks.class_name == "person"]
    assert people.track_id.nunique() == 1  # one man, one id from his first frame to his last
    assert people.frame.max() - people.frame.min() >= 25
    assert result.fields["n_person_tracks"] == 1
    detected = people[~people.interpolated]
    points = keypoint_array(detected)
    names = {"nose": 0, "l_sh": 5, "r_sh": 6, "l_hip": 11, "r_hip": 12, "l_ank": 15, "r_ank": 16}
    y = {k: points[:, i, 1] for k, i in names.items()}
    # image y grows downwards: head above shoulders above hips above ankles, every frame
    assert (y["nose"] < np.minimum(y["l_sh"], y["r_sh"])).all()
    assert (np.maximum(y["l_sh"], y["r_sh"]) < np.minimum(y["l_hip"], y["r_hip"])).all()
    assert (np.maximum(y["l_hip"], y["r_hip"]) < np.minimum(y["l_ank"], y["r_ank"])).all()
    assert np.median(points[:, :, 2]) > 0.5


def test_mediapipe_keypoints_and_box_agree_with_the_separate_segmentation_mask(mediapipe_tracks):
    """The box is grown from the landmarks, so 'keypoints inside the box' alone would prove
    nothing; the segmentation mask comes from another head of the model and checks both."""
    _, tracks = mediapipe_tracks
    detected = tracks[~tracks.interpolated & tracks.mask_png.notna()]
    assert len(detected) >= 10
    inside_box, on_mask = [], []
    for row, points in zip(detected.itertuples(), keypoint_array(detected), strict=True):
        mask = decode_mask_png(row.mask_png)
        x0, y0 = int(np.floor(row.x1)), int(np.floor(row.y1))
        good = points[points[:, 2] > 0.5]
        xs, ys = good[:, 0], good[:, 1]
        inside_box.append(
            ((xs >= row.x1) & (xs <= row.x2) & (ys >= row.y1) & (ys <= row.y2)).mean()
        )
        cols = np.clip(xs.astype(int) - x0, 0, mask.shape[1] - 1)
        rows = np.clip(ys.astype(int) - y0, 0, mask.shape[0] - 1)
        # a joint is on the person if the mask is set within 4 px of it
        near = [
            mask[max(r - 4, 0) : r + 5, max(c - 4, 0) : c + 5].any()
            for r, c in zip(rows, cols, strict=True)
        ]
        on_mask.append(np.mean(near))
        assert mask.mean() > 0.15  # the person fills a good part of their own box
    assert np.mean(inside_box) > 0.99
    assert np.mean(on_mask) > 0.8


def test_detect_at_a_lower_rate_interpolates_the_frames_between(bikes_man_clip, tmp_path):
    layout, item = bikes_man_clip
    layout = DatasetLayout(layout.results, layout.dataset)
    settings = {"backend": "mediapipe", "detect_fps": 12.5, "tracking": {"min_track_seconds": 0.5}}
    stage = DetectStage(layout, "s00001", settings)
    result = stage.process(item)
    tracks = read_tracks(layout.root / result.outputs[0])
    assert result.fields["n_sampled"] == len(sampled_frames(37, 25.0, 12.5)) == 19
    assert set(tracks[~tracks.interpolated].frame) <= set(range(0, 37, 2))
    filled = tracks[tracks.interpolated]
    assert len(filled) > 0 and (filled.frame % 2 == 1).all() and (filled.score == 0).all()


# --- tracking on synthetic detections --------------------------------------------------------


def person(box, score=0.9):
    keypoints = np.zeros((1, 17, 3), np.float32)
    keypoints[0, :, 0] = (box[0] + box[2]) / 2
    keypoints[0, :, 1] = np.linspace(box[1], box[3], 17)
    keypoints[0, :, 2] = 0.9
    return Detections(
        np.array([box], np.float32),
        np.array([score], np.float32),
        np.array([1], np.int32),
        keypoints,
    )


def run_tracker(frames, fps=25.0, **settings):
    tracker = ClipTracker(TrackingSettings(**{"min_track_seconds": 0.2, **settings}), fps)
    for index, dets in frames:
        tracker.update(FrameDetections(index, dets))
    rows, kept = track_rows(tracker, "clip-c000", fps)
    return pd.DataFrame(rows, columns=TRACK_COLUMNS), kept


def test_two_walkers_keep_their_ids_and_objects_are_tracked_apart():
    frames = []
    for i in range(30):
        bike = Detections(
            np.array([[300 + i, 100, 360 + i, 140]], np.float32),
            np.array([0.8], np.float32),
            np.array([2], np.int32),
            no_keypoints(1),
        )
        frames.append(
            (i, Detections.concat([person([10 + 2 * i, 20, 60 + 2 * i, 160]),
                                   person([400 - 2 * i, 20, 450 - 2 * i, 160]), bike]))
        )  # fmt: skip
    tracks, _ = run_tracker(frames)
    assert tracks.track_id.nunique() == 3
    for _, rows in tracks.groupby("track_id"):
        assert rows.class_id.nunique() == 1
        x = rows.sort_values("frame").x1.to_numpy()
        assert np.all(np.abs(np.diff(x)) <= 2.01)  # no identity swap: each moves 1-2 px a frame
    assert tracks[tracks.class_name == "bicycle"].keypoints.isna().all()


def test_gaps_are_interpolated_linearly_and_long_gaps_are_not():
    frames = [(i, person([10 + i, 20, 60 + i, 160])) for i in range(0, 10)]
    frames += [(i, Detections.empty()) for i in range(10, 14)]  # 4 missed frames
    frames += [(i, person([10 + i, 20, 60 + i, 160])) for i in range(14, 24)]
    tracks, _ = run_tracker(frames, max_gap_seconds=0.2)  # 5 frames at 25 fps
    assert tracks.track_id.nunique() == 1
    filled = tracks[tracks.interpolated].set_index("frame")
    assert list(filled.index) == [10, 11, 12, 13]
    assert filled.loc[12, "x1"] == pytest.approx(22.0, abs=0.6)
    kp = np.asarray(filled.loc[12, "keypoints"]).reshape(17, 3)
    assert kp[0, 0] == pytest.approx((22 + 72) / 2, abs=0.6)
    short_gap_only, _ = run_tracker(frames, max_gap_seconds=0.1)
    assert not short_gap_only.interpolated.any()


def test_short_tracks_unmatched_boxes_and_empty_clips():
    flicker = [(0, person([10, 10, 50, 90])), (1, Detections.empty()), (2, Detections.empty())]
    tracks, kept = run_tracker(flicker)
    assert tracks.empty and kept == []  # a one-frame box never becomes a track (id -1)
    tracks, _ = run_tracker([(i, person([10, 10, 50, 90])) for i in range(4)], min_track_seconds=1)
    assert tracks.empty  # 4 frames at 25 fps are shorter than 1 s
    tracks, _ = run_tracker([(i, Detections.empty()) for i in range(20)])
    assert tracks.empty


def test_low_scores_never_start_a_track():
    tracks, _ = run_tracker([(i, person([10, 10, 50, 90], score=0.5)) for i in range(20)])
    assert tracks.empty  # below new_track_thresh 0.65 (TrackVerse's det_thresh)


def test_mask_png_round_trip_inside_the_integer_box():
    mask = np.zeros((50, 80), bool)
    mask[10:30, 20:45] = True
    data = encode_mask(mask, np.array([19.5, 9.2, 45.0, 30.7]))
    patch = decode_mask_png(data)
    assert patch.shape == (22, 26)  # rows 9..30, columns 19..44
    np.testing.assert_array_equal(patch, mask[9:31, 19:45])


def test_sampled_frames():
    assert sampled_frames(10, 25.0, None) == list(range(10))
    assert sampled_frames(50, 25.0, 12.5) == list(range(0, 50, 2))
    assert sampled_frames(30, 29.97, 16) == sorted(
        set(np.round(np.arange(16) * 29.97 / 16).astype(int))
    )


def test_iter_sampled_decodes_only_the_wanted_frames_in_order(demo_videos):
    got = [i for i, _ in iter_sampled(demo_videos["carphone"], [0, 5, 7, 40])]
    assert got == [0, 5, 7, 40]


# --- torchvision and detectron2 backends ----------------------------------------------------


def test_torchvision_backend_runs_end_to_end_with_untrained_weights(tmp_path, demo_videos):
    root = tmp_path / "results" / "demo"
    path = cut(
        demo_videos["carphone"], root / "private" / "clips" / "s00000" / "carphone-c900.mp4", 0, 8
    )
    layout = DatasetLayout(tmp_path / "results", "demo")
    settings = {
        "backend": "torchvision",
        "detect_fps": None,
        "batch_size": 4,
        "torchvision": {
            "person_weights": "none",
            "object_model": "fasterrcnn_mobilenet_v3_large_fpn",
            "object_weights": "none",
            "score_threshold": 0.0,
        },
        "tracking": {"min_track_seconds": 0.0, "new_track_thresh": 0.0, "track_thresh": 0.0},
    }
    stage = DetectStage(layout, "s00000", settings)
    result = stage.process(clip_item(layout, path, "carphone-c900", 8, 29.97, 176, 144))
    assert result.status == "ok", result.reason
    tracks = read_tracks(layout.root / result.outputs[0])
    assert list(tracks.columns) == TRACK_COLUMNS
    assert stage.timings["frames"] == 8 and stage.timings["model"] > 0
    people = tracks[tracks.class_id == 1]
    if len(people):  # random weights: whatever it finds must still be well-formed
        assert keypoint_array(people).shape[1:] == (17, 3)


def test_torchvision_box_detector_keeps_each_boxs_class_distribution(tmp_path):
    import torch

    from vidmine.formats.trackverse import track_record
    from vidmine.stages.detect.backends.torchvision import (
        build_model,
        objects_to_detections,
        record_class_scores,
    )
    from vidmine.tracks import COCO_CATEGORIES, write_tracks

    torch.manual_seed(0)
    model = build_model("fasterrcnn_mobilenet_v3_large_fpn", "none")
    model.roi_heads.score_thresh = 0.0  # untrained: every class near 1/91
    image = [torch.rand(3, 144, 176)]
    with torch.inference_mode():
        plain = model(image)[0]
        record_class_scores(model)
        output = model(image)[0]
    for key in ("boxes", "scores", "labels"):  # torchvision's own result unchanged
        assert torch.equal(plain[key], output[key])
    scores = model.roi_heads.class_scores[0]
    assert scores.shape == (len(output["boxes"]), 91) and len(scores) > 0
    assert torch.allclose(scores.sum(1), torch.ones(len(scores)))  # one softmax per proposal
    assert torch.equal(scores[torch.arange(len(scores)), output["labels"]], output["scores"])

    # a tracked box keeps its distribution into the track table and the TrackVerse record
    box = np.array([[10, 20, 90, 120]], np.float32)
    distribution = np.full((1, 91), 0.001, np.float32)
    distribution[0, [0, 3, 8]] = [0.02, 0.9, 0.05]
    dets = objects_to_detections(
        {"boxes": box, "scores": np.array([0.9], np.float32), "labels": np.array([3])},
        0.5,
        distribution,
    )
    frames = [(i, Detections.concat([person([10, 10, 50, 90]), dets])) for i in range(10)]
    tracks, _ = run_tracker(frames)
    write_tracks(tracks, tmp_path / "t.parquet")
    table = read_tracks(tmp_path / "t.parquet")
    cars, people = table[table.class_id == 3], table[table.class_id == 1]
    assert np.allclose(np.stack(cars.class_scores), distribution[0])
    assert people.class_scores.isna().all()  # keypoint R-CNN persons: no distribution
    record = track_record("vidZ", {"start_time": 0.0}, cars, (144, 176), COCO_CATEGORIES)
    assert record["top10_desc"][:2] == ["car", "truck"] and len(record["top10_lbl"]) == 10


def test_torchvision_keypoint_output_conversion():
    output = {
        "boxes": np.array([[0, 0, 10, 20], [5, 5, 9, 9]], np.float32),
        "scores": np.array([0.9, 0.3], np.float32),
        "labels": np.array([1, 1]),
        "keypoints": np.ones((2, 17, 3), np.float32),
        "keypoints_scores": np.zeros((2, 17), np.float32),
    }
    dets = people_to_detections(output, threshold=0.5)
    assert len(dets) == 1 and dets.keypoints.shape == (1, 17, 3)
    assert dets.keypoints[0, 0, 2] == pytest.approx(0.5)  # sigmoid of the heatmap logit 0
    assert (
        sha256_from_file_name(
            "https://download.pytorch.org/models/keypointrcnn_resnet50_fpn_coco-fc266e95.pth"
        )
        == "fc266e95"
    )


def test_missing_weights_stop_the_backend_with_one_line(tmp_path):
    settings = {
        "backend": "torchvision",
        "torchvision": {"person_weights": str(tmp_path / "x.pth")},
    }
    with pytest.raises(BackendUnavailable, match="x.pth: weights file not found"):
        make_detector(settings)


def test_detectron2_outputs_convert_to_coco_ids_and_its_absence_is_one_line():
    boxes = np.array([[0, 0, 10, 10], [1, 1, 5, 5], [2, 2, 8, 8]], np.float32)
    scores = np.array([0.95, 0.75, 0.6], np.float32)
    people = instances_to_detections(
        boxes, scores, np.array([0, 0, 0]), np.ones((3, 17, 3), np.float32), 0.7, True
    )
    assert len(people) == 2 and (people.class_ids == 1).all()  # 0.6 < VideoPose3D's 0.7
    objects = instances_to_detections(boxes, scores, np.array([0, 1, 11]), None, 0.5, False)
    assert objects.class_ids.tolist() == [2, 13]  # contiguous 1 -> bicycle, 11 -> stop sign
    assert np.isnan(objects.keypoints).all()
    try:
        import detectron2  # noqa: F401
    except ImportError:
        with pytest.raises(BackendUnavailable, match="detectron2.*install"):
            make_detector({"backend": "detectron2"})


def test_run_stage_with_a_missing_backend_fails_at_start_in_one_line(tmp_path):
    settings = json.dumps(
        {"backend": "torchvision", "torchvision": {"person_weights": "/no/w.pth"}}
    )
    run = subprocess.run(
        [sys.executable, "-m", "vidmine", "run-stage", "detect", "--dataset-dir",
         str(tmp_path / "demo"), "--shard", "s00000", "--settings", settings],
        capture_output=True, text=True,
    )  # fmt: skip
    assert run.returncode == 2
    assert run.stderr.strip().splitlines() == [
        "vidmine: detect backend 'torchvision': /no/w.pth: weights file not found"
    ]
    assert not (tmp_path / "demo" / "status").exists()
