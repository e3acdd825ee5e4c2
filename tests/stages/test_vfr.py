"""Variable frame rate: the scene cut resamples a VFR source to constant rate, so a clip's frame
n is the source frame on screen at n / fps, and the blurred clip keeps exactly those times.

Measured on the clip below before the resampling: the private clip had frame 30 at 1.000 s (the
source's time), the blurred clip and the clip table at 2.233 s (constant rate), a drift of up to
1.85 s; after it, all three agree to the millisecond and match the source's clock."""

import subprocess

import numpy as np

from conftest import dataset_settings
from vidmine.frames import iter_frames
from vidmine.layout import DatasetLayout
from vidmine.probing import probe_video
from vidmine.stages.blur.stage import BlurStage
from vidmine.stages.scenecut.stage import SceneCutStage


def frame_times(path) -> np.ndarray:
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries", "packet=pts_time",
         "-of", "csv=p=0", str(path)],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    return np.sort([float(x) for x in out.split()])


def make_vfr(path) -> None:
    """120 frames, frame i of luma 16 + 1.5 i: 45 frames at 30 fps, then one every 0.1 s."""
    subprocess.run(
        ["ffmpeg", "-v", "error", "-y", "-f", "lavfi",
         "-i", "color=c=black:s=128x96:r=30:d=4,format=gray,geq=lum='16+N*1.5'",
         "-vf", "setpts='if(lt(N,45),N,45+(N-45)*3)/(30*TB)'", "-fps_mode", "passthrough",
         "-c:v", "libx264", "-crf", "0", "-pix_fmt", "yuv420p", str(path)],
        check=True,
    )  # fmt: skip


def test_a_vfr_source_keeps_its_timing_through_cut_and_blur(results, tmp_path):
    source = tmp_path / "vfr.mp4"
    make_vfr(source)
    facts = probe_video(source)
    assert facts["vfr"] and facts["n_frames"] == 120
    source_times = frame_times(source)
    source_means = [frame.mean() for frame in iter_frames(source)]  # each frame's own grey
    layout = DatasetLayout(results, "d")
    settings = dataset_settings(scenecut={"min_clip_seconds": 0.5, "keep_audio": False})
    item = {"id": "vfr", "video": str(source), **facts}
    cut = SceneCutStage(layout, "s00000", settings["scenecut"]).process(item)
    assert cut.status == "ok", cut.reason
    assert cut.fields["resampled_from_vfr"]
    blur = BlurStage(layout, "s00000", settings["blur"])
    for clip in cut.rows:
        private = layout.root / clip["path"]
        times = frame_times(private)
        fps = clip["fps"]
        assert len(times) == clip["n_frames"]
        np.testing.assert_allclose(times - times[0], np.arange(len(times)) / fps, atol=2e-3)
        # frame k shows the source frame on screen at the clip table's time of frame k
        # (the fps filter rounds to the nearest tick: on screen at t or half a tick later)
        for k, frame in enumerate(iter_frames(private)):
            t = clip["start_time"] + k / fps
            on_screen = {np.searchsorted(source_times, t + dt, side="right") - 1
                         for dt in (1e-4, 0.5 / fps)}  # fmt: skip
            error = min(abs(frame.mean() - source_means[j]) for j in on_screen)
            assert error <= 1.0, (k, t, on_screen, frame.mean())
        done = blur.process({"id": clip["clip_id"], "path": clip["path"], "fps": fps})
        assert done.status == "ok", done.reason
        blurred = frame_times(layout.root / done.outputs[0])
        np.testing.assert_allclose(blurred - blurred[0], times - times[0], atol=2e-3)
