"""Report items: bounded whatever the dataset's size (top rows with totals, an aggregated shot
plot), and the funnel from the status tables, on a small dataset and on one where every video
failed."""

from __future__ import annotations

import pandas as pd
from PIL import Image

from conftest import status_entry as entry
from vidmine.funnel import funnel_report, funnel_steps
from vidmine.io import write_table_atomic
from vidmine.layout import DatasetLayout
from vidmine.manifest import write_manifest
from vidmine.registry import STAGES
from vidmine.reporting import Section, html_table_page
from vidmine.runner import status_table
from vidmine.sources import SourceRecord
from vidmine.tables import CLIPS


def clip_row(video_id, index, shard="s00000", start=0, n_frames=50):
    return {
        "clip_id": f"{video_id}-c{index:03d}",
        "video_id": video_id,
        "shard": shard,
        "index": index,
        "start_frame": start,
        "end_frame": start + n_frames,
        "n_frames": n_frames,
        "start_time": start / 25,
        "end_time": (start + n_frames) / 25,
        "fps": 25.0,
        "width": 320,
        "height": 240,
        "has_audio": False,
        "path": f"private/clips/{video_id}/{index}.mp4",
    }


def test_tables_show_the_first_rows_the_total_and_where_the_rest_is(tmp_path):
    frame = pd.DataFrame({"clip_id": [f"c{i}" for i in range(120)], "n": range(120)})
    out = tmp_path / "page.html"
    html_table_page(
        "t",
        [Section("Clips", frame, "clips.parquet", limit=10), ("Few", frame[:3])],
        out,
        intro="failed: (caused by <HTTPError 404>)",
    )
    html = out.read_text()
    assert "c9<" in html and "c10<" not in html
    assert "(caused by &lt;HTTPError 404&gt;)" in html  # text, not a tag
    assert "10 of 120 rows shown; 110 more rows in clips.parquet" in html


def test_shot_plot_size_does_not_grow_with_the_videos(tmp_path):
    from vidmine.stages.scenecut.report import clip_summary, shot_plot

    sizes = []
    for videos in (5, 400):
        ids = [f"v{i:04d}" for i in range(videos)]
        shots = [[0, 40], [40, 100], [100, 160]]
        entries = [entry(v, "ok", shots=shots, dropped=[[100, 108, "short"]]) for v in ids]
        status = tmp_path / f"status{videos}.parquet"
        write_table_atomic(status_table(entries), status)
        clips = CLIPS.frame(
            [clip_row(v, i, start=s) for v in ids for i, (s, _) in enumerate(shots[:2])]
        )
        png = tmp_path / f"shots{videos}.png"
        shot_plot([status], clips, png)
        sizes.append(Image.open(png).size)
        html = tmp_path / f"clips{videos}.html"
        clip_summary(clips, html)
        assert html.stat().st_size < 60_000
    assert sizes[1][1] <= sizes[0][1] * 3 and sizes[1][1] < 2000  # bounded height


def small_dataset(results, every_video_fails=False):
    """Four videos in two shards, every registry stage's status tables: v0-v2 download, v3 a
    404; each downloaded video is cut into two clips, the filter drops one clip of v0, the
    audit drops one; every other stage passes on all it reads (registry's ``reads``)."""
    layout = DatasetLayout(results, "d")
    records = [SourceRecord(raw_id=f"v{i}", url=f"https://x.org/{i}.mp4") for i in range(4)]
    write_manifest(records, "urls", 2, layout.manifest)
    from vidmine.manifest import read_manifest

    manifest = read_manifest(layout.manifest)
    ok_videos = set() if every_video_fails else {"v0", "v1", "v2"}
    for shard, group in manifest.groupby("shard"):
        videos = list(group.video_id)
        clips = [f"{v}-c{i:03d}" for v in videos if v in ok_videos for i in range(2)]
        CLIPS.write(
            [clip_row(v, i, shard) for v in videos if v in ok_videos for i in range(2)],
            layout.table("clips", shard),
        )
        passed: dict[str, list[str]] = {}  # clip stage -> its ok clips
        for spec in STAGES:
            if spec.name == "download":
                entries = [
                    entry(v, "ok") if v in ok_videos else entry(v, "failed", "HTTP Error 404")
                    for v in videos
                ]
            elif spec.item == "video":
                entries = [entry(v, "ok") for v in videos if v in ok_videos]
            else:
                reads = [set(passed[name]) for name in spec.reads]
                entries = []
                for clip in [c for c in clips if all(c in r for r in reads)]:
                    if (
                        spec.name == "filter"
                        and clip.endswith("c001")
                        and clip.startswith(videos[0])
                    ):
                        entries.append(entry(clip, "dropped", "too dark"))
                    elif spec.name == "audit" and clip == "v2-c000":
                        entries.append(entry(clip, "dropped", "residual faces after re-blur"))
                    else:
                        entries.append(entry(clip, "ok"))
                passed[spec.name] = [e["id"] for e in entries if e["status"] == "ok"]
            write_table_atomic(status_table(entries), layout.status(spec.name, shard))
    return layout


def test_funnel_of_a_small_dataset(results, tmp_path):
    layout = small_dataset(results)
    steps = {s.stage or s.name: s for s in funnel_steps(layout)}
    assert (steps["listed"].passed, steps["download"].passed, steps["download"].failed) == (4, 3, 1)
    assert steps["clips cut"].passed == 6
    assert (steps["filter"].entered, steps["filter"].passed, steps["filter"].dropped) == (6, 4, 2)
    assert (steps["audit"].passed, steps["audit"].dropped) == (3, 1)
    assert (steps["detect"].passed, steps["crops"].passed) == (4, 3)
    assert not any(s.pending for s in steps.values())
    html, png = tmp_path / "funnel.html", tmp_path / "funnel.png"
    funnel_report(layout, html, png)
    text = html.read_text()
    assert "1 x failed: HTTP Error 404" in text and "2 x dropped: too dark" in text
    assert "4 videos listed, 3 downloaded, 3 clips released." in text
    assert "<td>vidmine</td>" in text  # the versions that built it
    assert Image.open(png).size[0] > 0


def test_funnel_of_a_dataset_where_every_video_failed(results, tmp_path):
    layout = small_dataset(results, every_video_fails=True)
    html, png = tmp_path / "funnel.html", tmp_path / "funnel.png"
    funnel_report(layout, html, png)
    text = html.read_text()
    assert "Nothing got past download: all 4 videos were lost there" in text
    assert "4 x failed: HTTP Error 404" in text
    assert png.stat().st_size > 0


def test_report_declarations_are_in_pipeline_order_with_labels():
    """Every report() of report.smk and lifter.smk (last) has a numbered subcategory (the
    report sorts them by name) and a label; the numbers follow the rules' order, which is the
    pipeline's."""
    import re
    from pathlib import Path

    workflow = Path(__file__).resolve().parent.parent / "workflow"
    text = "".join((workflow / "rules" / f).read_text() for f in ("report.smk", "lifter.smk"))
    blocks = re.findall(r"report\(\n(.*?)\n\s+\)", text, re.S)
    assert len(blocks) >= 14
    numbers = []
    for block in blocks:
        sub = re.search(r'subcategory="(\d+) [^"]+"', block)
        assert sub and 'labels={"item": ' in block, block
        numbers.append(int(sub.group(1)))
    assert numbers == sorted(numbers) and numbers[0] == 1
    assert 'report: "report/workflow.rst"' in (workflow / "Snakefile").read_text()


def test_workflow_description_renders_the_demo_config():
    """The landing page (workflow/report/workflow.rst) renders as Snakemake renders it: Jinja
    over the validated config, then reStructuredText."""
    from pathlib import Path

    import yaml
    from docutils.core import publish_parts
    from jinja2 import Environment

    from vidmine.config import validate_config

    repo = Path(__file__).resolve().parent.parent
    test_config = repo / ".test" / "config" / "config.yaml"
    config = validate_config(yaml.safe_load(test_config.read_text()))

    class Snakemake:
        pass

    Snakemake.config = config
    rst = (repo / "workflow" / "report" / "workflow.rst").read_text()
    html = publish_parts(Environment().from_string(rst).render(snakemake=Snakemake), writer="html")[
        "html_body"
    ]
    assert "<strong>demo</strong>" in html and "carphone, bikes, bigbuckbunny" in html
    assert "audit detectors mediapipe_full, mediapipe_short, mtcnn" in html
    assert "System Message" not in html  # no reStructuredText error


def test_track_label_is_white_on_a_dark_box_whatever_the_track_colour():
    import numpy as np

    from vidmine.stages.detect.report import COLOURS, draw_label

    for colour in COLOURS:
        frame = np.zeros((60, 120, 3), np.uint8)
        frame[:] = colour  # the worst case: footage the colour of the track's box
        draw_label(frame, "person 1", (0, 0), colour)
        box = frame[4:20, 4:60]
        assert (box.min(axis=-1) >= 200).any()  # white text
        assert (box.max(axis=-1) <= 40).sum() > box.shape[0] * box.shape[1] / 3  # dark box


def test_colour_wheel_reads_like_the_flow_pictures():
    import numpy as np

    from vidmine.stages.flow.report import colour_wheel, flow_to_color

    wheel = colour_wheel(65)
    right = flow_to_color(np.array([[[1.0, 0.0]]], np.float32), max_magnitude=1.0)[0, 0]
    down = flow_to_color(np.array([[[0.0, 1.0]]], np.float32), max_magnitude=1.0)[0, 0]
    assert np.abs(wheel[32, 63].astype(int) - right).max() <= 12  # right of the centre
    assert np.abs(wheel[63, 32].astype(int) - down).max() <= 12  # below it
    assert not wheel[0, 0].any() and not wheel[32, 32].any()  # outside the rim; no motion


def test_table_items_of_a_dataset_without_a_clip(tmp_path):
    """Every table-reading item builds from empty tables (every video failed)."""
    from vidmine.stages.audit.report import audit_summary
    from vidmine.stages.download.report import download_summary
    from vidmine.stages.filter.report import filter_scores, filter_summary
    from vidmine.stages.scenecut.report import clip_summary, shot_plot
    from vidmine.tables import AUDIT, DOWNLOAD_REPORT, FACES, SCORES

    status = tmp_path / "scenecut.parquet"
    write_table_atomic(status_table([]), status)
    download_summary(DOWNLOAD_REPORT.empty(), tmp_path / "download.html")
    clip_summary(CLIPS.empty(), tmp_path / "clips.html")
    shot_plot([status], CLIPS.empty(), tmp_path / "shots.png")
    filter_summary(SCORES.empty(), tmp_path / "filter.html")
    filter_scores(SCORES.empty(), {}, tmp_path / "scores.png")
    audit_summary(AUDIT.empty(), FACES.empty(), tmp_path / "audit.html")
    assert all(f.stat().st_size > 0 for f in tmp_path.iterdir())
