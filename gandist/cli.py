"""gandist command line: thin entry points over the package (train, submit, shard, inspect, export, sample,
evaluate, report). Each command's parser is declared beside it (``@command``); ``build_parser`` builds
them all, in the order ``gandist --help`` lists them."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any, Callable, Optional, Sequence, Union

from gandist import __version__
from gandist.ckpt import CheckpointError
from gandist.config import GROUPS, Config, ConfigError, absolutize, compose_config, group_options, iter_fields
from gandist.console import ProgressLine
from gandist.data.layouts import LAYOUTS, SOURCES_HELP
from gandist.data.pairs import DIRECTIONS, PAIRS, TARGET_MODES

Handler = Callable[[argparse.Namespace], int]
Argument = tuple[tuple[str, ...], dict[str, Any]]  # add_argument's positional and keyword arguments
# Every command in the order `gandist --help` lists them: (name, handler, add_parser's settings, arguments).
COMMANDS: list[tuple[str, Handler, dict[str, Any], tuple[Argument, ...]]] = []


def arg(*flags: str, **settings: Any) -> Argument:
    return flags, settings


def command(name: str, help: str, description: str, *args: Argument,
            epilog: Union[str, Callable[[], str], None] = None, raw: bool = False) -> Callable[[Handler], Handler]:
    """Register the decorated function as `gandist <name>`, its parser declared here beside it. ``epilog``
    may be a function (text built when the parser is); ``raw`` keeps the description's and epilog's line
    breaks."""
    def register(func: Handler) -> Handler:
        settings = dict(help=help, description=description, epilog=epilog)
        if raw:
            settings["formatter_class"] = argparse.RawDescriptionHelpFormatter
        COMMANDS.append((name, func, settings, args))
        return func
    return register


SOURCE = arg("source", metavar="RUN_OR_CHECKPOINT")
BEST = arg("--best", action="store_true",
           help="from a run directory, take its best checkpoint by the evaluation score its meta.json records "
                "(trainer.best_metric; see trainer.keep_best) instead of the latest")
DEVICE = arg("--device", default="auto", help="auto (a GPU if there is one) | cpu | cuda[:N]")

EXAMPLE = ("gandist train task=segment data.url=runs/data/shapes trainer.num_workers=2 "
           "trainer.max_steps=200 trainer.ckpt_every=50 run.name=demo run.storage=runs/store")


def train_help() -> str:
    lines = ["Config groups (pick one option each, e.g. task=segment):"]
    for group in GROUPS:
        lines.append(f"  {group:8s} {' | '.join(group_options(group))}")
    lines.append("")
    lines.append("Settings (section.key=value; defaults shown, before the chosen groups apply theirs):")
    for key, type_name, default, doc in iter_fields():
        setting = f"{key}={'null' if default is None else default}"
        lines.append(f"  {setting:<36} {doc} [{type_name}]")
    lines += ["", "Example:", f"  {EXAMPLE}", "",
              "Running again with the same run.name resumes from the run's latest checkpoint."]
    return "\n".join(lines)


@command("train", "train a GAN (Hydra overrides: task=segment trainer.max_steps=200 ...)",
         "Train a GAN on a shard set with DDP workers under Ray Train (or torchrun, or one process). Settings "
         "are Hydra overrides of configs/.",
         arg("overrides", nargs="*", metavar="KEY=VALUE", help="config overrides"),
         arg("--dry-run", action="store_true", help="print the resolved config and exit"),
         epilog=train_help, raw=True)
def cmd_train(args: argparse.Namespace) -> int:
    import yaml

    from gandist.data.manifest import Manifest
    from gandist.launchers import launch
    from gandist.data.checks import check_data_fits
    from gandist.credentials import check_credentials, storage_settings
    from gandist.launchers.common import configure_logging

    configure_logging()  # before composing: its notes (a renamed key) go to stderr like every other line
    cfg = absolutize(compose_config(args.overrides))
    if args.dry_run:
        print(yaml.safe_dump(cfg.to_dict(), sort_keys=False), end="")
        return 0
    os.environ.update(storage_settings(cfg))  # storage.endpoint_url for this process too
    check_credentials(cfg, "the driver (gandist train)")
    manifest = Manifest.load(cfg.data.url)  # fail in seconds, not after workers start
    check_data_fits(cfg, manifest)
    manifest.check_shards("train")
    summary = launch(cfg)
    if summary.is_chief:
        print_summary(cfg, summary)
    return 0


def print_summary(cfg: Config, summary) -> None:
    from gandist.tags import SUMMARY, label

    print(f"\nRun {cfg.run.name!r} finished at step {summary.step}.")
    rows = [("run directory", summary.run_dir), ("checkpoint", summary.checkpoint or "(none)"),
            ("samples", os.path.join(os.path.dirname(summary.log_dir), "samples"))]
    rows += [(label(tag), f"{summary.metrics[tag]:.4g}") for tag in SUMMARY if tag in summary.metrics]
    bin_dir = command_prefix()
    rows += [("TensorBoard", f"{bin_dir}tensorboard --logdir {summary.log_dir}"),
             ("export", f"{bin_dir}gandist export {summary.run_dir} {summary.run_dir}/generator.pt"),
             ("sample", f"{bin_dir}gandist sample {summary.run_dir} --out {summary.run_dir}/grid.png"),
             ("report", f"{bin_dir}gandist report {summary.run_dir}")]
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        print(f"  {name:<{width}} : {value}")


def command_prefix() -> str:
    """How to call gandist's own commands from the user's shell: bare when this environment's
    bin/ is on PATH, else its path (e.g. .venv/bin/, which `make demo` does not activate)."""
    import shutil

    bin_dir = os.path.dirname(sys.executable)
    found = shutil.which("gandist")
    if found and os.path.samefile(os.path.dirname(found), bin_dir):
        return ""
    relative = os.path.relpath(bin_dir)
    return (bin_dir if relative.startswith("..") else relative) + os.sep


@command("shard", "write a dataset as WebDataset tar shards plus manifest.json",
         "Write SOURCE as tar shards and a manifest.json under DEST (a local path or any fsspec URL). The "
         "manifest is written last; an existing shard set is never touched.",
         arg("source", metavar="SOURCE"),
         arg("dest", metavar="DEST"),
         arg("--samples", type=int, default=None,
             help="training samples (default: all of a folder or digits; 4096 for shapes)"),
         arg("--heldout", type=int, default=None,
             help="held-out samples for evaluation (default 5%%, at most 500; 0 for none)"),
         arg("--shard-size", type=int, default=1000, help="samples per shard (default 1000)"),
         arg("--size", type=int, default=64, help="image side in pixels (default 64)"),
         arg("--seed", type=int, default=0, help="seed for generation and splits (default 0)"),
         arg("--layout", default="auto", choices=LAYOUTS,
             help="how a folder SOURCE is organised (default auto)"),
         arg("--classes", default=None,
             help="class names, comma-separated or a file with one per line (`name` or `name R G B` for colour "
                  "masks), class 0 first"),
         arg("--direction", default="AtoB", choices=DIRECTIONS,
             help="pairs: AtoB = A (the left half, or A/) is the input, B the target (default)"),
         arg("--pairs", default=None, choices=PAIRS,
             help="what B of a pair becomes: mask (class ids by --classes colours, task=segment; the pix2pix "
                  "layout's default) or image (task=translate; the pairs layout's)"),
         arg("--target-mode", default="RGB", choices=TARGET_MODES,
             help="--pairs image: B's channels, RGB (default), L (greyscale) or RGBA"),
         arg("--strict", action="store_true", help="stop at the first unusable input file"),
         arg("--workers", type=int, default=None, help="threads writing shards (default 2 x cores, max 8)"),
         arg("--if-missing", action="store_true",
             help="do nothing (exit 0) when DEST already holds a complete shard set, whatever it was written "
                  "from: for job entrypoints that run again on a retry"),
         epilog=SOURCES_HELP, raw=True)
def cmd_shard(args: argparse.Namespace) -> int:
    from gandist.data.shards import existing_shard_set, write_shard_set
    from gandist.data.sources import parse_classes
    from gandist.data.verify import written

    manifest = existing_shard_set(args.dest) if args.if_missing else None
    if manifest is not None:
        samples = ", ".join(f"{split} {info['samples']}" for split, info in manifest.splits.items())
        print(f"{args.dest} already holds a shard set ({samples} samples, image size {manifest.image_size}): "
              "nothing written (--if-missing)")
        return 0
    with ProgressLine("writing samples") as progress:
        manifest = write_shard_set(args.source, args.dest, samples=args.samples, heldout=args.heldout,
                                   shard_size=args.shard_size, size=args.size, seed=args.seed,
                                   layout=args.layout, classes=parse_classes(args.classes),
                                   direction=args.direction, strict=args.strict, workers=args.workers,
                                   pairs=args.pairs, target_mode=args.target_mode, progress=progress)
    print("\n".join(written(manifest, args.dest)))
    return 0


@command("submit", "run `gandist train` as a job on a Ray cluster (ray job submit)",
         "Submit `gandist train KEY=VALUE...` as a Ray job to the cluster at --address, with "
         "launch/runtime_env.yaml (this checkout as the working directory) and the shell's object-store settings "
         "(AWS_ENDPOINT_URL, region, AWS_PROFILE; never credentials: Ray shows a job's environment in its logs "
         "and dashboard). The job takes object-store credentials where the cluster's nodes have them (their "
         "environment, a mounted ~/.aws/credentials, an instance or service-account role, the Kubernetes "
         "Secret). Prints the job id and the commands to follow, stop and resume it; submitting again with the "
         "same run.name resumes from its checkpoints.",
         arg("overrides", nargs="*", metavar="KEY=VALUE", help="gandist train overrides"),
         arg("--address", default=None,
             help="the cluster's job API, http://<head>:8265 (default $RAY_ADDRESS or local)"),
         arg("--runtime-env", default=None,
             help="runtime_env YAML (default launch/runtime_env.yaml of this checkout)"),
         arg("--wait", action="store_true", help="wait for the job to end; exit 0 only if it succeeded"),
         epilog="Example: gandist submit --address http://head:8265 task=segment data.url=s3://bucket/shapes "
                "run.storage=s3://bucket/runs run.name=exp1 trainer.max_failures=3")
def cmd_submit(args: argparse.Namespace) -> int:
    from gandist.launchers.submit import default_runtime_env, follow_up, paths_for_cluster, submit, wait

    address = args.address or os.environ.get("RAY_ADDRESS", "http://127.0.0.1:8265")
    cfg = compose_config(args.overrides)  # a bad override fails here, not on the cluster
    cfg, overrides, note = paths_for_cluster(cfg, args.overrides)
    if note:
        print(note)
    sub = submit(cfg, overrides, address, args.runtime_env or default_runtime_env())
    print(f"Submitted run {cfg.run.name!r} to {address}: {sub.entrypoint}")
    if sub.passed_env:
        print(f"object-store settings passed to the job: {', '.join(sub.passed_env)} (credentials are the "
              "cluster's own, never sent)")
    print("\n".join(follow_up(sub, cfg)))
    if not args.wait:
        return 0
    status = wait(address, sub.job_id)
    print(f"job {sub.job_id}: {status}")
    return 0 if status == "SUCCEEDED" else 1


@command("inspect", "summarise a shard set; --verify checks every shard's checksum",
         "Print a shard set's task, classes, image size, samples, shards and bytes. With --verify, read every "
         "shard and check its size and sha256 against the manifest; exit 1 naming each bad shard.",
         arg("url", metavar="URL", help="shard set root (local path or fsspec URL)"),
         arg("--verify", action="store_true", help="check every shard's size and sha256"))
def cmd_inspect(args: argparse.Namespace) -> int:
    from gandist.data.manifest import Manifest
    from gandist.data.verify import summary, verify

    manifest = Manifest.load(args.url)
    print("\n".join(summary(manifest)))
    if not args.verify:
        return 0
    with ProgressLine("verifying shards") as progress:
        problems = verify(manifest, progress=progress)
    for line in problems:
        print(f"BAD {line}")
    shards = sum(len(info["shards"]) for info in manifest.splits.values())
    print(f"verify: {shards - len(problems)} of {shards} shards intact")
    return 1 if problems else 0


@command("export", "write a run's EMA generator (state_dict + config) to a .pt file",
         "Export the EMA generator of a checkpoint. Given a run directory (<run.storage>/<run.name>) it uses the "
         "run's latest checkpoint.",
         SOURCE, arg("out", metavar="OUT.pt"), BEST)
def cmd_export(args: argparse.Namespace) -> int:
    from gandist.inference.export import export_generator

    meta = export_generator(args.source, args.out, best=args.best)
    print(f"Exported the EMA generator of step {meta['step']} ({meta['task']}, {meta['arch']}) "
          f"from {meta['checkpoint']} to {args.out}")
    return 0


@command("sample", "write a PNG grid of EMA G's samples (generate), predictions (segment) or translations; "
                   "translate a folder of images",
         "Load EMA G from a checkpoint (a run directory means its latest checkpoint; s3:// and other fsspec URLs "
         "work) and write a grid: generated images from fixed noise, or input | target | prediction rows (input "
         "| prediction for a folder of images). task=translate with --data FOLDER of A images: every image is "
         "translated and written to the folder --out as <name>.png (B at the model's resolution).",
         SOURCE,
         arg("--n", type=int, default=64, help="images in the grid (default 64)"),
         arg("--out", default="grid.png", help="PNG path or fsspec URL (default grid.png); translate with a "
             "folder --data: the folder the B images go to"),
         arg("--data", default=None, help="segment, translate: a shard set or a folder of images (default: the "
             "run's data.url, held-out split)"),
         arg("--seed", type=int, default=0, help="generate: noise seed (default 0)"),
         BEST, DEVICE)
def cmd_sample(args: argparse.Namespace) -> int:
    from gandist.inference.sample import write_samples
    from gandist.inference.saved_run import load_run, pick_device

    run = load_run(args.source, device=pick_device(args.device), best=args.best)
    what = write_samples(run, args.out, n=args.n, data=args.data, seed=args.seed)
    print(f"Wrote {what} at step {run.step} from {run.checkpoint} to {args.out}")
    return 0


@command("evaluate", "score EMA G of a checkpoint: FID/KID or the offline distances; mIoU; L1/PSNR/SSIM",
         "Evaluate a checkpoint's G (a run directory means its latest; EMA G, or the live G under "
         "eval.g_mode=train_mode) exactly as training does: generate -> Frechet and kernel distances on "
         "eval.features (randconv offline, or inception with eval.inception_weights=PATH); segment -> per-class "
         "IoU, mIoU, pixel accuracy on the held-out split; translate -> L1, PSNR, SSIM against the true B, the "
         "distances of the generated B, and with eval.segmenter=RUN the segmenter's mIoU on them. Prints a "
         "table and writes JSON.",
         SOURCE,
         arg("overrides", nargs="*", metavar="KEY=VALUE", help="data.* and eval.* overrides"),
         arg("--json", default=None, help="where to write the scores (default: <run dir>/eval_<run>_step<N>.json, "
             "beside the checkpoint)"),
         BEST, DEVICE,
         epilog="Overrides: data.url=..., data.eval_split=..., eval.samples=..., eval.batches=..., "
                "eval.features=..., eval.inception_weights=..., eval.segmenter=..., eval.g_mode=..., "
                "eval.bn_batches=..., eval.live=... (the model comes from the checkpoint).")
def cmd_evaluate(args: argparse.Namespace) -> int:
    import math

    from gandist.inference.evaluate import evaluate_run, write_scores
    from gandist.inference.saved_run import load_run, pick_device
    from gandist.launchers.common import configure_logging

    configure_logging()
    device = pick_device(args.device)
    run = load_run(args.source, args.overrides, device=device, best=args.best)
    scores = evaluate_run(run, device)
    print(f"Evaluation of {run.checkpoint} (step {run.step}, {run.cfg.task.name}) on {run.cfg.data.url}:")
    for key, value in scores.items():
        print(f"  {key:<32} {'nan' if math.isnan(value) else f'{value:.4f}'}")
    print(f"Wrote {write_scores(run, scores, args.json)}")
    return 0


@command("report", "a run's attempts and goodput: where its time went",
         "Print a run's attempts as a timeline (start, end, steps, the step each resumed from, steps lost and "
         "recovery time after a failure, the cause when known) and where all of its time since the first start "
         "went (productive steps, data wait, checkpoints, evaluation, start-up, replayed steps, recovery, "
         "rollbacks), from <run dir>/goodput.json. Works while the run is going (figures up to its last record, "
         "seconds old).",
         arg("run", metavar="RUN", help="the run directory, <run.storage>/<run.name> (local or fsspec URL)"),
         epilog="Example: gandist report runs/store/demo   or   gandist report s3://bucket/runs/exp1")
def cmd_report(args: argparse.Namespace) -> int:
    from gandist.inference.report import read_report

    print(read_report(args.run.rstrip("/")))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gandist",
        description="Distributed GAN training on Ray Train: image generation (DCGAN, R3GAN), "
                    "segmentation (a U-Net with an adversarial critic, or pix2pix) and image-to-image "
                    "translation (pix2pix), from WebDataset shards.",
        epilog="Typical use: gandist shard builtin:shapes runs/data/shapes, then "
               "gandist train task=segment data.url=runs/data/shapes run.name=first. "
               "Each command has its own --help.",
    )
    parser.add_argument("--version", action="version", version=f"gandist {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, func, settings, args in COMMANDS:
        epilog = settings["epilog"]
        p = sub.add_parser(name, **{**settings, "epilog": epilog() if callable(epilog) else epilog})
        for flags, kwargs in args:
            p.add_argument(*flags, **kwargs)
        p.set_defaults(func=func)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (ConfigError, CheckpointError, FileNotFoundError, ValueError) as e:
        print(f"gandist {args.command}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
