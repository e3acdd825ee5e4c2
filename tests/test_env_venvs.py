"""Each per-rule env built and used: every rule runs inside the env its `conda:` names.

Conda channels are out of reach from these machines, so each env file's pip part is built into
a virtual environment instead (python and ffmpeg, its conda-only entries, come from the system:
Python 3.11 and Debian's ffmpeg). vidmine goes in as a wheel with --no-deps, as the post-deploy
script installs it, so the env holds exactly what its file lists and `pip check` must pass.

Then the workflow runs on the demo data plus small datasets that pick the other backends, with
the project's .venv; then every job runs again, with the exact shell command Snakemake ran and
its outputs removed first, inside the env its rule names (that env's bin first on PATH, as conda
activate does). Journals are removed before each env's turn, so every item is really processed
again inside the env. A rule that imports something its env lacks fails here.

The built envs are cached by the hash of their env file (VIDMINE_TEST_ENVS, default
~/.cache/vidmine/test-envs), identical files hard-linked across them (24 GB -> 11 GB); pip's
own cache holds the wheels, so a rebuild downloads nothing that setup.sh already fetched.
detectron2's env is built and checked, but its rule cannot run here: detectron2 builds from its
git repository, which these machines cannot reach.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent
TEST_CONFIG = REPO / ".test" / "config" / "config.yaml"  # the tests' config
ENVS = REPO / "workflow" / "envs"
BIN = Path(sys.executable).parent
CACHE = Path(os.environ.get("VIDMINE_TEST_ENVS", Path.home() / ".cache/vidmine/test-envs"))
NOT_RUNNABLE_HERE = {"detect_detectron2": "detectron2 builds from GitHub, unreachable here"}
pytestmark = pytest.mark.slow

# Lists each rule's conda env as Snakemake itself resolves it (the workflow's own loops pick
# the env per backend), without deploying anything.
RULE_ENVS = """
import json, sys
from pathlib import Path
from snakemake.api import SnakemakeApi
from snakemake.settings.types import (ConfigSettings, DeploymentMethod, DeploymentSettings,
    OutputSettings, ResourceSettings, StorageSettings)
with SnakemakeApi(OutputSettings()) as api:
    workflow = api.workflow(
        resource_settings=ResourceSettings(),
        config_settings=ConfigSettings(configfiles=[Path(sys.argv[2])]),
        storage_settings=StorageSettings(),
        deployment_settings=DeploymentSettings(deployment_method={DeploymentMethod.CONDA}),
        snakefile=Path(sys.argv[1]),
    )
    from snakemake.iocontainers import Wildcards
    wf = workflow._workflow
    envs = {}
    for r in wf.rules:
        if not r.conda_env:
            continue
        if not callable(r.conda_env):
            envs[r.name] = Path(r.conda_env).stem
            continue
        # an env chosen per job (the export folders: HMMR with phis runs on torch)
        for dataset in wf.config["datasets"]:
            for kind in wf.globals["EXPORT_FOLDERS"]:
                chosen = r.conda_env(Wildcards(fromdict={"dataset": dataset, "kind": kind}))
                envs[f"{r.name}/{dataset}/{kind}"] = Path(chosen).stem
    print(json.dumps(envs))
"""


def env_of(job: Job, rule_env: dict[str, str]) -> str | None:
    """The env a job runs in: its rule's, or, for a rule that picks one per job, the one for
    the job's dataset and export kind (its output ``results/<dataset>/export/<kind>``)."""
    if job.rule in rule_env:
        return rule_env[job.rule]
    parts = Path(job.outputs[0]).parts if job.outputs else ()
    return rule_env.get(f"{job.rule}/{parts[1]}/{parts[-1]}") if len(parts) > 2 else None


def pip_lines(path: Path) -> list[str]:
    env = yaml.safe_load(path.read_text())
    (pip,) = [d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d]
    return pip


def build_env(path: Path) -> Path:
    """The env file's pip part in a venv, cached under the file's hash (older builds of the same
    env are removed, so the cache holds one build per env)."""
    digest = hashlib.sha256(path.read_bytes()).hexdigest()[:16]
    venv = CACHE / f"{path.stem}-{digest}"
    if (venv / ".complete").exists():
        return venv
    for stale in CACHE.glob(f"{path.stem}-*"):
        shutil.rmtree(stale, ignore_errors=True)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    requirements = venv / "requirements.txt"
    requirements.write_text("\n".join(pip_lines(path)) + "\n")
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q"]
    done = subprocess.run(
        [*pip, "--disable-pip-version-check", "-r", str(requirements)],
        capture_output=True, text=True, timeout=2400,
    )  # fmt: skip
    assert done.returncode == 0, f"{path.name}: {done.stderr[-3000:]}"
    (venv / ".complete").write_text(path.read_text())
    share_identical_files()
    return venv


_HARDLINK = threading.Lock()


def share_identical_files() -> None:
    """Hard-link identical files across the finished envs (util-linux ``hardlink``): the three
    torch envs hold the same 6 GB of CUDA wheels. Only finished envs, so no file is linked while
    pip still writes it; after each build, so the disk never holds all of them unlinked."""
    finished = [str(p.parent) for p in CACHE.glob("*/.complete")]
    if shutil.which("hardlink") and len(finished) > 1:
        with _HARDLINK:
            subprocess.run(["hardlink", "-q", "-c", "-s", "1M", *finished], check=False)


@pytest.fixture(scope="module")
def envs(wheel) -> dict[str, Path]:
    """Every env file built, with this checkout's wheel installed alone and `pip check` clean."""
    CACHE.mkdir(parents=True, exist_ok=True)
    paths = sorted(ENVS.glob("*.yaml"))
    with ThreadPoolExecutor(max_workers=2) as pool:
        built = dict(zip([p.stem for p in paths], pool.map(build_env, paths), strict=True))
    for name, venv in built.items():
        python = str(venv / "bin" / "python")
        subprocess.run(
            [python, "-m", "pip", "install", "-q", "--no-deps", "--force-reinstall",
             "--disable-pip-version-check", str(wheel)],
            check=True, capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        check = subprocess.run([python, "-m", "pip", "check"], capture_output=True, text=True)
        assert check.returncode == 0, f"{name}: {check.stdout}{check.stderr}"
    return built


def env_vars(venv: Path | None) -> dict[str, str]:
    """The environment a job of that env gets: its bin first on PATH (conda activate does the
    same), and nothing that points Python back at this checkout's packages."""
    variables = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    front = [str(venv / "bin")] if venv else []
    variables["PATH"] = os.pathsep.join([*front, str(BIN), os.environ["PATH"]])
    return variables


def write_config(workdir: Path) -> Path:
    """The demo (filter, blur, audit, BlazePose, DIS flow, exports, lifter) plus one carphone
    dataset per other backend: HOG + BlazePose with Farneback flow; the trained cartoon
    scorer, RAFT flow, TrackVerse's RAFT motion and ResNet embeddings and HMMR's phis (torch
    env); torchvision's keypoint R-CNN (random weights: no network, so it finds nobody, but it
    runs on every sampled frame)."""
    import torch
    import torch.nn as nn
    from torchvision.models import resnet18

    config = yaml.safe_load((TEST_CONFIG).read_text())
    demo = config["datasets"]["demo"]
    demo["lifter"]["epochs"] = 2  # trains twice here (.venv, then the lifter env)
    small = {k: demo[k] for k in ("shard_size", "download", "scenecut", "trackverse")}
    small["source"] = {"type": "demo", "videos": ["carphone"]}
    model = resnet18(weights=None)  # TrackVerse's cartoon classifier shape, head set to "real"
    model.fc = nn.Linear(512, 2)
    with torch.no_grad():
        model.fc.weight.zero_()
        model.fc.bias.copy_(torch.tensor([-10.0, 10.0]))
    torch.save(model.state_dict(), workdir / "cartoon_real.pth")
    from vidmine.exports.hmr_encoder import ResNetV2

    torch.manual_seed(0)
    torch.save(ResNetV2().state_dict(), workdir / "hmr_random.pt")  # resnet_v2_50's shapes
    tracking = {"tracking": {"min_track_seconds": 1.0}}
    config["datasets"].update(
        hog={**small, "detect": {"backend": "hog_blazepose", "detect_fps": 5, **tracking},
             "flow": {"backend": "farneback"}},
        torch_flow={
            **small,
            "filter": {"cartoon": {"backend": "resnet18", "weights": "cartoon_real.pth"}},
            "detect": {"backend": "mediapipe", **tracking},
            "flow": {"backend": "raft", "raft": {"model": "small", "weights": None, "iters": 2}},
            # TrackVerse's metrics as TrackVerse ran them, in the torch env: RAFT motion and
            # ResNet embeddings (random weights)
            "trackverse": {
                **small["trackverse"],
                "motion": {"backend": "raft",
                           "raft": {"model": "small", "weights": None, "iters": 2}},
                "embeddings": {"backend": "torchvision",
                               "torchvision": {"model": "resnet18", "weights": None}},
            },
            # HMMR's train records with image/phis: HMR's encoder (random weights) on torch
            "hmmr": {
                "precomputed_phi": True,
                "phis": {"weights": "hmr_random.pt", "device": "cpu"},
            },
        },
        torch_detect={
            **small,
            "detect": {
                "backend": "torchvision", "detect_fps": 0.5, **tracking,
                "torchvision": {"person_weights": None,
                                "object_model": "fasterrcnn_mobilenet_v3_large_fpn",
                                "object_weights": None},
            },
        },
    )  # fmt: skip
    path = workdir / "config" / "config.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def snakemake(workdir: Path, *args: str) -> subprocess.CompletedProcess:
    command = [
        str(BIN / "snakemake"), "-s", str(REPO / "workflow" / "Snakefile"),
        "--directory", str(workdir), "--profile", str(REPO / "profiles" / "local"), *args,
    ]  # fmt: skip
    return subprocess.run(
        command, capture_output=True, text=True, timeout=1800, env=env_vars(None), cwd=workdir
    )


@dataclass
class Job:
    rule: str
    outputs: list[str]
    command: str


JOB = re.compile(
    r"^(?:local)?(?:rule|checkpoint) (?P<rule>\w+):\n(?P<body>(?:    .*\n)+)"
    r"Shell command: (?P<command>.+)$",
    re.MULTILINE,
)


def jobs_run(log: str) -> list[Job]:
    """The jobs of a Snakemake run in the order they started (so each one's inputs were made
    before it), with their outputs and the shell command as Snakemake ran it (the profile
    prints them)."""
    jobs = []
    for match in JOB.finditer(log):
        outputs = re.search(r"^    output: (.+)$", match["body"], re.MULTILINE)
        listed = outputs[1].split(", ") if outputs else []
        jobs.append(Job(match["rule"], listed, match["command"]))
    return jobs


def remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


def run_in_env(job: Job, workdir: Path, venv: Path) -> subprocess.CompletedProcess:
    """One job again, as Snakemake runs a shell rule (outputs removed first), inside ``venv``."""
    for output in job.outputs:
        remove(workdir / output)
    return subprocess.run(
        ["bash", "-c", f"set -euo pipefail; {job.command}"], capture_output=True, text=True,
        timeout=1800, env=env_vars(venv), cwd=workdir,
    )  # fmt: skip


def log_tail(job: Job, workdir: Path) -> str:
    logs = [workdir / p for p in re.findall(r"> (\S+\.log)", job.command)]
    return "".join(p.read_text()[-2000:] for p in logs if p.exists())


def test_every_rule_runs_in_the_env_it_names(envs, tmp_path):
    configfile = write_config(tmp_path)
    listed = subprocess.run(
        [sys.executable, "-c", RULE_ENVS, str(REPO / "workflow" / "Snakefile"), str(configfile)],
        capture_output=True, text=True, cwd=tmp_path, check=True, env=env_vars(None),
    )  # fmt: skip
    rule_env = json.loads(listed.stdout.strip().splitlines()[-1])
    assert set(rule_env.values()) == set(envs), (set(rule_env.values()), set(envs))

    first = snakemake(tmp_path, "all")
    assert first.returncode == 0, first.stderr[-4000:]
    jobs = jobs_run(first.stderr)
    ran = {job.rule for job in jobs}
    not_run = {name.split("/")[0] for name in rule_env} - ran - set(NOT_RUNNABLE_HERE)
    assert not not_run, f"the test's datasets leave rules out: {sorted(not_run)}"
    for env_name, venv in envs.items():
        for journal in (tmp_path / "results").glob("*/status/**/*.journal.jsonl"):
            journal.unlink()  # so each shard job processes its items again, in this env
        for job in (job for job in jobs if env_of(job, rule_env) == env_name):
            done = run_in_env(job, tmp_path, venv)
            where = f"{env_name} env, rule {job.rule}: {job.command}"
            assert done.returncode == 0, f"{where}\n{done.stderr[-2000:]}{log_tail(job, tmp_path)}"
            missing = [o for o in job.outputs if not (tmp_path / o).exists()]
            assert not missing, f"{where}: made no {missing}"
    again = snakemake(tmp_path, "all", "--dry-run")  # the files are all there again
    assert again.returncode == 0, again.stderr[-3000:]


def test_the_detectron2_env_holds_everything_but_detectron2(envs):
    """Its rule's imports, short of detectron2 itself (built by the post-deploy script)."""
    python = str(envs["detectron2"] / "bin" / "python")
    imports = (
        "import torch, torchvision, trackers, vidmine.stages.detect.stage,"
        " vidmine.stages.detect.tracking, vidmine.stages.detect.backends.detectron2"
    )
    done = subprocess.run(
        [python, "-c", imports], capture_output=True, text=True, env=env_vars(envs["detectron2"])
    )
    assert done.returncode == 0, done.stderr[-2000:]
    missing = subprocess.run([python, "-c", "import detectron2"], capture_output=True, text=True)
    assert "No module named 'detectron2'" in missing.stderr  # what this machine cannot build
