"""Report items: bounded whatever the dataset's size (top rows with totals, an aggregated shot
plot), and the funnel from the status tables, on a small dataset and on one where every video
failed."""

from __future__ import annotations

import pandas as pd
from PIL import Image

from vidmine.io import write_table_atomic
from vidmine.reporting import Section, html_table_page
from vidmine.runner import status_table
from vidmine.tables import CLIPS


def entry(item_id, status, reason="", **fields):
    return {
        "id": item_id,
        "status": status,
        "reason": reason,
        "seconds": 1.0,
        "outputs": [],
        "settings_hash": "x",
        "fields": fields,
    }


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
        "t", [Section("Clips", frame, "clips.parquet", limit=10), ("Few", frame[:3])], out
    )
    html = out.read_text()
    assert "c9<" in html and "c10<" not in html
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
