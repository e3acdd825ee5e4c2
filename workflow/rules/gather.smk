# Dataset-level gathers: the dataset files users ask for, one Snakemake target each.
# They only concatenate small tables: run them on the submitting node, not as sbatch jobs.


localrules:
    clip_table,
    download_report,
    released_clips,


rule clip_table:
    input:
        per_shard("results/{dataset}/tables/clips/{shard}.parquet"),
    output:
        "results/{dataset}/clips.parquet",
    log:
        "results/{dataset}/logs/clip_table.log",
    conda:
        "../envs/video.yaml"
    threads: 1
    shell:
        "vidmine gather-clips --out {output} {input} > {log} 2>&1"


rule download_report:
    input:
        manifest=rules.manifest.output.manifest,
        statuses=per_shard("results/{dataset}/status/download/{shard}.parquet"),
    output:
        "results/{dataset}/download_report.parquet",
    log:
        "results/{dataset}/logs/download_report.log",
    conda:
        "../envs/video.yaml"
    threads: 1
    shell:
        "vidmine download-report --manifest {input.manifest} --out {output}"
        " {input.statuses} > {log} 2>&1"


rule released_clips:
    input:
        clips=per_shard("results/{dataset}/tables/clips/{shard}.parquet"),
        scores=per_shard("results/{dataset}/tables/scores/{shard}.parquet"),
        audit=per_shard("results/{dataset}/status/audit/{shard}.parquet"),
    output:
        "results/{dataset}/released_clips.parquet",
    log:
        "results/{dataset}/logs/released_clips.log",
    conda:
        "../envs/video.yaml"
    threads: 1
    shell:
        "vidmine gather-released --out {output} --clips {input.clips}"
        " --scores {input.scores} --audit {input.audit} > {log} 2>&1"
