"""``vidmine lifter {train,evaluate,lift}``: the commands the workflow rules shell out to.

Training and data flags are generated from :class:`TrainConfig` / :class:`DataConfig`
(``filter_widths`` -> ``--filter-widths 3,3,3``, booleans -> ``--x/--no-x``), so the CLI,
the config keys and the checkpoint metadata cannot drift apart.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from vidmine.lifter.config import DataConfig, TrainConfig, section_settings
from vidmine.locks import hold, lock_path_for

_FLAG_NAMES = {"source": ("--data", "--source")}
_CHOICES = {
    "source": ("synthetic", "h36m"),
    "input_layout": ("coco", "h36m"),
    "compile": ("off", "on"),
}


def _csv(cast):
    def parse(text: str) -> tuple:
        return tuple(cast(x) for x in text.split(",") if x.strip())

    return parse


def _add_dataclass_flags(parser: argparse.ArgumentParser, cls, title: str) -> None:
    """One flag per field; defaults are suppressed so unset flags keep the dataclass's."""
    group = parser.add_argument_group(title)
    hints = {f.name: f for f in dataclasses.fields(cls)}
    for name, fld in hints.items():
        flags = _FLAG_NAMES.get(name, ("--" + name.replace("_", "-"),))
        kw: dict = {"dest": name, "default": argparse.SUPPRESS}
        default = fld.default
        if isinstance(default, bool):
            kw["action"] = argparse.BooleanOptionalAction
        elif isinstance(default, tuple):
            is_int = name == "filter_widths"
            kw["type"] = _csv(int if is_int else str)
            kw["metavar"] = "A,B,..."
        elif isinstance(default, int | float):
            kw["type"] = type(default)
        elif name == "threads":
            kw["type"] = int
        if name in _CHOICES:
            kw["choices"] = _CHOICES[name]
        kw["help"] = f"default: {_show(default)}"
        group.add_argument(*flags, **kw)


def _show(value) -> str:
    return ",".join(map(str, value)) if isinstance(value, tuple) else str(value)


# Keys of the workflow's `lifter:` config section that are for Snakemake, not for training.
WORKFLOW_KEYS = frozenset(
    {"enabled", "mem_mb", "runtime", "render", "lift_model", "lift_model_sha256", "max_gap"}
)


def _field_names(cls) -> set[str]:
    return {f.name for f in dataclasses.fields(cls)}


def _settings(args: argparse.Namespace) -> dict:
    """The ``--settings`` JSON (a dataset's ``lifter:`` config section), checked for typos."""
    raw = json.loads(args.settings or "{}")
    settings = section_settings(raw)
    unknown = set(settings) - _field_names(TrainConfig) - _field_names(DataConfig) - WORKFLOW_KEYS
    if unknown:
        raise SystemExit(f"vidmine lifter: unknown lifter settings {sorted(unknown)}")
    return settings


def _pick(args: argparse.Namespace, cls) -> dict:
    """Settings JSON overlaid with explicit flags, restricted to ``cls``'s fields."""
    merged = {**_settings(args), **vars(args)}
    return {k: v for k, v in merged.items() if k in _field_names(cls)}


def _cmd_train(args: argparse.Namespace) -> int:
    from vidmine.lifter.train import configure_logging, train

    configure_logging()
    out = Path(args.out)
    resume = None if args.no_resume else Path(args.resume or out.with_suffix(".resume.pt"))
    train_cfg = TrainConfig.from_dict(_pick(args, TrainConfig))
    data_cfg = DataConfig.from_dict(_pick(args, DataConfig))
    with hold(lock_path_for(out)):  # one trainer per model file (docs/cluster.md)
        final = train(train_cfg, data_cfg, out, resume)
    last = final["vidmine"]["history"][-1] if final["vidmine"]["history"] else {}
    print(json.dumps({"model": str(out), "last_epoch": last}, indent=2))
    return 0


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from vidmine.lifter.checkpoint import load_lifter
    from vidmine.lifter.config import load_dataset, subject_split
    from vidmine.lifter.evaluate import check_layout, evaluate, plot_metrics, write_metrics
    from vidmine.lifter.train import configure_logging, select_device

    configure_logging()
    lifter = load_lifter(Path(args.model), input_layout=args.model_layout)
    # An original checkpoint stores no data settings: synthetic 2D in the model's layout.
    stored = lifter.meta.get("fingerprint", {}).get("data", {"input_layout": lifter.input_layout})
    data_cfg = DataConfig.from_dict({**stored, **_pick(args, DataConfig)})
    dataset = load_dataset(data_cfg)
    check_layout(lifter.input_layout, dataset.input_layout.name, args.model)
    device = select_device(args.device)
    metrics = evaluate(
        lifter.model.to(device),
        dataset.select(subject_split(data_cfg)["test"]),
        dataset.input_layout,
        tta=not args.no_tta and _settings(args).get("tta", True),
        device=device,
        model_layout=lifter.input_layout,
    )
    metrics["model"] = {"path": str(args.model), "arch": lifter.meta.get("arch")}
    metrics["data"] = data_cfg.to_dict()
    write_metrics(metrics, Path(args.out_json))
    if args.out_plot:
        plot_metrics(metrics, lifter.meta.get("history", []), Path(args.out_plot))
    print(json.dumps(metrics["overall"], indent=2))
    return 0


def _cmd_lift(args: argparse.Namespace) -> int:
    from vidmine.lifter.lift import lift_custom_file, resolve_lift_model
    from vidmine.lifter.train import configure_logging, select_device

    configure_logging()
    model, published_layout = resolve_lift_model(args.model, args.model_sha256)
    with hold(lock_path_for(Path(args.out_dir))):  # one writer per output folder
        written = lift_custom_file(
            model,
            Path(args.input),
            Path(args.out_dir),
            render=args.render,
            fps=args.fps,
            input_layout=args.model_layout or published_layout,
            device=str(select_device(args.device)),
            max_gap=args.max_gap,
            videos=Path(args.videos) if args.videos else None,
        )
    if args.report_gif:
        from vidmine.lifter.render import copy_or_placeholder_gif

        copy_or_placeholder_gif([p for p in written if p.suffix == ".gif"], Path(args.report_gif))
    print("\n".join(map(str, written)))
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    from vidmine.lifter.report import write_lifter_page

    metrics = Path(args.metrics) if args.metrics else None
    write_lifter_page(Path(args.out), Path(args.gif), Path(args.lifted), metrics)
    return 0


def _add_settings_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--settings",
        help="JSON object of the settings below (the workflow passes a dataset's lifter: "
        "section); explicit flags win",
    )


def _add_commands(sub) -> None:
    p = sub.add_parser("train", help="train a lifter (resumes from --resume when present)")
    p.add_argument("--out", required=True, help="final model (written once, at the end)")
    p.add_argument("--resume", help="per-epoch resume file (default: <out>.resume.pt)")
    p.add_argument("--no-resume", action="store_true", help="neither read nor write one")
    _add_settings_flag(p)
    _add_dataclass_flags(p, TrainConfig, "training")
    _add_dataclass_flags(p, DataConfig, "data")
    p.set_defaults(func=_cmd_train)

    p = sub.add_parser("evaluate", help="metrics JSON (+ plot) on the test subjects")
    p.add_argument("--model", required=True)
    p.add_argument("--out-json", required=True)
    p.add_argument("--out-plot")
    p.add_argument("--no-tta", action="store_true", help="no flip averaging")
    p.add_argument("--device", default="auto")
    p.add_argument("--model-layout", help="2D input layout of an original checkpoint (coco|h36m)")
    _add_settings_flag(p)
    _add_dataclass_flags(p, DataConfig, "data (default: as stored in the model)")
    p.set_defaults(func=_cmd_evaluate)

    p = sub.add_parser("lift", help="lift the tracks of a data_2d_custom npz to 3D")
    p.add_argument(
        "--model",
        required=True,
        help="a checkpoint (vidmine's or VideoPose3D's), or videopose3d_coco: the published "
        "in-the-wild model, downloaded into the weights cache",
    )
    p.add_argument("--model-sha256", help="checksum (or prefix) the model file must have")
    p.add_argument(
        "--max-gap",
        type=int,
        default=12,
        help="frames a track may be lost and still be lifted through; longer gaps split it",
    )
    p.add_argument("--videos", help="the export's videopose3d_videos folder (rendered frames)")
    p.add_argument("--input", required=True, help="data_2d_custom_<name>.npz (COCO-17, px)")
    p.add_argument("--out-dir", required=True)
    p.add_argument("--render", type=int, default=0, help="GIFs for the first N tracks")
    p.add_argument("--fps", type=float, default=25.0)
    p.add_argument("--model-layout", help="2D input layout of an original checkpoint (coco|h36m)")
    p.add_argument("--device", default="auto")
    p.add_argument("--report-gif", help="also copy the first rendered GIF here (report item)")
    p.set_defaults(func=_cmd_lift)

    p = sub.add_parser("report", help="the lifter's report page (GIF and metrics inline)")
    p.add_argument("--gif", required=True, help="the lifted track's GIF (lift --report-gif)")
    p.add_argument("--lifted", required=True, help="lift's output folder")
    p.add_argument("--metrics", help="evaluate's metrics JSON (absent: a published model)")
    p.add_argument("--out", required=True)
    p.set_defaults(func=_cmd_report)


def register(subparsers) -> None:
    """Add ``lifter`` (with train / evaluate / lift) to the main vidmine CLI.

    Each leaf parser sets ``func``; the caller runs ``args.func(args)`` (returns an exit code).
    """
    lifter = subparsers.add_parser("lifter", help="2D -> 3D pose lifter (VideoPose3D)")
    _add_commands(lifter.add_subparsers(dest="lifter_command", required=True))


def main(argv: Sequence[str] | None = None) -> int:
    """Standalone entry point: ``python -m vidmine.lifter.cli train ...``."""
    parser = argparse.ArgumentParser(prog="vidmine lifter", description=__doc__)
    _add_commands(parser.add_subparsers(dest="lifter_command", required=True))
    args = parser.parse_args(argv)
    return int(args.func(args))


__all__ = ["main", "register"]

if __name__ == "__main__":
    sys.exit(main())
