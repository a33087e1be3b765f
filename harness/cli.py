"""``harness`` command line: run, sweep, lookup, list, bench, report, data. Bad input exits 2 with one line, never a
traceback."""
from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from pathlib import Path
from typing import NoReturn, Sequence

from foundation.errors import UserError

EXIT_USAGE = 2
EXIT_DEVIATES = 1  # report --check: a reproduction or a published look-up deviates
EXIT_UNCHECKED = 3  # report --check: something could not be checked (no runs, an unreadable run, no table)
RESUMABLE = ("run", "sweep")  # commands whose interrupted work a re-run continues


class Terminated(Exception):
    """SIGTERM (a scheduler's pre-emption, ``kill``): stop like Ctrl-C, saying so."""


def _terminate(signum: int, frame: object) -> None:
    raise Terminated
SPACE_HELP = "a built-in or installed space, or package.module:Class (default: the default space, `harness list`)"
THREADS_HELP = ("CPU threads (default: $HARNESS_THREADS, else the cores other processes leave free, looked at "
                "again every 10 s: docs/command-line.md)")
SEARCHER_HELP = "a built-in or installed searcher, or package.module:Class (default: DARTS)"


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def _shared_flags() -> tuple[Parser, Parser, Parser]:
    """Flags several commands take, declared once: which configuration (``run``, ``bench``), how searches are
    executed (``run``, ``sweep``), and the data directory."""
    data = Parser(add_help=False)
    data.add_argument("--data-dir", help="the benchmark data directory (default: $HARNESS_DATA, docs/data.md)")
    configuration = Parser(add_help=False)
    configuration.add_argument("--searcher", help=SEARCHER_HELP)
    configuration.add_argument("--space", help=SPACE_HELP)
    configuration.add_argument("--preset", default="paper", help="paper (default), reduced presets: harness list")
    configuration.add_argument("--set", dest="assignments", action="append", default=[], metavar="KEY=VALUE",
                               help="a run field or searcher option (harness list; repeatable)")
    execution = Parser(add_help=False, parents=[data])
    execution.add_argument("--device", default="auto", help="cpu, cuda or auto (default)")
    execution.add_argument("--out", default="results", help="results root (default: results/)")
    execution.add_argument("--seed-batch", type=int, metavar="K",
                           help="seeds of one configuration computed together as one search vectorised over seeds "
                                "(each epoch record names its batch: float64 records equal each alone, float32 ones "
                                "round differently); 1 = one after another (default per device)")
    execution.add_argument("--log", dest="tracking", action="append", default=[], metavar="BACKEND",
                           help="live tracking after every epoch: tensorboard (<run>/tensorboard/) and/or wandb "
                                "(offline unless W&B is configured); repeatable")
    return data, configuration, execution


def build_parser() -> Parser:
    parser = Parser(prog="harness", description="Benchmark differentiable NAS searchers on tabular benchmarks.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)
    data_flag, configuration, execution = _shared_flags()

    run = sub.add_parser("run", help="run searches (resumes unfinished seeds, skips finished ones)",
                         parents=[configuration, execution])
    run.add_argument("--seeds", type=int, help="run seeds 0..N-1")
    run.add_argument("--seed", type=int, action="append", default=[], help="an explicit seed (repeatable)")
    run.add_argument("--epochs", type=int)
    run.add_argument("--threads", type=int, metavar="N", help=THREADS_HELP)
    run.add_argument("--wait", action="store_true",
                     help="if another process is writing a run folder, wait for it instead of refusing")
    run.add_argument("--repair", action="store_true",
                     help="rebuild a damaged run folder's files from the command and its checkpoints (epochs that "
                          "cannot be recovered are re-run)")

    lookup = sub.add_parser("lookup", help="ground truth of one architecture (the space's own flags follow)",
                            epilog="the flags that name the cell are the space's own (its lookup_fields)",
                            parents=[data_flag])
    lookup.add_argument("--space", help=SPACE_HELP)
    lookup.add_argument("--json", action="store_true")

    sub.add_parser("list", help="searchers, spaces and presets")

    bench = sub.add_parser("bench", help="time our search step against the reference implementation",
                           parents=[configuration])
    bench.add_argument("--device", default="auto", help="cpu, cuda or auto (default)")
    bench.add_argument("--threads", type=int, metavar="N", help=THREADS_HELP)
    bench.add_argument("--steps", type=int, default=10, help="search steps per timed round")
    bench.add_argument("--rounds", type=int, default=3)
    bench.add_argument("--seeds", type=int, default=1,
                       help="also time K seeds computed together (batched) vs one after another")
    bench.add_argument("--no-reference", action="store_true", help="time only our step")
    bench.add_argument("--contention", action="store_true",
                       help="also time our step beside a busy process at normal priority (a shared machine)")
    bench.add_argument("--out", default="results")
    bench.add_argument("--json", action="store_true")

    report = sub.add_parser("report", help="the papers' tables and figures from run folders; --check regression",
                            parents=[data_flag])
    report.add_argument("results", nargs="*", default=["results"], help="results folders (default: results/)")
    report.add_argument("--out", default="report", help="output folder (default: report/)")
    report.add_argument("--format", default="md,tex,csv", help="table formats, comma-separated: md, tex, csv")
    report.add_argument("--no-figures", action="store_true")
    report.add_argument("--check", action="store_true",
                        help="exit 1 when a paper-protocol reproduction deviates from its published numbers, 3 "
                             "when something could not be checked (no or unreadable run folders, no table)")
    report.add_argument("--reruns", action="append", default=[], metavar="FOLDER",
                        help="re-runs of the same seeds (other threads or CPU): compared with the runs as the noise "
                             "floor, never averaged in; repeatable")

    export = sub.add_parser("export", help="every epoch of every run as one table (CSV, or Parquet with pyarrow)")
    export.add_argument("results", nargs="*", default=["results"], help="results folders (default: results/)")
    export.add_argument("--out", required=True, help="FILE.csv or FILE.parquet")

    sweep = sub.add_parser("sweep", help="a grid of runs from a YAML file, on a local pool or a Ray cluster",
                           parents=[execution])
    sweep.add_argument("file")
    sweep.add_argument("--backend", default="local", help="local (default: a process pool) or ray")
    sweep.add_argument("--address", help="ray: address of an existing cluster (default: start a local one)")
    sweep.add_argument("--max-parallel", type=int, help="runs at a time (default: CPU cores, or GPUs / --gpus-per-run)")
    sweep.add_argument("--gpus-per-run", type=float, default=1.0, help="fraction of a GPU per run (default 1)")

    data = sub.add_parser("data", help="import or download benchmark data")
    data_sub = data.add_subparsers(dest="data_command", required=True, parser_class=Parser)
    imp = data_sub.add_parser("import-nb201", help="convert an official NB201/NATS-Bench topology file",
                              parents=[data_flag])
    imp.add_argument("file")
    imp101 = data_sub.add_parser("import-nb101", help="convert the official nasbench_only108/full .tfrecord",
                                 parents=[data_flag])
    imp101.add_argument("file")
    for name in ("cifar10", "cifar100"):
        data_sub.add_parser(f"download-{name}", help=f"download the official {name.upper()} python tarball "
                                                     "(MD5-checked)", parents=[data_flag])
    imp16 = data_sub.add_parser("import-imagenet16", help="check (MD5) and convert the official ImageNet16 folder "
                                                          "(train_data_batch_1..10, val_data) to ImageNet16-120",
                                parents=[data_flag])
    imp16.add_argument("folder")
    imp16.add_argument("--allow-unofficial", action="store_true",
                       help="convert files whose MD5 is not the release's (runs record the data as unofficial)")
    return parser


def cmd_run(args: argparse.Namespace) -> int:
    from foundation.run_config import checked_seeds
    from harness.api import run_search

    seeds = [*args.seed, *(checked_seeds(args.seeds) if args.seeds is not None else [])] or [0]
    results = run_search(args.searcher, args.space, args.preset, seeds, args.epochs, args.assignments, args.device,
                         args.out, args.data_dir, args.seed_batch, args.wait, args.repair, sys.stderr.isatty(),
                         tracking=args.tracking, threads=args.threads)
    for folder, summary in results:
        print(f"{folder}: {summary.status} ({summary.epochs_done}/{summary.epochs} epochs)")
    return 0 if all(summary.status == "done" for _, summary in results) else 1


def cmd_lookup(args: argparse.Namespace, extra: list[str]) -> int:
    from benchmarks import get_space
    from foundation.paths import resolve_data_dir
    from harness.api import names

    space_name, _ = names(args.space, None)
    space = get_space(space_name)
    parser = Parser(prog=f"harness lookup --space {space_name}")
    alternatives = (parser.add_mutually_exclusive_group(required=True)
                    if any(field.alternative for field in space.lookup_fields) else parser)
    for field in space.lookup_fields:
        (alternatives if field.alternative else parser).add_argument(
            f"--{field.name}", type=field.type, help=field.help, required=not field.alternative)
    values = vars(parser.parse_args(extra))
    result = space.lookup_cell(resolve_data_dir(args.data_dir), **values)
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(f"{space_name} {result['id']}")
    print(f"depth {result['depth']}  skip connections {result['skip_count']}")
    if result["accuracy"] is None:
        print("  not in the installed table (no ground truth; nothing is guessed)")
    for key, value in (result["accuracy"] or {}).items():
        print(f"  {key:<18} " + ("   n/a" if value is None else f"{value:6.2f}"))
    return 0


def cmd_list(_: argparse.Namespace) -> int:
    from benchmarks import all_spaces
    from foundation.run_config import PRESET_NOTES
    from searchers import all_searchers

    print("searchers:")
    for name, cls in all_searchers().items():
        print(f"  {name:<16} {cls.summary}")
        options = ", ".join(f"{key}={field.default}" for key, field in cls.Options.model_fields.items())
        if options:
            print(f"  {'':<16}   options: {options}")
    print("spaces:")
    for name, cls in all_spaces().items():
        print(f"  {name:<16} {cls.summary}")
        print(f"  {'':<16}   datasets (--set dataset=...): {', '.join(cls.datasets)}")
    print("presets:")
    for name, note in PRESET_NOTES.items():
        print(f"  {name:<16} {note}")
    return 0


def cmd_data(args: argparse.Namespace) -> int:
    from foundation.paths import resolve_data_dir

    data_dir = resolve_data_dir(args.data_dir)
    if args.data_command == "import-nb201":
        from benchmarks.nb201.importer import convert, open_official
        from benchmarks.nb201.table import TABLE_FILE

        source = Path(args.file)
        if not source.exists():
            raise UserError(f"no such file {source}")
        rows = convert(open_official(source), data_dir / TABLE_FILE)
        print(f"wrote {rows} architectures to {data_dir / TABLE_FILE}")
    elif args.data_command == "import-nb101":
        from benchmarks.nb101.table import OFFICIAL_FILE as NB101_TABLE
        from benchmarks.nb101.tfrecord import import_tfrecord

        source = Path(args.file)
        if not source.is_file():
            raise UserError(f"no such file {source}")
        rows = import_tfrecord(source, data_dir / NB101_TABLE)
        print(f"wrote {rows} NB101 cells (108 epochs) to {data_dir / NB101_TABLE}")
    elif args.data_command == "import-imagenet16":
        from benchmarks.images.imagenet16 import import_pickles

        target = import_pickles(Path(args.folder), data_dir, args.allow_unofficial,
                                lambda message: print(message, file=sys.stderr))
        print(f"wrote {target}")
    else:
        from benchmarks.images import cifar10, cifar100

        module = cifar10 if args.data_command == "download-cifar10" else cifar100
        print(f"saved {module.download_official(data_dir)}")
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from harness.api import names
    from harness.bench import run_bench
    from harness.config import configure
    from harness.device import resolve_device

    if args.steps < 1 or args.rounds < 1 or args.seeds < 1:
        raise UserError(f"bad value --steps {args.steps} / --rounds {args.rounds} / --seeds {args.seeds}: "
                        "must be >= 1")
    experiment = configure(*names(args.space, args.searcher), args.preset, args.assignments)
    result = run_bench(experiment, resolve_device(args.device), args.steps, args.rounds, not args.no_reference,
                       Path(args.out), args.seeds, args.contention, args.threads)
    print(json.dumps(result.to_json(), sort_keys=True) if args.json else "\n".join(result.lines()))
    return 0


def cmd_sweep(args: argparse.Namespace) -> int:
    from harness.api import run_sweep

    return run_sweep(args.file, args.backend, args.out, args.data_dir, args.device, args.max_parallel,
                     args.gpus_per_run, args.address, args.seed_batch, tracking=args.tracking)


def cmd_export(args: argparse.Namespace) -> int:
    from analysis.frame import load_runs, write_frame
    from harness.api import check_folder

    if Path(args.out).suffix not in (".csv", ".parquet"):
        raise UserError(f"bad value --out {args.out}: name a .csv or .parquet file")
    if Path(args.out).is_dir():
        raise UserError(f"bad value --out {args.out}: a folder, where a .csv or .parquet file is expected")
    check_folder("--out's folder", Path(args.out).parent)
    frame = load_runs(args.results, warn=lambda message: print(f"harness: {message}", file=sys.stderr))
    path = write_frame(frame, Path(args.out))
    print(f"{len(frame)} epochs of {frame['folder'].nunique() if len(frame) else 0} runs: {path}")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from analysis.report import REPORT_FORMATS, build_report
    from harness.api import check_folder

    formats = tuple(f.strip() for f in args.format.split(",") if f.strip())
    unknown = sorted(set(formats) - set(REPORT_FORMATS))
    if unknown or not formats:
        raise UserError(f"bad value --format {args.format!r} (known: {', '.join(REPORT_FORMATS)})")
    roots = [Path(r) for r in args.results]
    check_folder("--out", args.out)
    out_dir = Path(args.out)
    from foundation.paths import resolve_data_dir

    report = build_report(roots, out_dir, formats, not args.no_figures,
                          warn=lambda message: print(f"harness: warning: {message}", file=sys.stderr),
                          reruns=[Path(r) for r in args.reruns], data_dir=resolve_data_dir(args.data_dir))
    if not report.runs and report.skipped:
        print(f"no readable run folders under {', '.join(map(str, roots))}: {len(report.skipped)} skipped (above), "
              "nothing to report", file=sys.stderr)
    elif not report.runs:
        print(f"no run folders under {', '.join(map(str, roots))}: nothing to report "
              "(make runs with `harness run`)", file=sys.stderr)
    else:
        print(f"{len(report.runs)} runs, {len(report.tables)} tables, {len(report.figures)} figures: "
              f"{report.index} and {report.html}")
    return _check(report, args.data_dir) if args.check else 0


def _check(report, data_dir_arg: str | None) -> int:
    """The published numbers that are pure table look-ups against the installed table, then our paper-protocol
    runs against the published means: ``EXIT_DEVIATES`` when anything deviates, else ``EXIT_UNCHECKED`` when
    something could not be checked (no run folder, an unreadable one, no table), else 0."""
    comparisons = report.comparisons
    from analysis.published import lookup_discrepancies
    from foundation.paths import resolve_data_dir

    table_checked = True
    try:
        problems = lookup_discrepancies(resolve_data_dir(data_dir_arg))
        print(f"look-up layer: {'ok' if not problems else 'DEVIATES'} (published pure look-ups vs the installed "
              "tables)")
    except UserError as exc:
        problems, table_checked = [], False
        print(f"look-up layer: not checked ({exc})")
    deviating = [c for c in comparisons if not c.ok]
    print(f"reproductions: {len(comparisons)} comparisons with published numbers, {len(deviating)} deviating")
    for line in problems + [c.describe() for c in deviating]:
        print(f"  DEVIATES {line}")
    unchecked = [f"{len(report.skipped)} unreadable run folder(s)"] if report.skipped else []
    unchecked += [] if report.runs or report.skipped else ["no run folders"]
    unchecked += [] if table_checked else ["the look-up layer (no table)"]
    if unchecked:
        print(f"  NOT CHECKED: {', '.join(unchecked)}")
    if problems or deviating:
        return EXIT_DEVIATES
    return EXIT_UNCHECKED if unchecked else 0


COMMANDS = {"run": cmd_run, "sweep": cmd_sweep, "bench": cmd_bench, "report": cmd_report, "list": cmd_list,
            "data": cmd_data, "export": cmd_export}


MESSAGE_CHARS = 1_000  # an error line longer than this echoes a value (a 100 kB --set) the user need not see whole


def readable(message: str) -> str:
    """``message`` with its middle cut when too long: the start says what is wrong, the end what to do."""
    if len(message) <= MESSAGE_CHARS:
        return message
    half = MESSAGE_CHARS // 2
    return f"{message[:half]} [... {len(message) - 2 * half:,} characters cut ...] {message[-half:]}"


def main(argv: Sequence[str] | None = None) -> int:
    in_main_thread = threading.current_thread() is threading.main_thread()  # only it may set signal handlers
    previous = signal.signal(signal.SIGTERM, _terminate) if in_main_thread else None  # first: a SIGTERM is said
    resumes = ""
    try:
        parser = build_parser()
        args, extra = parser.parse_known_args(argv)
        if extra and args.command != "lookup":  # only ``lookup`` takes flags declared by the space
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
        resumes = "; the run resumes from its last checkpoint when re-run" if args.command in RESUMABLE else ""
        return cmd_lookup(args, extra) if args.command == "lookup" else COMMANDS[args.command](args)
    except UserError as exc:
        print(f"harness: error: {readable(str(exc))}", file=sys.stderr)
        return EXIT_USAGE
    except OSError as exc:  # a full disk, a read-only results folder: nothing half-written stays behind
        where = f" ({exc.filename})" if exc.filename else ""
        print(f"harness: error: {exc.strerror or exc}{where}{resumes}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"harness: interrupted{resumes}", file=sys.stderr)
        return 130
    except Terminated:
        print(f"harness: terminated (SIGTERM){resumes}", file=sys.stderr)
        return 128 + signal.SIGTERM
    finally:
        if in_main_thread:
            signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":
    sys.exit(main())
