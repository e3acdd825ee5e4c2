# Ingest: source -> manifest -> per-shard download, probe and scene cut.
# Each stage rule is one job per shard; its declared output is the shard's status table,
# written last by the shard runner. Per-item files are written atomically and skipped when
# complete, so --rerun-incomplete after a preemption redoes only the unfinished items.


checkpoint manifest:
    input:
        source_files,
    output:
        manifest="results/{dataset}/manifest.parquet",
        rejected="results/{dataset}/rejected_rows.parquet",  # written next to the manifest
    log:
        "results/{dataset}/logs/manifest.log",
    conda:
        "../envs/video.yaml"
    threads: 1
    params:
        source=lambda w: shlex.quote(json.dumps(dataset_config(w.dataset)["source"])),
        shard_size=lambda w: dataset_config(w.dataset)["shard_size"],
    shell:
        "vidmine manifest --source {params.source} --shard-size {params.shard_size}"
        " --out {output.manifest} > {log} 2>&1"


# Downloads need network: `downloads_on_submit_host: true` makes this a local rule (run by the
# Snakemake process, on a login node with network) outside the shard's group job. `downloads`
# is a global resource: the profiles cap how many run at once across all jobs (a site's 429s
# and IP bans come from many shards downloading at once).
if config.get("downloads_on_submit_host"):

    localrules:
        download,


rule download:
    input:
        unpack(stage_inputs("download")),
    output:
        status="results/{dataset}/status/download/{shard}.parquet",
    log:
        "results/{dataset}/logs/download/{shard}.log",
    group:
        None if config.get("downloads_on_submit_host") else "shard_video"
    conda:
        "../envs/video.yaml"
    threads: stage_threads("download")
    resources:
        downloads=1,
    params:
        dataset_dir=dataset_dir,
        settings=stage_settings("download"),
        retry=retry_flag,
    shell:
        "vidmine run-stage download --dataset-dir {params.dataset_dir} --threads {threads}"
        " --shard {wildcards.shard} --settings {params.settings} {params.retry} > {log} 2>&1"


rule probe:
    input:
        unpack(stage_inputs("probe")),
    output:
        status="results/{dataset}/status/probe/{shard}.parquet",
    log:
        "results/{dataset}/logs/probe/{shard}.log",
    group:
        "shard_video"
    conda:
        "../envs/video.yaml"
    threads: stage_threads("probe")
    params:
        dataset_dir=dataset_dir,
        settings=stage_settings("probe"),
        retry=retry_flag,
    shell:
        "vidmine run-stage probe --dataset-dir {params.dataset_dir} --threads {threads}"
        " --shard {wildcards.shard} --settings {params.settings} {params.retry} > {log} 2>&1"


rule scenecut:
    input:
        unpack(stage_inputs("scenecut")),
    output:
        clips="results/{dataset}/tables/clips/{shard}.parquet",
        status="results/{dataset}/status/scenecut/{shard}.parquet",
    log:
        "results/{dataset}/logs/scenecut/{shard}.log",
    group:
        "shard_video"
    conda:
        "../envs/video.yaml"
    threads: stage_threads("scenecut")
    params:
        dataset_dir=dataset_dir,
        settings=stage_settings("scenecut"),
        retry=retry_flag,
    shell:
        "vidmine run-stage scenecut --dataset-dir {params.dataset_dir} --threads {threads}"
        " --shard {wildcards.shard} --settings {params.settings} {params.retry} > {log} 2>&1"
