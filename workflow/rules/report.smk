# Report items for `snakemake --report`: the funnel, then one rule per stage that has items. The
# report sorts subcategories and items by name, so each subcategory starts with its place in the
# pipeline ("1 Funnel" ... "7 Crops and flow"; the lifter's comes last) and each item has a
# readable label. No item reads the private zone: pictures come from released clips, everything
# else from tables. The landing page is report/workflow.rst (the Snakefile's report directive).


rule report_funnel:
    input:
        unpack(funnel_inputs),
    output:
        html=report(
            "results/{dataset}/report/funnel.html",
            caption="../report/funnel.rst",
            category="{dataset}",
            subcategory="1 Funnel",
            labels={"item": "funnel: every stage's counts and loss reasons (table)"},
        ),
        png=report(
            "results/{dataset}/report/funnel.png",
            caption="../report/funnel_png.rst",
            category="{dataset}",
            subcategory="1 Funnel",
            labels={"item": "funnel: what every stage passed on (picture)"},
        ),
    log:
        "results/{dataset}/logs/report/funnel.log",
    conda:
        "../envs/video.yaml"
    threads: 1
    params:
        dataset_dir=dataset_dir,
    shell:
        "vidmine report-funnel --dataset-dir {params.dataset_dir} --html {output.html}"
        " --png {output.png} > {log} 2>&1"


rule report_download:
    input:
        download_report="results/{dataset}/download_report.parquet",
    output:
        report(
            "results/{dataset}/report/download_summary.html",
            caption="../report/download.rst",
            category="{dataset}",
            subcategory="2 Download",
            labels={"item": "download outcomes and reasons (table)"},
        ),
    log:
        "results/{dataset}/logs/report/download.log",
    conda:
        "../envs/video.yaml"
    threads: 1
    shell:
        "vidmine report-download --download-report {input.download_report} --out {output}"
        " > {log} 2>&1"


rule report_scenecut:
    input:
        clips="results/{dataset}/clips.parquet",
        statuses=per_shard("results/{dataset}/status/scenecut/{shard}.parquet"),
    output:
        clips=report(
            "results/{dataset}/report/clips.html",
            caption="../report/clips.rst",
            category="{dataset}",
            subcategory="3 Scene cut",
            labels={"item": "clip table: totals and top rows"},
        ),
        shots=report(
            "results/{dataset}/report/shots.png",
            caption="../report/shots.rst",
            category="{dataset}",
            subcategory="3 Scene cut",
            labels={"item": "shots and clips per video (picture)"},
        ),
    log:
        "results/{dataset}/logs/report/scenecut.log",
    conda:
        "../envs/video.yaml"
    threads: 1
    shell:
        "vidmine report-scenecut --clips {input.clips} --clips-html {output.clips}"
        " --shots-png {output.shots} {input.statuses} > {log} 2>&1"


rule report_filter:
    input:
        scores=per_shard("results/{dataset}/tables/scores/{shard}.parquet"),
    output:
        filter=report(
            "results/{dataset}/report/filter.html",
            caption="../report/filter.rst",
            category="{dataset}",
            subcategory="4 Filter",
            labels={"item": "filter decisions, flags and scores (table)"},
        ),
        scores=report(
            "results/{dataset}/report/filter_scores.png",
            caption="../report/filter_scores.rst",
            category="{dataset}",
            subcategory="4 Filter",
            labels={"item": "filter scores and bounds (picture)"},
        ),
    log:
        "results/{dataset}/logs/report/filter.log",
    conda:
        "../envs/video.yaml"
    threads: 1
    params:
        settings=stage_settings("filter"),
    shell:
        "vidmine report-filter --settings {params.settings} --scores {input.scores}"
        " --filter-html {output.filter} --scores-png {output.scores} > {log} 2>&1"


rule report_blur:
    input:
        released="results/{dataset}/released_clips.parquet",
        faces=per_shard("results/{dataset}/tables/faces/{shard}.parquet"),
    output:
        report(
            "results/{dataset}/report/blur_examples.png",
            caption="../report/blur.rst",
            category="{dataset}",
            subcategory="5 Privacy (blur and audit)",
            labels={"item": "blurred faces on released frames (picture)"},
        ),
    log:
        "results/{dataset}/logs/report/blur.log",
    conda:
        "../envs/video.yaml"
    threads: 1
    params:
        dataset_dir=dataset_dir,
    shell:
        "vidmine report-blur --dataset-dir {params.dataset_dir} --released {input.released}"
        " --faces {input.faces} --out {output} > {log} 2>&1"


rule report_audit:
    input:
        audit=per_shard("results/{dataset}/tables/audit/{shard}.parquet"),
        faces=per_shard("results/{dataset}/tables/faces/{shard}.parquet"),
    output:
        report(
            "results/{dataset}/report/audit.html",
            caption="../report/audit.rst",
            category="{dataset}",
            subcategory="5 Privacy (blur and audit)",
            labels={"item": "privacy audit verdict (table)"},
        ),
    log:
        "results/{dataset}/logs/report/audit.log",
    conda:
        "../envs/video.yaml"
    threads: 1
    shell:
        "vidmine report-audit --audit {input.audit} --faces {input.faces} --out {output}"
        " > {log} 2>&1"


rule report_detect:
    input:
        tracks="results/{dataset}/tracks.parquet",
        released="results/{dataset}/released_clips.parquet",
    output:
        examples=report(
            "results/{dataset}/report/track_examples.png",
            caption="../report/tracks.rst",
            category="{dataset}",
            subcategory="6 Tracks",
            labels={"item": "tracks on released frames (picture)"},
        ),
        lengths=report(
            "results/{dataset}/report/track_lengths.png",
            caption="../report/track_lengths.rst",
            category="{dataset}",
            subcategory="6 Tracks",
            labels={"item": "track lengths (picture)"},
        ),
    log:
        "results/{dataset}/logs/report/detect.log",
    conda:
        "../envs/video.yaml"
    threads: 1
    params:
        dataset_dir=dataset_dir,
    shell:
        "vidmine report-detect --dataset-dir {params.dataset_dir} --tracks {input.tracks}"
        " --released {input.released} --examples-png {output.examples}"
        " --lengths-png {output.lengths} > {log} 2>&1"


rule report_flow:
    input:
        crops="results/{dataset}/crops.parquet",
    output:
        report(
            "results/{dataset}/report/crops_flow.png",
            caption="../report/crops_flow.rst",
            category="{dataset}",
            subcategory="7 Crops and flow",
            labels={"item": "person crops and optical flow (picture)"},
        ),
    log:
        "results/{dataset}/logs/report/flow.log",
    conda:
        "../envs/video.yaml"
    threads: 1
    params:
        dataset_dir=dataset_dir,
    shell:
        "vidmine report-flow --dataset-dir {params.dataset_dir} --crops {input.crops}"
        " --out {output} > {log} 2>&1"
