# Crops and optical flow: square crops around tracked people from the released (blurred,
# audited) clips, and flow between each crop and its previous-frame crop.


rule crops:
    input:
        unpack(stage_inputs("crops")),
    output:
        crops="results/{dataset}/tables/crops/{shard}.parquet",
        status="results/{dataset}/status/crops/{shard}.parquet",
    log:
        "results/{dataset}/logs/crops/{shard}.log",
    group:
        "shard_tracks"
    conda:
        "../envs/video.yaml"
    threads: stage_threads("crops")
    params:
        dataset_dir=dataset_dir,
        settings=stage_settings("crops"),
        retry=retry_flag,
    shell:
        "vidmine run-stage crops --dataset-dir {params.dataset_dir} --threads {threads}"
        " --shard {wildcards.shard} --settings {params.settings} {params.retry} > {log} 2>&1"


# dis and farneback run on CPU in the shard's tracks job; raft gets its env, a GPU
# (profiles/slurm) and a group of its own (see GROUPS in common.smk).
for _backend, _env in FLOW_ENVS.items():

    rule:
        name:
            f"flow_{_backend}"
        input:
            unpack(stage_inputs("flow")),
        output:
            flow="results/{dataset}/tables/flow/{shard}.parquet",
            status="results/{dataset}/status/flow/{shard}.parquet",
        log:
            "results/{dataset}/logs/flow/{shard}.log",
        wildcard_constraints:
            dataset=datasets_with_backend(_backend, "flow"),
        group:
            "shard_gpu_flow" if _backend == "raft" else "shard_tracks"
        conda:
            _env
        threads: stage_threads("flow")
        params:
            dataset_dir=dataset_dir,
            settings=stage_settings("flow"),
            retry=retry_flag,
        shell:
            "vidmine run-stage flow --dataset-dir {params.dataset_dir} --threads {threads}"
            " --shard {wildcards.shard} --settings {params.settings} {params.retry} > {log} 2>&1"


rule crop_table:
    input:
        crops=per_shard("results/{dataset}/tables/crops/{shard}.parquet"),
        flow=per_shard("results/{dataset}/tables/flow/{shard}.parquet"),
    output:
        "results/{dataset}/crops.parquet",
    log:
        "results/{dataset}/logs/crop_table.log",
    conda:
        "../envs/video.yaml"
    threads: 1
    shell:
        "vidmine gather-crops --out {output} --flow {input.flow} -- {input.crops} > {log} 2>&1"
