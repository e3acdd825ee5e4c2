import json
import os
import shlex
import sys
from pathlib import Path

from snakemake.utils import min_version

min_version("9.0")


envvars:
    "PATH",


# The package of this checkout, importable without installation (the main Snakemake process only
# plans; rule jobs run the `vidmine` command of their own environment).
sys.path.insert(0, str(Path(workflow.basedir).parent / "src"))
# Rules call the `vidmine` command; without --sdm conda it is the one next to the Python that
# runs Snakemake (.venv/bin), so the workflow runs without activating the venv.
# Per-rule conda envs install this checkout's package in their post-deploy scripts.
if not os.getenv("VIDMINE_SRC"):
    os.environ.update(VIDMINE_SRC=str(Path(workflow.basedir).parent))
_python_bin = str(Path(sys.executable).parent)
_path = os.getenv("PATH", "")
if _python_bin not in _path.split(os.pathsep):
    os.environ.update(PATH=os.pathsep.join([_python_bin, _path]))

from vidmine.config import ConfigError, load_schema, missing_inputs, validate_config
from vidmine.manifest import shard_names
from vidmine.sources import SOURCE_FILE_KEYS
from vidmine.registry import BY_NAME, PROVENANCE_STAGES, REPORT_ITEMS, STAGE_NAMES

try:
    _validated = validate_config(
        config, load_schema(Path(workflow.basedir) / "schemas" / "config.schema.yaml")
    )
except ConfigError as error:
    sys.exit(f"vidmine: {error}")
if _missing := missing_inputs(_validated):
    sys.exit("\n".join(f"vidmine: {line}" for line in _missing))
config.clear()
config.update(_validated)

DATASETS = sorted(config["datasets"])


wildcard_constraints:
    dataset="|".join(DATASETS),
    shard=r"s\d{5}",
    domain=r"[A-Za-z0-9_]+",


def dataset_config(dataset):
    return config["datasets"][dataset]


def dataset_dir(wildcards):
    return f"results/{wildcards.dataset}"


def stage_settings(*sections):
    """Params function: a stage's config section (or {name: section} for several), quoted."""

    def settings(wildcards):
        config_ = dataset_config(wildcards.dataset)
        if len(sections) == 1:
            value = config_[sections[0]]
        else:
            value = {name: config_[name] for name in sections}
        return shlex.quote(json.dumps(value, sort_keys=True))

    return settings


def retry_flag(wildcards):
    return "--retry-failed" if config["retry_failed"] else ""


def source_files(wildcards):
    """Source metadata files, so an edited source rebuilds the manifest."""
    source = dataset_config(wildcards.dataset)["source"]
    return [
        source[k] for k in SOURCE_FILE_KEYS if k in source and Path(source[k]).is_file()
    ]


def shards(dataset):
    """Shard names from the manifest (a checkpoint: known once the manifest exists)."""
    return shard_names(checkpoints.manifest.get(dataset=dataset).output.manifest)


def per_shard(pattern):
    """Input function: one file per shard of the dataset, from a path pattern with {shard}."""

    def files(wildcards):
        return expand(
            pattern, dataset=wildcards.dataset, shard=shards(wildcards.dataset)
        )

    return files


def stage_inputs(stage):
    """Input function: every per-shard file ``stage`` reads, from its registry entry (the status
    tables of the stages it reads, their row tables, the manifest), so the DAG is the truth.
    """
    entry = BY_NAME[stage]

    def inputs(wildcards):
        root = f"results/{wildcards.dataset}"
        files = {
            f"{name}_status": f"{root}/status/{name}/{wildcards.shard}.parquet"
            for name in entry.reads
        }
        for table in entry.reads_tables:
            files[f"{table}_table"] = f"{root}/tables/{table}/{wildcards.shard}.parquet"
        if entry.reads_manifest:
            files["manifest"] = f"{root}/manifest.parquet"
        return files

    return inputs


def stage_statuses(dataset):
    """Every registry stage's status table of every shard (so `all` runs every stage)."""
    return expand(
        "results/{dataset}/status/{stage}/{shard}.parquet",
        dataset=dataset,
        stage=STAGE_NAMES,
        shard=shards(dataset),
    )


FUNNEL_ITEMS = ("funnel.html", "funnel.png")  # report.smk, rule report_funnel


def report_items(dataset):
    """The funnel, then the report items of every stage, in registry order."""
    return expand(
        "results/{dataset}/report/{item}",
        dataset=dataset,
        item=FUNNEL_ITEMS + REPORT_ITEMS,
    )


def funnel_inputs(wildcards):
    """What the funnel reads: the manifest, every stage's status tables, the clip tables."""
    return {
        "manifest": f"results/{wildcards.dataset}/manifest.parquet",
        "statuses": stage_statuses(wildcards.dataset),
        "clips": expand(
            "results/{dataset}/tables/clips/{shard}.parquet",
            dataset=wildcards.dataset,
            shard=shards(wildcards.dataset),
        ),
    }


# --- exports (rules in export.smk) ---
EXPORT_FOLDERS = ("detectron", "hmmr", "vpd", "trackverse")


def export_files(dataset):
    """Every export of a dataset, each a single target."""
    folders = expand(
        "results/{dataset}/export/{kind}", dataset=dataset, kind=EXPORT_FOLDERS
    )
    return [
        f"results/{dataset}/export/data_2d_custom_{dataset}.npz",
        f"results/{dataset}/export/videopose3d_videos",
        f"results/{dataset}/export/index.parquet",
        *folders,
    ]


def export_inputs(wildcards):
    """Input function: the dataset files an export folder is built from."""
    root = f"results/{wildcards.dataset}"
    inputs = {
        "tracks": f"{root}/tracks.parquet",
        "released": f"{root}/released_clips.parquet",
    }
    if wildcards.kind in ("hmmr", "vpd"):
        inputs["crops"] = f"{root}/crops.parquet"
        inputs["manifest"] = f"{root}/manifest.parquet"
    if wildcards.kind == "trackverse":
        inputs["subsets"] = trackverse_files(wildcards.dataset)
        inputs["records"] = per_shard(
            "results/{dataset}/status/trackverse/{shard}.parquet"
        )(wildcards)
    return inputs


def provenance_statuses(wildcards):
    """Input function: the status tables whose settings hashes the export index records."""
    return expand(
        "results/{dataset}/status/{stage}/{shard}.parquet",
        dataset=wildcards.dataset,
        stage=PROVENANCE_STAGES,
        shard=shards(wildcards.dataset),
    )


def export_extra_args(wildcards):
    if wildcards.kind == "trackverse":
        section = dataset_config(wildcards.dataset)["trackverse"]
        curation = shlex.quote(json.dumps(section["curation"], sort_keys=True))
        return f"--domain {section['domain']} --curation {curation}"
    if wildcards.kind == "hmmr":
        return f"--settings {stage_settings('hmmr')(wildcards)}"
    return ""


def export_setting(wildcards, export, key):
    """Params function: one setting of an export (the dataset's ``<export>`` section)."""
    return dataset_config(wildcards.dataset)[export][key]


def export_env(wildcards):
    """Conda env of an export folder: HMMR's with image/phis runs HMR's encoder on torch (the
    torch env, which pins tfrecord too); the other exports need no torch."""
    hmmr = dataset_config(wildcards.dataset)["hmmr"]
    if wildcards.kind == "hmmr" and hmmr["precomputed_phi"]:
        return "../envs/torch.yaml"
    return "../envs/export.yaml"


def config_hash(wildcards):
    """Params function: hash of the dataset's whole (validated) config, for provenance."""
    from vidmine.config import settings_hash

    return settings_hash(dataset_config(wildcards.dataset))


def dataset_files(dataset):
    """The dataset files users ask for (single Snakemake targets)."""
    return (
        expand(
            "results/{dataset}/{name}",
            dataset=dataset,
            name=[
                "released_clips.parquet",
                "clips.parquet",
                "download_report.parquet",
                "tracks.parquet",
                "crops.parquet",
            ],
        )
        + trackverse_files(dataset)
        + export_files(dataset)
    )


# --- shard groups (one sbatch job per shard and group in profiles/slurm) ---
# shard_video: download, probe, scene cut, filter, blur, audit and CPU detection;
# shard_gpu: GPU detection; shard_tracks: TrackVerse records, crops and CPU flow;
# shard_gpu_flow: RAFT flow. A group may not wrap a job of another group (Snakemake refuses
# the plan once the manifest exists), so the stages after a GPU detection cannot share the
# first group, and RAFT, after the crops, cannot share the GPU detection's.

# --- detection, tracking and TrackVerse (rules in detect.smk) ---
DETECT_ENVS = {
    "hog_blazepose": "../envs/pose.yaml",
    "mediapipe": "../envs/pose.yaml",
    "torchvision": "../envs/torch.yaml",
    "detectron2": "../envs/detectron2.yaml",
}
CPU_DETECT_BACKENDS = ("hog_blazepose", "mediapipe")  # run in the CPU shard group


FLOW_ENVS = {
    "dis": "../envs/video.yaml",
    "farneback": "../envs/video.yaml",
    "raft": "../envs/torch.yaml",
}

FILTER_ENVS = {"cpu": "../envs/privacy.yaml", "torch": "../envs/torch.yaml"}


def filter_env(dataset):
    """'torch' when the dataset's filter uses a trained scorer, else 'cpu'."""
    section = dataset_config(dataset)["filter"]
    trained = section["cartoon"]["backend"] != "heuristic"
    return "torch" if trained or section["aesthetic"]["backend"] != "none" else "cpu"


def datasets_matching(predicate):
    """Wildcard constraint: the datasets for which ``predicate(name)`` holds (or none)."""
    names = [d for d in DATASETS if predicate(d)]
    return "|".join(names) if names else "(?!)"


def datasets_with_filter_env(env_name):
    """Wildcard constraint: the datasets whose filter runs in ``env_name``."""
    return datasets_matching(lambda d: filter_env(d) == env_name)


def datasets_with_backend(backend, section="detect"):
    """Wildcard constraint: the datasets whose ``section``.backend is ``backend``."""
    return datasets_matching(lambda d: dataset_config(d)[section]["backend"] == backend)


def stage_threads(stage):
    """A stage rule's threads: the config's ``threads.<stage>``, else ``threads.default``."""
    return config["threads"].get(stage, config["threads"]["default"])


def trackverse_settings(wildcards):
    """Params function: the trackverse: section without its curation part, quoted JSON."""
    section = dataset_config(wildcards.dataset)["trackverse"]
    kept = {k: v for k, v in section.items() if k != "curation"}
    return shlex.quote(json.dumps(kept, sort_keys=True))


def curation_settings(wildcards):
    curation = dataset_config(wildcards.dataset)["trackverse"]["curation"]
    return shlex.quote(json.dumps(curation, sort_keys=True))


TRACKVERSE_ENVS = {"video": "../envs/video.yaml", "torch": "../envs/torch.yaml"}
# The curate rule's {criterion}: the subset stems of stages/trackverse/curation.py.
from vidmine.stages.trackverse.curation import CRITERION as CURATION_CRITERION


def trackverse_env(dataset):
    """'torch' when the dataset's TrackVerse metrics use RAFT or a torchvision model."""
    section = dataset_config(dataset)["trackverse"]
    torch_backends = (
        section["motion"]["backend"] == "raft"
        or section["embeddings"]["backend"] == "torchvision"
    )
    return "torch" if section["visual_metrics"] and torch_backends else "video"


def trackverse_files(dataset):
    """The TrackVerse index and each configured curated subset (one target each)."""
    from vidmine.stages.trackverse.curation import subset_names

    section = dataset_config(dataset)["trackverse"]
    domain = section["domain"]
    names = [f"{domain}-index"] + subset_names(domain, section["curation"])
    return expand(
        "results/{dataset}/trackverse/tracks_subsets/{name}.jsonl.gzip",
        dataset=dataset,
        name=names,
    )


# --- lifter (rules in lifter.smk) ---
LIFTER_WORKFLOW_KEYS = (
    "enabled",
    "mem_mb",
    "runtime",
    "render",
    "lift_model",
    "lift_model_sha256",
    "max_gap",
)


def lifter_settings(dataset):
    """The dataset's lifter: section as given (the trainer fills in its own defaults)."""
    return config["datasets"][dataset].get("lifter", {})


def lifter_settings_json(wildcards):
    """Params function: the training/data settings, quoted JSON for --settings."""
    settings = lifter_settings(wildcards.dataset)
    kept = {k: v for k, v in settings.items() if k not in LIFTER_WORKFLOW_KEYS}
    return shlex.quote(json.dumps(kept, sort_keys=True))


def lifter_data_files(wildcards):
    """Input function: the data files the lifter trains and evaluates on (none: synthetic)."""
    from vidmine.lifter.config import DataConfig, data_files, section_settings

    settings = section_settings(lifter_settings(wildcards.dataset))
    return [str(path) for path in data_files(DataConfig.from_dict(settings))]


def lifter_resource(name, default):
    """Resources function: a value from the lifter: section, else ``default``."""

    def value(wildcards):
        return lifter_settings(wildcards.dataset).get(name, default)

    return value


def lift_model(dataset):
    """The dataset's lifter.lift_model: `trained`, a published model's name, or a path."""
    return lifter_settings(dataset).get("lift_model", "trained")


def lift_model_input(wildcards):
    """Input function of lift_tracks: the model file when it is one (the dataset's own, or a
    checkpoint path); a published model comes from the weights cache instead."""
    from vidmine.formats.videopose3d import PUBLISHED_LIFTERS

    spec = lift_model(wildcards.dataset)
    if spec == "trained":
        return {"model": f"results/{wildcards.dataset}/lifter/model.pt"}
    return {} if spec in PUBLISHED_LIFTERS else {"model": spec}


def lift_model_arg(wildcards):
    """Params function: the --model value of `vidmine lifter lift` (quoted)."""
    spec = lift_model(wildcards.dataset)
    if spec == "trained":
        spec = f"results/{wildcards.dataset}/lifter/model.pt"
    return shlex.quote(spec)


def lift_extra_args(wildcards):
    """Params function: lift_tracks' optional flags from the lifter: section."""
    settings = lifter_settings(wildcards.dataset)
    args = ["--render", str(settings.get("render", 3))]
    args += ["--max-gap", str(settings.get("max_gap", 12))]
    if settings.get("lift_model_sha256"):
        args += ["--model-sha256", shlex.quote(settings["lift_model_sha256"])]
    return " ".join(args)


def lifter_targets(dataset):
    """Files to request for a dataset whose lifter is enabled (none otherwise): training and
    evaluation only when it lifts with its own model."""
    if not lifter_settings(dataset).get("enabled", False):
        return []
    names = ["lifted"]
    if lift_model(dataset) == "trained":
        names = ["model.pt", "metrics.json", "metrics.png", "lifted"]
    return expand("results/{dataset}/lifter/{name}", dataset=dataset, name=names) + [
        f"results/{dataset}/report/lifted_track.gif",
        f"results/{dataset}/report/lifter.html",
    ]


def lifter_report_inputs(wildcards):
    """Input function of report_lifter: the GIF and lifted tracks, and the test metrics when
    the dataset trains its own model."""
    root = f"results/{wildcards.dataset}"
    inputs = {
        "gif": f"{root}/report/lifted_track.gif",
        "lifted": f"{root}/lifter/lifted",
    }
    if lift_model(wildcards.dataset) == "trained":
        inputs["metrics"] = f"{root}/lifter/metrics.json"
    return inputs


def all_targets(wildcards):
    """Input function of `all`: every dataset's files, every stage's shard status tables, the
    report items, and the lifter's and the embedding's files when they are enabled (lifter.smk,
    embed.smk)."""
    return [
        f
        for d in DATASETS
        for f in dataset_files(d)
        + stage_statuses(d)
        + report_items(d)
        + lifter_targets(d)
        + embed_targets(d)
    ]


# --- pose embeddings (rules in embed.smk) ---
def embed_settings(dataset):
    """The dataset's embed: section as given (the commands fill in their own defaults)."""
    return config["datasets"][dataset].get("embed", {})


def embed_settings_json(wildcards):
    """Params function: the embed: section, quoted JSON for --settings."""
    from vidmine.embed.config import WORKFLOW_KEYS

    settings = embed_settings(wildcards.dataset)
    kept = {k: v for k, v in settings.items() if k not in WORKFLOW_KEYS}
    return shlex.quote(json.dumps(kept, sort_keys=True))


def embed_teacher_data_files(wildcards):
    """Input function: the 3D files the teacher trains on (none: the synthetic motion)."""
    from vidmine.embed.config import teacher_data_files

    return [str(p) for p in teacher_data_files(embed_settings(wildcards.dataset))]


def embed_resource(name, default):
    """Resources and threads function: a value from the embed: section, else ``default``."""

    def value(wildcards):
        return embed_settings(wildcards.dataset).get(name, default)

    return value


def embed_targets(dataset):
    """Files to request for a dataset whose embedding is enabled (none otherwise)."""
    if not embed_settings(dataset).get("enabled", False):
        return []
    names = [
        "teacher.pt",
        "teacher_features",
        "student.pt",
        "student_features",
        "metrics.json",
    ]
    return expand("results/{dataset}/embed/{name}", dataset=dataset, name=names) + [
        f"results/{dataset}/embed/few_shot.png",
        f"results/{dataset}/report/embed.html",
    ]
