"""Shared fixtures: demo videos, a local HTTP server, and the venv's commands on PATH."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from vidmine.sources import demo_video_paths

REPO = Path(__file__).resolve().parent.parent
# The tests' own config (the workflow catalogue's .test/ convention), never the user's
# config/config.yaml: it holds the embedded demo as the tests expect it.
TEST_CONFIG = REPO / ".test" / "config" / "config.yaml"
# the demo's two shards through the filter: the shard stages a scenario that kills or requeues
# their first jobs needs, without the rest of the demo
DEMO_THROUGH_FILTER = tuple(f"results/demo/status/filter/s0000{i}.parquet" for i in range(2))
# Tests run `vidmine` and `snakemake` as subprocesses: use the ones of this interpreter.
os.environ["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), os.environ["PATH"]])


@pytest.fixture(scope="session")
def demo_videos() -> dict[str, Path]:
    return demo_video_paths()


class VideoServer(BaseHTTPRequestHandler):
    """Routes: /video/<name>.mp4 (ok), /slow/<name>.mp4 (trickles), /missing.mp4 (404),
    /stall.mp4 (never answers within the client's timeout), /page.html (HTML, no video), and
    the failures seen at scale, each keyed by the file name so a test can count its requests:
    /cut/<name>.mp4 (a request without Range sends half the body, then closes the connection;
    ranged requests are served), /drip/<name>.mp4 (headers, then one byte every 0.5 s, for at
    most 60 s), /busy/<name>.mp4 (429 with Retry-After: 1 for the first request, then ok),
    /flaky/<name>.mp4 (503 twice, then ok); and two ways a page could reach a local file:
    /embed/<name>.html (a page whose <video src> is the file's file:// URL) and
    /to-file/<name>.mp4 (a 302 redirect to it); /error/<code>.mp4 answers with that status."""

    files: dict[str, Path] = {}
    stall_seconds = 4.0
    chunk_delay = 0.05
    requests: dict[str, list[str]] = {}  # path -> the Range header of each request ("" if none)
    # /slow/ URLs (path and query) being served right now, and the most distinct ones at once
    # (one download may overlap two of its own requests: the extractor's probe and the file)
    active_slow: dict[str, int] = {}
    most_slow_at_once = 0
    lock = threading.Lock()

    def log_message(self, *args) -> None:  # keep test output clean
        pass

    def _send(self, status: int, body: bytes, content_type: str, delay: float = 0.0) -> None:
        total, first = len(body), 0
        wanted = re.fullmatch(r"bytes=(\d+)-(\d*)", self.headers.get("Range", ""))
        if status == 200 and wanted:  # ffmpeg seeks (time-span downloads) with Range requests
            first = int(wanted[1])
            last = min(int(wanted[2]), total - 1) if wanted[2] else total - 1
            body, status = body[first : last + 1], 206
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Accept-Ranges", "bytes")
        if status == 206:
            self.send_header("Content-Range", f"bytes {first}-{first + len(body) - 1}/{total}")
        self.end_headers()
        if self.command == "HEAD":
            return
        for start in range(0, len(body), 65536):
            self.wfile.write(body[start : start + 65536])
            time.sleep(delay)

    def do_HEAD(self) -> None:
        self.do_GET()

    def _cut(self, body: bytes) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "video/mp4")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Accept-Ranges", "bytes")
        self.end_headers()
        self.wfile.write(body[: len(body) // 2])
        self.wfile.flush()
        self.close_connection = True

    def _drip(self, body: bytes) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "video/mp4")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        for byte in body[:120]:  # 60 s at most, then the connection ends short
            self.wfile.write(bytes([byte]))
            self.wfile.flush()
            time.sleep(0.5)

    def _failing(self, path: str, name: str) -> bool:
        """The scale failures; True when the request was answered here."""
        seen = self.requests.setdefault(path, [])
        seen.append(self.headers.get("Range", ""))
        body = self.files[name].read_bytes()
        if path.startswith("/cut/") and not self.headers.get("Range"):
            self._cut(body)
        elif path.startswith("/drip/"):
            self._drip(body)
        elif path.startswith("/busy/") and len(seen) == 1:
            self.send_response(429)
            self.send_header("Retry-After", "1")
            self.send_header("Content-Length", "0")
            self.end_headers()
        elif path.startswith("/flaky/") and len(seen) <= 2:
            self._send(503, b"busy", "text/plain")
        else:
            self._send(200, body, "video/mp4")
        return True

    def do_GET(self) -> None:
        path = self.path.split("?")[0]
        name = Path(path).stem
        try:
            if path.startswith(("/cut/", "/drip/", "/busy/", "/flaky/")) and name in self.files:
                self._failing(path, name)
            elif path.startswith("/slow/") and name in self.files:
                cls, url = type(self), self.path
                with cls.lock:
                    cls.active_slow[url] = cls.active_slow.get(url, 0) + 1
                    busy = sum(1 for count in cls.active_slow.values() if count)
                    cls.most_slow_at_once = max(cls.most_slow_at_once, busy)
                try:
                    self._send(200, self.files[name].read_bytes(), "video/mp4", self.chunk_delay)
                finally:
                    with cls.lock:
                        cls.active_slow[url] -= 1
            elif path.startswith("/video/") and name in self.files:
                self._send(200, self.files[name].read_bytes(), "video/mp4")
            elif path == "/stall.mp4":
                time.sleep(self.stall_seconds)
                self._send(200, b"late", "video/mp4")
            elif path.startswith("/embed/") and name in self.files:  # a page with a file URL
                page = f'<html><body><video src="{self.files[name].resolve().as_uri()}">'
                self._send(200, (page + "</video></body></html>").encode(), "text/html")
            elif path.startswith("/to-file/") and name in self.files:  # a redirect to a file
                self.send_response(302)
                self.send_header("Location", self.files[name].resolve().as_uri())
                self.send_header("Content-Length", "0")
                self.end_headers()
            elif re.fullmatch(r"/error/\d{3}\.mp4", path):  # that HTTP status, every time
                self._send(int(name), b"server error", "text/plain")
            elif path == "/page.html":
                self._send(200, b"<html><body><p>no video here</p></body></html>", "text/html")
            else:
                self._send(404, b"not found", "text/plain")
        except (BrokenPipeError, ConnectionResetError):
            pass


@pytest.fixture(scope="session")
def http_server(demo_videos):
    """A real HTTP server on 127.0.0.1 serving the demo videos; yields its base URL."""
    VideoServer.files = {name: path for name, path in demo_videos.items()}
    server = ThreadingHTTPServer(("127.0.0.1", 0), VideoServer)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


@pytest.fixture
def results(tmp_path) -> Path:
    folder = tmp_path / "results"
    folder.mkdir()
    return folder


def copy_demo_video(demo_videos: dict[str, Path], name: str, dest: Path) -> Path:
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(demo_videos[name], dest)
    return dest


def dataset_settings(**sections) -> dict:
    """A demo dataset's validated config (every default filled in), with ``sections`` set."""
    from vidmine.config import validate_config

    config = validate_config({"datasets": {"d": {"source": {"type": "demo"}, **sections}}})
    return config["datasets"]["d"]


def clip_item(path: Path, clip_id: str = "carphone-c000") -> dict:
    """A clip item as the clip-level stages get it (path, fps and frame count probed)."""
    from vidmine.probing import probe_video

    facts = probe_video(path)
    return {"id": clip_id, "path": str(path), "fps": facts["fps"], "n_frames": facts["n_frames"]}


@pytest.fixture
def layout(results):
    from vidmine.layout import DatasetLayout

    return DatasetLayout(results, "d")


@pytest.fixture(scope="session")
def auditor():
    """The audit's default ensemble (MediaPipe full and short range, MTCNN), as it runs."""
    from vidmine.stages.audit.backends import AuditEnsemble

    return AuditEnsemble(dataset_settings()["audit"]["detectors"])


def ffmpeg(*args) -> None:
    """Run ffmpeg quietly (making test inputs from the demo videos); raises on failure."""
    subprocess.run(["ffmpeg", "-v", "error", "-y", *map(str, args)], check=True)


@pytest.fixture(scope="session")
def wheel(tmp_path_factory) -> Path:
    """This checkout's vidmine wheel (no dependencies), built once per test session."""
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
         "-w", str(out), str(REPO)],
        check=True, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    return next(out.glob("vidmine-*.whl"))


def status_entry(item_id: str, status: str, reason: str = "", **fields) -> dict:
    """One status-table entry as a shard job journals it (for tests that write status tables
    without running a stage)."""
    return {
        "id": item_id,
        "status": status,
        "reason": reason,
        "seconds": 1.0,
        "outputs": [],
        "settings_hash": "x",
        "fields": fields,
    }


def kinetics_clip(n: int, rng) -> dict:
    """The fields of a Temporal-3D-Pose-Kinetics pickle (docs/formats/kinetics.md): ``n`` frames
    of 19 points on the z = 0 plane and weak-perspective cameras that project them."""
    import numpy as np

    x3 = rng.uniform(-0.4, 0.4, (n, 19, 3))
    x3[:, :, 2] = 0.0
    cams = np.stack([rng.uniform(0.6, 0.9, n), rng.uniform(0.9, 1.1, n), rng.uniform(0.6, 0.8, n)])
    cams = cams.T
    kp2 = cams[:, None, :1] * (x3[:, :, :2] + cams[:, None, 1:])
    return {
        "time": np.arange(n) / 25.0,
        "smpl_shape": rng.normal(size=(n, 10)),
        "smpl_pose": rng.normal(size=(n, 72)),
        "3d_keypoints": x3,
        "2d_keypoints": kp2,
        "cameras": cams,
    }
