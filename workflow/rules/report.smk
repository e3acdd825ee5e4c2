# Report items for `snakemake --report`. No item shows private-zone pixels.


rule report_items:
    input:
        download_report=RESULTS + "/{dataset}/download_report.parquet",
        clips=RESULTS + "/{dataset}/clips.parquet",
        scenecut=per_shard(status_path("scenecut")),
    output:
        download=report(
            RESULTS + "/{dataset}/report/download_summary.html",
            caption="../report/download.rst",
            category="{dataset}",
            subcategory="Download",
        ),
        clips=report(
            RESULTS + "/{dataset}/report/clips.html",
            caption="../report/clips.rst",
            category="{dataset}",
            subcategory="Scene cut",
        ),
        shots=report(
            RESULTS + "/{dataset}/report/shots.png",
            caption="../report/shots.rst",
            category="{dataset}",
            subcategory="Scene cut",
        ),
    log:
        LOGS + "/report_items.log",
    conda:
        "../envs/video.yaml"
    shell:
        "vidmine report-items --download-report {input.download_report} --clips {input.clips}"
        " --download-html {output.download} --clips-html {output.clips}"
        " --shots-png {output.shots} {input.scenecut} > {log} 2>&1"
