# Detect, pose and track: person (and object) tracks per clip from the private clips the filter
# kept; only tables leave the private zone. TrackVerse records per video, then curated subsets.


# One rule per backend, each with its own env and (in profiles/slurm) resources; a dataset's
# backend picks which of them may build its track tables.
for _backend, _env in DETECT_ENVS.items():

    rule:
        name:
            f"detect_{_backend}"
        input:
            unpack(stage_inputs("detect")),
        output:
            tracks="results/{dataset}/tables/tracks/{shard}.parquet",
            status="results/{dataset}/status/detect/{shard}.parquet",
        log:
            "results/{dataset}/logs/detect/{shard}.log",
        wildcard_constraints:
            dataset=datasets_with_backend(_backend),
        group:
            "shard_video" if _backend in CPU_DETECT_BACKENDS else "shard_gpu"
        conda:
            _env
        threads: stage_threads("detect")
        params:
            dataset_dir=dataset_dir,
            settings=stage_settings("detect"),
            retry=retry_flag,
        shell:
            "vidmine run-stage detect --dataset-dir {params.dataset_dir} --threads {threads}"
            " --shard {wildcards.shard} --settings {params.settings} {params.retry} > {log} 2>&1"


# TrackVerse records and visual metrics: in the video env, or the torch env when the metrics
# use RAFT or a torchvision ResNet (trackverse_env in common.smk).
for _env_name, _env in TRACKVERSE_ENVS.items():

    rule:
        name:
            f"trackverse_meta_{_env_name}"
        input:
            unpack(stage_inputs("trackverse")),
        output:
            links="results/{dataset}/tables/trackverse/{shard}.parquet",
            status="results/{dataset}/status/trackverse/{shard}.parquet",
        log:
            "results/{dataset}/logs/trackverse/{shard}.log",
        wildcard_constraints:
            dataset=datasets_matching(lambda d: trackverse_env(d) == _env_name),
        group:
            "shard_tracks"
        conda:
            _env
        threads: stage_threads("trackverse")
        params:
            dataset_dir=dataset_dir,
            settings=trackverse_settings,
            retry=retry_flag,
        shell:
            "vidmine run-stage trackverse --dataset-dir {params.dataset_dir} --threads {threads}"
            " --shard {wildcards.shard} --settings {params.settings} {params.retry} > {log} 2>&1"


rule track_table:
    input:
        tracks=per_shard("results/{dataset}/tables/tracks/{shard}.parquet"),
        links=per_shard("results/{dataset}/tables/trackverse/{shard}.parquet"),
    output:
        "results/{dataset}/tracks.parquet",
    log:
        "results/{dataset}/logs/track_table.log",
    conda:
        "../envs/video.yaml"
    threads: 1
    shell:
        "vidmine gather-tracks --out {output} --trackverse {input.links}"
        " -- {input.tracks} > {log} 2>&1"


rule trackverse_index:
    input:
        status=per_shard("results/{dataset}/status/trackverse/{shard}.parquet"),
    output:
        "results/{dataset}/trackverse/tracks_subsets/{domain}-index.jsonl.gzip",
    log:
        "results/{dataset}/logs/trackverse_index_{domain}.log",
    conda:
        "../envs/video.yaml"
    threads: 1
    params:
        dataset_dir=dataset_dir,
    shell:
        "vidmine trackverse-index --dataset-dir {params.dataset_dir} --out {output}"
        " {input.status} > {log} 2>&1"


rule curate:
    input:
        index="results/{dataset}/trackverse/tracks_subsets/{domain}-index.jsonl.gzip",
        # their metric files (tracks_motion/, tracks_embeddings/) are the samplers' inputs
        status=per_shard("results/{dataset}/status/trackverse/{shard}.parquet"),
    output:
        "results/{dataset}/trackverse/tracks_subsets/{domain}-{criterion}.jsonl.gzip",
    log:
        "results/{dataset}/logs/curate/{domain}-{criterion}.log",
    wildcard_constraints:
        criterion=CURATION_CRITERION,
    conda:
        "../envs/video.yaml"
    threads: 1
    params:
        dataset_dir=dataset_dir,
        settings=curation_settings,
    shell:
        "vidmine curate --index {input.index} --dataset-dir {params.dataset_dir}"
        " --name {wildcards.domain}-{wildcards.criterion} --settings {params.settings}"
        " --out {output} {input.status} > {log} 2>&1"
