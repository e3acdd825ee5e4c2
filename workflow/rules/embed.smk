# VPD's pose embeddings (docs/embed.md): the VIPE* teacher trained on 3D takes seen by random
# cameras, its features of every released track (the VPD export's pose folders), the student
# distilled from them on the tracks' crops and flow, its features, and the measured table.
# Settings: the dataset's `embed:` config section. Trainers checkpoint every epoch to a resume
# file (not an output, so Snakemake never deletes it); after a kill or preemption,
# `--rerun-incomplete` reruns the job and it resumes from there. GPUs: the rules ask for none,
# so local runs never wait for one; profiles/slurm gives the trainers `gpu: 1`, and they then
# use CUDA by themselves.


rule train_teacher:
    input:
        data=embed_teacher_data_files,
    output:
        model="results/{dataset}/embed/teacher.pt",
    log:
        "results/{dataset}/logs/embed/train_teacher.log",
    conda:
        "../envs/lifter.yaml"
    threads: embed_resource("threads", 2)
    resources:
        mem_mb=embed_resource("mem_mb", 8000),
        runtime=embed_resource("runtime", 720),
        gpu=0,
    params:
        resume="results/{dataset}/embed/teacher.resume.pt",
        settings=embed_settings_json,
    shell:
        "vidmine embed train-teacher --out {output.model} --resume {params.resume}"
        " --settings {params.settings} --threads {threads} > {log} 2>&1"


rule apply_teacher:
    input:
        model="results/{dataset}/embed/teacher.pt",
        vpd="results/{dataset}/export/vpd",
    output:
        directory("results/{dataset}/embed/teacher_features"),
    log:
        "results/{dataset}/logs/embed/apply_teacher.log",
    conda:
        "../envs/lifter.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=120,
        gpu=0,
    shell:
        "vidmine embed apply-teacher --model {input.model} --pose-dir {input.vpd}/pose"
        " --out-dir {output} > {log} 2>&1"


rule train_student:
    input:
        vpd="results/{dataset}/export/vpd",
        teacher="results/{dataset}/embed/teacher_features",
    output:
        model="results/{dataset}/embed/student.pt",
    log:
        "results/{dataset}/logs/embed/train_student.log",
    conda:
        "../envs/lifter.yaml"
    threads: embed_resource("threads", 2)
    resources:
        mem_mb=embed_resource("mem_mb", 8000),
        runtime=embed_resource("runtime", 720),
        gpu=0,
    params:
        resume="results/{dataset}/embed/student.resume.pt",
        settings=embed_settings_json,
    shell:
        "vidmine embed train-student --crops-dir {input.vpd}/crops --teacher-dir {input.teacher}"
        " --out {output.model} --resume {params.resume} --settings {params.settings}"
        " --threads {threads} > {log} 2>&1"


rule apply_student:
    input:
        model="results/{dataset}/embed/student.pt",
        vpd="results/{dataset}/export/vpd",
    output:
        directory("results/{dataset}/embed/student_features"),
    log:
        "results/{dataset}/logs/embed/apply_student.log",
    conda:
        "../envs/lifter.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=120,
        gpu=0,
    shell:
        "vidmine embed apply-student --model {input.model} --crops-dir {input.vpd}/crops"
        " --out-dir {output} > {log} 2>&1"


rule evaluate_embed:
    input:
        teacher="results/{dataset}/embed/teacher.pt",
        student="results/{dataset}/embed/student.pt",
        teacher_features="results/{dataset}/embed/teacher_features",
        student_features="results/{dataset}/embed/student_features",
        vpd="results/{dataset}/export/vpd",
        manifest="results/{dataset}/manifest.parquet",
    output:
        metrics="results/{dataset}/embed/metrics.json",
        plot=report(
            "results/{dataset}/embed/few_shot.png",
            caption="../report/embed_plot.rst",
            category="{dataset}",
            subcategory="9 Pose embeddings",
            labels={"item": "few-shot accuracy against shots"},
        ),
    log:
        "results/{dataset}/logs/embed/evaluate.log",
    conda:
        "../envs/lifter.yaml"
    threads: embed_resource("threads", 2)
    resources:
        mem_mb=embed_resource("mem_mb", 8000),
        runtime=120,
        gpu=0,
    params:
        settings=embed_settings_json,
    shell:
        "vidmine embed evaluate --teacher {input.teacher} --student {input.student}"
        " --teacher-features {input.teacher_features}"
        " --student-features {input.student_features} --pose-dir {input.vpd}/pose"
        " --manifest {input.manifest} --settings {params.settings} --threads {threads}"
        " --out-json {output.metrics} --out-plot {output.plot} > {log} 2>&1"


rule report_embed:
    input:
        metrics="results/{dataset}/embed/metrics.json",
        plot="results/{dataset}/embed/few_shot.png",
    output:
        report(
            "results/{dataset}/report/embed.html",
            caption="../report/embed_page.rst",
            category="{dataset}",
            subcategory="9 Pose embeddings",
            labels={"item": "retrieval, few-shot and student agreement (tables)"},
        ),
    log:
        "results/{dataset}/logs/embed/report.log",
    conda:
        "../envs/lifter.yaml"
    threads: 1
    shell:
        "vidmine embed report --metrics {input.metrics} --plot {input.plot} --out {output}"
        " > {log} 2>&1"
