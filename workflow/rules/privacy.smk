# Filter and privacy: score and filter clips, blur faces, audit every blurred clip.
# Unblurred pixels stay in results/{dataset}/private/; only audited clips reach clips/.


# The filter runs in the slim privacy env unless a dataset asks for a trained scorer (the
# ResNet-18 cartoon classifier or the CLIP aesthetic head), which needs torch: one rule per env,
# and a dataset's scorers pick which of them may build its scores.
for _env_name, _env in FILTER_ENVS.items():

    rule:
        name:
            "filter" if _env_name == "cpu" else f"filter_{_env_name}"
        input:
            unpack(stage_inputs("filter")),
        output:
            scores="results/{dataset}/tables/scores/{shard}.parquet",
            status="results/{dataset}/status/filter/{shard}.parquet",
        log:
            "results/{dataset}/logs/filter/{shard}.log",
        wildcard_constraints:
            dataset=datasets_with_filter_env(_env_name),
        group:
            "shard_video"
        conda:
            _env
        threads: stage_threads("filter")
        params:
            dataset_dir=dataset_dir,
            settings=stage_settings("filter"),
            retry=retry_flag,
        shell:
            "vidmine run-stage filter --dataset-dir {params.dataset_dir} --threads {threads}"
            " --shard {wildcards.shard} --settings {params.settings} {params.retry} > {log} 2>&1"


rule blur:
    input:
        unpack(stage_inputs("blur")),
    output:
        faces="results/{dataset}/tables/faces/{shard}.parquet",
        status="results/{dataset}/status/blur/{shard}.parquet",
    log:
        "results/{dataset}/logs/blur/{shard}.log",
    group:
        "shard_video"
    conda:
        "../envs/privacy.yaml"
    threads: stage_threads("blur")
    params:
        dataset_dir=dataset_dir,
        settings=stage_settings("blur"),
        retry=retry_flag,
    shell:
        "vidmine run-stage blur --dataset-dir {params.dataset_dir} --threads {threads}"
        " --shard {wildcards.shard} --settings {params.settings} {params.retry} > {log} 2>&1"


rule audit:
    input:
        unpack(stage_inputs("audit")),
    output:
        audit="results/{dataset}/tables/audit/{shard}.parquet",
        status="results/{dataset}/status/audit/{shard}.parquet",
    log:
        "results/{dataset}/logs/audit/{shard}.log",
    group:
        "shard_video"
    conda:
        "../envs/privacy.yaml"
    threads: stage_threads("audit")
    params:
        dataset_dir=dataset_dir,
        settings=stage_settings("blur", "audit"),
        retry=retry_flag,
    shell:
        "vidmine run-stage audit --dataset-dir {params.dataset_dir} --threads {threads}"
        " --shard {wildcards.shard} --settings {params.settings} {params.retry} > {log} 2>&1"
