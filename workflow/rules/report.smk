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
