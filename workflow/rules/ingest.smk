# Ingest: source -> manifest -> per-shard download, probe and scene cut.
# Each stage rule is one job per shard; its declared output is the shard's status table,
# written last by the shard runner. Per-item files are written atomically and skipped when
# complete, so --rerun-incomplete after a preemption redoes only the unfinished items.


checkpoint manifest:
    input:
        source_files,
    output:
        manifest=RESULTS + "/{dataset}/manifest.parquet",
    params:
        source=lambda w: shlex.quote(json.dumps(dataset_config(w.dataset)["source"])),
        shard_size=lambda w: dataset_config(w.dataset)["shard_size"],
    log:
        LOGS + "/manifest.log",
    conda:
        "../envs/video.yaml"
    shell:
        "vidmine manifest --source {params.source} --shard-size {params.shard_size}"
        " --out {output.manifest} > {log} 2>&1"


rule download:
    input:
        manifest=rules.manifest.output.manifest,
    output:
        status=status_path("download"),
    params:
        settings=stage_settings("download"),
        retry=retry_flag,
    log:
        LOGS + "/download/{shard}.log",
    group:
        "shard_video"
    conda:
        "../envs/video.yaml"
    shell:
        "vidmine run-stage download --results {RESULTS} --dataset {wildcards.dataset}"
        " --shard {wildcards.shard} --settings {params.settings} {params.retry} > {log} 2>&1"


rule probe:
    input:
        download=status_path("download"),
    output:
        status=status_path("probe"),
    params:
        settings=stage_settings("probe"),
        retry=retry_flag,
    log:
        LOGS + "/probe/{shard}.log",
    group:
        "shard_video"
    conda:
        "../envs/video.yaml"
    shell:
        "vidmine run-stage probe --results {RESULTS} --dataset {wildcards.dataset}"
        " --shard {wildcards.shard} --settings {params.settings} {params.retry} > {log} 2>&1"


rule scenecut:
    input:
        probe=status_path("probe"),
    output:
        clips=RESULTS + "/{dataset}/tables/clips/{shard}.parquet",
        status=status_path("scenecut"),
    params:
        settings=stage_settings("scenecut"),
        retry=retry_flag,
    log:
        LOGS + "/scenecut/{shard}.log",
    group:
        "shard_video"
    conda:
        "../envs/video.yaml"
    shell:
        "vidmine run-stage scenecut --results {RESULTS} --dataset {wildcards.dataset}"
        " --shard {wildcards.shard} --settings {params.settings} {params.retry} > {log} 2>&1"
