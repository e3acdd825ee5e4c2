# Exports: each a single target file or folder under results/{dataset}/export/, in the formats
# researchers' training code already reads (docs/formats/README.md), built from released
# pixels only.


rule export_videopose3d:
    input:
        tracks="results/{dataset}/tracks.parquet",
        released="results/{dataset}/released_clips.parquet",
    output:
        npz="results/{dataset}/export/data_2d_custom_{dataset}.npz",
        videos=directory("results/{dataset}/export/videopose3d_videos"),
    log:
        "results/{dataset}/logs/export/videopose3d.log",
    conda:
        "../envs/export.yaml"
    threads: 1
    params:
        dataset_dir=dataset_dir,
        min_score=lambda wildcards: export_setting(
            wildcards, "videopose3d", "min_keypoint_score"
        ),
    shell:
        "vidmine export videopose3d --dataset-dir {params.dataset_dir}"
        " --name {wildcards.dataset} --out {output.npz} --videos {output.videos}"
        " --min-keypoint-score {params.min_score} > {log} 2>&1"


rule export_folder:
    input:
        unpack(export_inputs),
    output:
        directory("results/{dataset}/export/{kind}"),
    log:
        "results/{dataset}/logs/export/{kind}.log",
    wildcard_constraints:
        kind="|".join(EXPORT_FOLDERS),
    conda:
        export_env
    threads: 1
    params:
        dataset_dir=dataset_dir,
        extra=export_extra_args,
    shell:
        "vidmine export {wildcards.kind} --dataset-dir {params.dataset_dir} {params.extra}"
        " --out {output} > {log} 2>&1"


rule export_index:
    input:
        tracks="results/{dataset}/tracks.parquet",
        released="results/{dataset}/released_clips.parquet",
        crops="results/{dataset}/crops.parquet",
        manifest="results/{dataset}/manifest.parquet",
        clips="results/{dataset}/clips.parquet",
        statuses=provenance_statuses,
    output:
        "results/{dataset}/export/index.parquet",
    log:
        "results/{dataset}/logs/export/index.log",
    conda:
        "../envs/export.yaml"
    threads: 1
    params:
        dataset_dir=dataset_dir,
        config_hash=config_hash,
    shell:
        "vidmine export index --dataset-dir {params.dataset_dir}"
        " --config-hash {params.config_hash} --out {output} > {log} 2>&1"
