# Report items for `snakemake --report`. No item shows private-zone pixels.


rule report_items:
    input:
        download_report="results/{dataset}/download_report.parquet",
        clips="results/{dataset}/clips.parquet",
        scenecut=per_shard("results/{dataset}/status/scenecut/{shard}.parquet"),
    output:
        download=report(
            "results/{dataset}/report/download_summary.html",
            caption="../report/download.rst",
            category="{dataset}",
            subcategory="Download",
        ),
        clips=report(
            "results/{dataset}/report/clips.html",
            caption="../report/clips.rst",
            category="{dataset}",
            subcategory="Scene cut",
        ),
        shots=report(
            "results/{dataset}/report/shots.png",
            caption="../report/shots.rst",
            category="{dataset}",
            subcategory="Scene cut",
        ),
    log:
        "results/{dataset}/logs/report_items.log",
    conda:
        "../envs/video.yaml"
    shell:
        "vidmine report-items --download-report {input.download_report} --clips {input.clips}"
        " --download-html {output.download} --clips-html {output.clips}"
        " --shots-png {output.shots} {input.scenecut} > {log} 2>&1"


rule report_privacy:
    input:
        clips="results/{dataset}/clips.parquet",
        released="results/{dataset}/released_clips.parquet",
        scores=per_shard("results/{dataset}/tables/scores/{shard}.parquet"),
        faces=per_shard("results/{dataset}/tables/faces/{shard}.parquet"),
        audit=per_shard("results/{dataset}/tables/audit/{shard}.parquet"),
    output:
        filter=report(
            "results/{dataset}/report/filter.html",
            caption="../report/filter.rst",
            category="{dataset}",
            subcategory="Filter",
        ),
        dropped=report(
            "results/{dataset}/report/dropped_examples.png",
            caption="../report/dropped.rst",
            category="{dataset}",
            subcategory="Filter",
        ),
        blur=report(
            "results/{dataset}/report/blur_examples.png",
            caption="../report/blur.rst",
            category="{dataset}",
            subcategory="Privacy",
        ),
        audit=report(
            "results/{dataset}/report/audit.html",
            caption="../report/audit.rst",
            category="{dataset}",
            subcategory="Privacy",
        ),
    log:
        "results/{dataset}/logs/report_privacy.log",
    conda:
        "../envs/privacy.yaml"
    params:
        dataset_dir=dataset_dir,
        blur=stage_settings("blur"),
    shell:
        "vidmine report-privacy --dataset-dir {params.dataset_dir} --clips {input.clips}"
        " --released {input.released} --blur-settings {params.blur}"
        " --scores {input.scores} --faces {input.faces} --audit {input.audit}"
        " --filter-html {output.filter} --audit-html {output.audit}"
        " --dropped-png {output.dropped} --blur-png {output.blur} > {log} 2>&1"
