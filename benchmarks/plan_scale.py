"""How long Snakemake needs to plan a large dataset: sharded workflow vs one job per video.

Generates an N-video URL list and its manifest, then times `snakemake -n all` on the real
workflow (one job per stage per shard) and, in the same run, on a naive Snakefile with one job
per stage per video, for the same stages (``vidmine.registry.STAGE_NAMES``). Prints wall time, peak
memory (RSS of the snakemake process) and ratios.

    .venv/bin/python benchmarks/plan_scale.py                 # 100k videos, shard_size 200
    .venv/bin/python benchmarks/plan_scale.py --videos 20000 --naive-videos 20000

Target (issue 2): the sharded plan of 100k videos in <= 10 s and <= 1 GiB.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "src"))

from vidmine.manifest import write_manifest  # noqa: E402
from vidmine.registry import STAGE_NAMES as STAGES  # noqa: E402
from vidmine.sources import read_urls  # noqa: E402


def naive_snakefile(stages: tuple[str, ...]) -> str:
    """One job per stage per video, chained like the real per-shard stages."""
    rules = [
        "import pyarrow.parquet as pq",
        'VIDEOS = pq.read_table(config["manifest"], columns=["video_id"])'
        '.column("video_id").to_pylist()',
        "rule all:",
        f'    input: expand("results/naive/{stages[-1]}/{{video}}.parquet", video=VIDEOS)',
    ]
    for previous, stage in zip((None, *stages[:-1]), stages, strict=True):
        rules += [f"rule {stage}:"]
        if previous:
            rules += [f'    input: "results/naive/{previous}/{{video}}.parquet"']
        rules += [
            f'    output: "results/naive/{stage}/{{video}}.parquet"',
            f'    shell: "vidmine-{stage} {{wildcards.video}} {{output}}"',
        ]
    return "\n".join(rules) + "\n"


MEASURE = (
    "import resource, subprocess, sys, time\n"
    "t = time.perf_counter()\n"
    "r = subprocess.run(sys.argv[1:], capture_output=True, text=True)\n"
    "dt = time.perf_counter() - t\n"
    "rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss\n"
    "jobs = [l.split()[1] for l in r.stdout.splitlines() if l.startswith('total ')]\n"
    "print(f'{dt} {rss} {r.returncode} {jobs[-1] if jobs else 0}')\n"
    "sys.stderr.write(r.stdout[-2000:] + r.stderr[-2000:] if r.returncode else '')\n"
)


def measure(command: list[str], cwd: Path) -> tuple[float, float, int]:
    """Wall seconds, peak RSS (MiB) and planned job count of a dry run, in a fresh child."""
    run = subprocess.run(
        [sys.executable, "-c", MEASURE, *command], cwd=cwd, capture_output=True, text=True
    )
    seconds, rss_kib, code, jobs = run.stdout.split()
    if code != "0":
        sys.exit(f"failed: {' '.join(command)}\n{run.stderr}")
    return float(seconds), int(rss_kib) / 1024, int(jobs)


def make_dataset(folder: Path, videos: int, shard_size: int) -> Path:
    urls = folder / "urls.txt"
    urls.write_text("".join(f"https://www.youtube.com/watch?v=v{i:010d}\n" for i in range(videos)))
    config = {
        "datasets": {
            "big": {"source": {"type": "urls", "path": str(urls)}, "shard_size": shard_size}
        }
    }
    (folder / "config.yaml").write_text(yaml.safe_dump(config))
    manifest = folder / "results" / "big" / "manifest.parquet"
    time.sleep(0.01)  # the manifest must be newer than its source file
    write_manifest(read_urls(urls), "urls", shard_size, manifest)
    return manifest


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--videos", type=int, default=100_000)
    parser.add_argument("--naive-videos", type=int, default=None, help="default: --videos")
    parser.add_argument("--shard-size", type=int, default=200)
    args = parser.parse_args()
    naive_videos = args.naive_videos or args.videos
    snakemake = [sys.executable, "-m", "snakemake", "all", "-n", "--cores", "1"]

    with tempfile.TemporaryDirectory(prefix="vidmine-plan-") as tmp:
        work = Path(tmp)
        manifest = make_dataset(work, args.videos, args.shard_size)
        sharded = measure(
            [
                *snakemake,
                "-s",
                str(REPO / "workflow" / "Snakefile"),
                "--configfile",
                str(work / "config.yaml"),
            ],
            work,
        )
        naive_dir = work / "naive"
        naive_dir.mkdir()
        naive_manifest = (
            manifest if naive_videos == args.videos else make_dataset(naive_dir, naive_videos, 1)
        )
        (naive_dir / "Snakefile").write_text(naive_snakefile(STAGES))
        naive = measure(
            [
                *snakemake,
                "-s",
                str(naive_dir / "Snakefile"),
                "--config",
                f"manifest={naive_manifest}",
            ],
            naive_dir,
        )

    met = sharded[0] <= 10 and sharded[1] <= 1024
    print(
        f"sharded workflow: {args.videos} videos, shard_size {args.shard_size}, {sharded[2]} jobs: "
        f"{sharded[0]:.1f} s, peak {sharded[1]:.0f} MiB "
        f"(target <= 10 s and <= 1024 MiB: {'met' if met else 'MISSED'})"
    )
    print(
        f"naive per-video:  {naive_videos} videos, {naive[2]} jobs: "
        f"{naive[0]:.1f} s, peak {naive[1]:.0f} MiB"
    )
    if naive_videos == args.videos:
        print(
            f"ratio naive/sharded: time {naive[0] / sharded[0]:.1f}x, "
            f"memory {naive[1] / sharded[1]:.1f}x"
        )
    else:
        print("ratio: run with equal --videos and --naive-videos for a like-for-like ratio")


if __name__ == "__main__":
    main()
