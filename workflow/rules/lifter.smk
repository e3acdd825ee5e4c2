# VideoPose3D 2D -> 3D lifter: train on the dataset's lifter data, evaluate, report.
# Settings: the dataset's `lifter:` config section (docs/lifter.md). Training checkpoints every
# epoch to results/{dataset}/lifter/resume.pt (not an output, so Snakemake never deletes it);
# after a kill or preemption, `--rerun-incomplete` reruns the job and it resumes from there.
# GPUs: the rule asks for none, so local runs never wait for one; profiles/slurm's
# set-resources gives train_lifter `gpu: 1` and the trainer then uses CUDA by itself.
# lift_tracks lifts every exported 2D person track (VideoPose3D custom npz) to 3D with
# lifter.lift_model: the dataset's own model (`trained`, the default), VideoPose3D's published
# in-the-wild model (`videopose3d_coco`, from the weights cache: `vidmine fetch-weights`), or a
# checkpoint file.


rule train_lifter:
    input:
        data=lifter_data_files,
    output:
        model="results/{dataset}/lifter/model.pt",
    log:
        "results/{dataset}/logs/lifter/train.log",
    conda:
        "../envs/lifter.yaml"
    threads: lambda wildcards: lifter_settings(wildcards.dataset).get("threads", 2)
    resources:
        mem_mb=lifter_resource("mem_mb", 8000),
        runtime=lifter_resource("runtime", 720),
        gpu=0,
    params:
        resume="results/{dataset}/lifter/resume.pt",
        settings=lifter_settings_json,
    shell:
        "vidmine lifter train --out {output.model} --resume {params.resume}"
        " --settings {params.settings} --threads {threads} > {log} 2>&1"


rule evaluate_lifter:
    input:
        model="results/{dataset}/lifter/model.pt",
        data=lifter_data_files,
    output:
        metrics="results/{dataset}/lifter/metrics.json",
        plot=report(
            "results/{dataset}/lifter/metrics.png",
            caption="../report/lifter_plot.rst",
            category="{dataset}",
            subcategory="8 Lifter",
            labels={"item": "errors per action and training curve"},
        ),
    log:
        "results/{dataset}/logs/lifter/evaluate.log",
    conda:
        "../envs/lifter.yaml"
    threads: 1
    resources:
        mem_mb=lifter_resource("mem_mb", 8000),
        runtime=60,
        gpu=0,
    params:
        settings=lifter_settings_json,
    shell:
        "vidmine lifter evaluate --model {input.model} --settings {params.settings}"
        " --out-json {output.metrics} --out-plot {output.plot} > {log} 2>&1"


rule lift_tracks:
    input:
        unpack(lift_model_input),
        tracks="results/{dataset}/export/data_2d_custom_{dataset}.npz",
        videos="results/{dataset}/export/videopose3d_videos",
    output:
        lifted=directory("results/{dataset}/lifter/lifted"),
        gif="results/{dataset}/report/lifted_track.gif",
    log:
        "results/{dataset}/logs/lifter/lift.log",
    conda:
        "../envs/lifter.yaml"
    threads: 1
    resources:
        mem_mb=lifter_resource("mem_mb", 8000),
        runtime=120,
        gpu=0,
    params:
        model=lift_model_arg,
        checks=lift_extra_args,
    shell:
        "vidmine lifter lift --model {params.model} {params.checks} --input {input.tracks}"
        " --videos {input.videos} --out-dir {output.lifted} --report-gif {output.gif}"
        " > {log} 2>&1"


rule report_lifter:
    input:
        unpack(lifter_report_inputs),
    output:
        report(
            "results/{dataset}/report/lifter.html",
            caption="../report/lifter_page.rst",
            category="{dataset}",
            subcategory="8 Lifter",
            labels={"item": "lifted track and test errors"},
        ),
    log:
        "results/{dataset}/logs/lifter/report.log",
    conda:
        "../envs/lifter.yaml"
    threads: 1
    params:
        metrics=lambda wildcards, input: (
            f"--metrics {input.metrics}" if "metrics" in input.keys() else ""
        ),
    shell:
        "vidmine lifter report --gif {input.gif} --lifted {input.lifted} {params.metrics}"
        " --out {output} > {log} 2>&1"
