"""``harness`` command line: run, sweep, lookup, list, bench, report, data. Bad input exits 2 with one line, never a traceback."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import NoReturn, Sequence

from harness.errors import UserError

EXIT_USAGE = 2


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def build_parser() -> Parser:
    parser = Parser(prog="harness", description="Benchmark differentiable NAS searchers on tabular benchmarks.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)

    run = sub.add_parser("run", help="run searches (resumes unfinished seeds, skips finished ones)")
    run.add_argument("--searcher", default="darts")
    run.add_argument("--space", default="nb201")
    run.add_argument("--preset", default="paper", help="paper (default), quick or smoke")
    run.add_argument("--seeds", type=int, help="run seeds 0..N-1")
    run.add_argument("--seed", type=int, action="append", default=[], help="an explicit seed (repeatable)")
    run.add_argument("--epochs", type=int)
    run.add_argument("--set", dest="assignments", action="append", default=[], metavar="KEY=VALUE")
    run.add_argument("--device", default="auto", help="cpu, cuda or auto (default)")
    run.add_argument("--out", default="results", help="results root (default: results/)")
    run.add_argument("--data-dir")
    run.add_argument("--wait", action="store_true",
                     help="if another process is writing a run folder, wait for it instead of refusing")

    lookup = sub.add_parser("lookup", help="ground truth of one architecture")
    lookup.add_argument("--space", default="nb201", help="nb201 or nb101")
    which = lookup.add_mutually_exclusive_group(required=True)
    which.add_argument("--arch", help="NB201 architecture string")
    which.add_argument("--index", type=int, help="NB201 index")
    which.add_argument("--matrix", help="NB101 adjacency matrix, rows of 0/1 joined by ';' (with --ops)")
    lookup.add_argument("--ops", help="NB101 op names joined by ',' (long names or in,c3,c1,mp,out)")
    lookup.add_argument("--json", action="store_true")
    lookup.add_argument("--data-dir")

    sub.add_parser("list", help="searchers, spaces and presets")

    bench = sub.add_parser("bench", help="time our search step against the reference implementation")
    bench.add_argument("--device", default="auto")
    bench.add_argument("--searcher", default="darts")
    bench.add_argument("--preset", default="paper")
    bench.add_argument("--set", dest="assignments", action="append", default=[], metavar="KEY=VALUE")
    bench.add_argument("--steps", type=int, default=10, help="search steps per timed round")
    bench.add_argument("--rounds", type=int, default=3)
    bench.add_argument("--seeds", type=int, default=1,
                       help="also time this many searches stepped sequentially vs concurrently (CUDA streams)")
    bench.add_argument("--no-reference", action="store_true", help="time only our step")
    bench.add_argument("--out", default="results")
    bench.add_argument("--json", action="store_true")

    report = sub.add_parser("report", help="the papers' tables and figures from run folders; --check regression")
    report.add_argument("results", nargs="*", default=["results"], help="results folders (default: results/)")
    report.add_argument("--out", default="report", help="output folder (default: report/)")
    report.add_argument("--format", default="md,tex,csv", help="table formats, comma-separated: md, tex, csv")
    report.add_argument("--no-figures", action="store_true")
    report.add_argument("--check", action="store_true",
                        help="exit 1 when a paper-protocol reproduction deviates from its published numbers")
    report.add_argument("--data-dir", help="for --check: the NB201 table whose look-ups are checked")

    sweep = sub.add_parser("sweep", help="a grid of runs from a YAML file, on a local pool or a Ray cluster")
    sweep.add_argument("file")
    sweep.add_argument("--backend", default="local", help="local (default: a process pool) or ray")
    sweep.add_argument("--address", help="ray: address of an existing cluster (default: start a local one)")
    sweep.add_argument("--max-parallel", type=int, help="runs at a time (default: CPU cores, or GPUs / --gpus-per-run)")
    sweep.add_argument("--gpus-per-run", type=float, default=1.0, help="fraction of a GPU per run (default 1)")
    sweep.add_argument("--device", default="auto", help="cpu, cuda or auto (default)")
    sweep.add_argument("--out", default="results", help="results root (default: results/)")
    sweep.add_argument("--data-dir")

    data = sub.add_parser("data", help="import or download benchmark data")
    data_sub = data.add_subparsers(dest="data_command", required=True, parser_class=Parser)
    imp = data_sub.add_parser("import-nb201", help="convert an official NB201/NATS-Bench topology file")
    imp.add_argument("file")
    imp.add_argument("--data-dir")
    imp101 = data_sub.add_parser("import-nb101", help="convert the official nasbench_only108/full .tfrecord")
    imp101.add_argument("file")
    imp101.add_argument("--data-dir")
    dl = data_sub.add_parser("download-cifar10", help="download the official CIFAR-10 tarball (MD5-checked)")
    dl.add_argument("--data-dir")
    return parser


def cmd_run(args: argparse.Namespace) -> int:
    from harness.config import build_config
    from harness.paths import resolve_data_dir
    from harness.runner import SeedRun, resolve_device

    if args.seeds is not None and args.seeds < 1:
        raise UserError(f"bad value --seeds {args.seeds}: must be >= 1")
    if any(s < 0 for s in args.seed):
        raise UserError(f"bad value --seed {min(args.seed)}: seeds are >= 0")
    if args.epochs is not None and args.epochs < 1:
        raise UserError(f"bad value --epochs {args.epochs}: must be >= 1")
    seeds = sorted(set(args.seed) | set(range(args.seeds or 0))) or [0]
    config = build_config(args.space, args.searcher, args.preset, args.assignments, args.epochs)
    device = resolve_device(args.device)
    data_dir = resolve_data_dir(args.data_dir)
    results = []
    for seed in seeds:
        run = SeedRun(config, seed, Path(args.out), data_dir, device, progress=sys.stderr.isatty(),
                      wait_for_lock=args.wait)
        summary = run.execute()
        results.append((seed, summary))
        print(f"{run.folder}: {summary['status']} ({summary['epochs_done']}/{summary['epochs']} epochs)")
    return 0 if all(s["status"] == "done" for _, s in results) else 1


def cmd_lookup(args: argparse.Namespace) -> int:
    from harness.paths import resolve_data_dir

    data_dir = resolve_data_dir(args.data_dir)
    if args.space == "nb101":
        result = _lookup_nb101(args, data_dir)
    elif args.space == "nb201":
        result = _lookup_nb201(args, data_dir)
    else:
        raise UserError(f"unknown space {args.space!r} for lookup (known: nb201, nb101)")
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(f"{args.space.upper()} {result['id']}")
    print(f"depth {result['depth']}  skip connections {result['skip_count']}")
    if result["accuracy"] is None:
        print("  not in the installed table (no ground truth; nothing is guessed)")
    for key, value in (result["accuracy"] or {}).items():
        print(f"  {key:<18} " + ("   n/a" if value is None else f"{value:6.2f}"))
    return 0


def _lookup_nb201(args: argparse.Namespace, data_dir: Path) -> dict:
    from benchmarks.nb201 import space as nb201
    from benchmarks.nb201.table import load_table

    if args.matrix is not None or args.ops is not None:
        raise UserError("--matrix/--ops are for --space nb101; NB201 takes --arch or --index")
    table = load_table(data_dir)
    index = table.check_index(args.index) if args.index is not None else table.index(args.arch)
    genotype = nb201.str_to_genotype(table.arch_strs[index])
    return {"space": "nb201", "id": f"#{index}  {table.arch_strs[index]}", "arch_index": index,
            "arch_str": table.arch_strs[index], "depth": nb201.depth(genotype), "skip_count": nb201.skips(genotype),
            "accuracy": table.accuracy(index), "rank_percentile": table.rank_percentile(index),
            "regret": table.regret(index), "row": table.row(index)}


def _lookup_nb101(args: argparse.Namespace, data_dir: Path) -> dict:
    from benchmarks.nb101.graph import depth, fingerprint, parse_cell, prune
    from benchmarks.nb101.table import load_table

    if args.matrix is None or args.ops is None:
        raise UserError("--space nb101 needs --matrix M and --ops O")
    cell = prune(parse_cell(args.matrix, args.ops))
    if cell is None:
        raise UserError(f"bad NB101 cell {args.matrix!r}: the output is not reachable from the input")
    row = load_table(data_dir).lookup(fingerprint(cell))
    accuracy = {"nb101_valid": row["valid_acc"], "nb101_test": row["test_acc"]} if row["in_table"] else None
    return {"space": "nb101", "id": f"{row['hash']}  {cell.matrix_str()}  {','.join(cell.ops)}", **row,
            "pruned_matrix": cell.matrix_str(), "pruned_ops": list(cell.ops), "depth": depth(cell),
            "skip_count": 0, "accuracy": accuracy}


def cmd_list(_: argparse.Namespace) -> int:
    from benchmarks import SPACES
    from harness.config import PRESET_NOTES
    from searchers import SEARCHERS

    print("searchers:")
    for name, cls in SEARCHERS.items():
        print(f"  {name:<16} {cls.summary}")
    print("spaces:")
    for name, cls in SPACES.items():
        print(f"  {name:<16} {cls.summary}")
    print("presets:")
    for name, note in PRESET_NOTES.items():
        print(f"  {name:<16} {note}")
    return 0


def cmd_data(args: argparse.Namespace) -> int:
    from harness.paths import resolve_data_dir

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
    else:
        from benchmarks.cifar10 import download_official

        print(f"saved {download_official(data_dir)}")
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from harness.bench import run_bench
    from harness.config import build_config
    from harness.runner import resolve_device

    if args.steps < 1 or args.rounds < 1 or args.seeds < 1:
        raise UserError(f"bad value --steps {args.steps} / --rounds {args.rounds} / --seeds {args.seeds}: "
                        "must be >= 1")
    config = build_config("nb201", args.searcher, args.preset, args.assignments)
    result = run_bench(config, resolve_device(args.device), args.steps, args.rounds, not args.no_reference,
                       Path(args.out), args.seeds)
    if args.json:
        print(json.dumps(result, sort_keys=True))
    else:
        print(f"device {result['device']}, {config.preset} preset, {config.precision}, batch {config.batch_size}")
        print(f"  ours       {result['ours_s_per_step'] * 1e3:9.1f} ms/step  ({result['ours_steps_per_s']:.2f} steps/s)")
        if "reference_s_per_step" in result:
            print(f"  reference  {result['reference_s_per_step'] * 1e3:9.1f} ms/step  "
                  f"speedup {result['speedup_vs_reference']:.2f}x")
        if "cost_vs_our_darts" in result:
            print(f"  our darts  {result['our_darts_s_per_step'] * 1e3:9.1f} ms/step  ({config.searcher} costs "
                  f"{result['cost_vs_our_darts']:.2f}x a DARTS step)")
        if "multi_seed_speedup" in result:
            print(f"  {result['seeds']} seeds: {result['seeds_sequential_s_per_step'] * 1e3:.1f} ms sequential, "
                  f"{result['seeds_concurrent_s_per_step'] * 1e3:.1f} ms concurrent per step of all seeds "
                  f"({result['multi_seed_speedup']:.2f}x)")
        print(f"  peak memory {result['peak_memory_mb']:.0f} MiB; a {config.epochs}-epoch search: "
              f"~{result['estimated_search_s'] / 60:.1f} min")
    return 0


def cmd_sweep(args: argparse.Namespace) -> int:
    from harness.paths import resolve_data_dir
    from harness.runner import resolve_device
    from harness.sweep import sweep

    device = str(resolve_device(args.device))
    return sweep(Path(args.file), args.backend, Path(args.out), resolve_data_dir(args.data_dir), device,
                 args.max_parallel, args.gpus_per_run, args.address)


def cmd_report(args: argparse.Namespace) -> int:
    from analysis.report import REPORT_FORMATS, build_report

    formats = tuple(f.strip() for f in args.format.split(",") if f.strip())
    unknown = sorted(set(formats) - set(REPORT_FORMATS))
    if unknown or not formats:
        raise UserError(f"bad value --format {args.format!r} (known: {', '.join(REPORT_FORMATS)})")
    roots = [Path(r) for r in args.results]
    out_dir = Path(args.out)
    report = build_report(roots, out_dir, formats, not args.no_figures,
                          warn=lambda message: print(f"harness: warning: {message}", file=sys.stderr))
    if not report.runs:
        print(f"no run folders under {', '.join(map(str, roots))}: nothing to report "
              "(make runs with `harness run`)", file=sys.stderr)
    else:
        print(f"{len(report.runs)} runs, {len(report.tables)} tables, {len(report.figures)} figures: "
              f"{report.index} and {report.html}")
    return _check(report.comparisons, args.data_dir) if args.check else 0


def _check(comparisons, data_dir_arg: str | None) -> int:
    """The published numbers that are pure table look-ups against the installed table, then our paper-protocol
    runs against the published means; 1 when anything deviates."""
    from analysis.published import lookup_discrepancies
    from benchmarks.nb201.table import load_table
    from harness.paths import resolve_data_dir

    try:
        problems = lookup_discrepancies(load_table(resolve_data_dir(data_dir_arg)))
        print(f"look-up layer: {'ok' if not problems else 'DEVIATES'} (published pure look-ups vs the NB201 table)")
    except UserError as exc:
        problems = []
        print(f"look-up layer: not checked ({exc})")
    deviating = [c for c in comparisons if not c.ok]
    print(f"reproductions: {len(comparisons)} comparisons with published numbers, {len(deviating)} deviating")
    for line in problems + [c.describe() for c in deviating]:
        print(f"  DEVIATES {line}")
    return 1 if problems or deviating else 0


COMMANDS = {"run": cmd_run, "sweep": cmd_sweep, "bench": cmd_bench, "report": cmd_report, "lookup": cmd_lookup, "list": cmd_list, "data": cmd_data}


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except UserError as exc:
        print(f"harness: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except OSError as exc:  # a full disk, a read-only results folder: nothing half-written stays behind
        where = f" ({exc.filename})" if exc.filename else ""
        print(f"harness: error: {exc.strerror or exc}{where}; a run resumes from its last checkpoint when re-run",
              file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("harness: interrupted (the run resumes from its last checkpoint when re-run)", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
