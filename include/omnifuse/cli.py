"""The ``omnifuse`` command: ``warehouse``, ``generate``, ``convert``, ``backfill``, ``manifest``, ``airflow-env``,
``demo``."""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import date, timedelta
from pathlib import Path

from omnifuse.config import Settings, load_settings
from omnifuse.realdata import DATASETS


def _cmd_warehouse(args: argparse.Namespace) -> int:
    from omnifuse import warehouse

    settings = load_settings()
    if args.action == "up":
        url = warehouse.up(settings)
        print(f"warehouse up: {warehouse.describe(url)}")
    elif args.action == "down":
        print("stopped" if warehouse.down(settings) else "not running")
    elif args.action == "status":
        print(json.dumps(warehouse.status(settings), indent=1))
    elif args.action == "url":  # the password is masked unless asked for: terminals and CI logs keep output
        url = warehouse.warehouse_url(settings)
        print(url if args.show_password else warehouse.describe(url))
    elif args.action == "migrate":
        applied = warehouse.migrate()
        print(f"applied: {applied or 'nothing (up to date)'}")
    return 0


def _cmd_generate(args: argparse.Namespace) -> int:
    from omnifuse.generate import MessConfig, WorldConfig, generate

    cfg = WorldConfig(
        customers=args.customers, products=args.products, days=args.days, start=date.fromisoformat(args.start),
        seed=args.seed, mess=MessConfig.clean() if args.clean else MessConfig(), profile=args.profile,
        web_format=args.web_format,
    )
    started = time.perf_counter()
    summary = generate(cfg, Path(args.out))
    seconds = time.perf_counter() - started
    events = int(str(summary["events"]))
    print(f"wrote {events:,} events over {cfg.days} days to {args.out} in {seconds:.1f}s "
          f"({events / seconds:,.0f} events/s)")
    return 0


def _cmd_convert(args: argparse.Namespace) -> int:
    from omnifuse.realdata import dataset

    module = dataset(args.dataset)
    lines = module.read_lines(Path(args.src))
    first, last = lines["business_date"].min(), lines["business_date"].max()
    start = date.fromisoformat(args.date_from) if args.date_from else first
    end = date.fromisoformat(args.date_to) if args.date_to else last
    currency = {"catalog_currency": args.catalog_currency} if args.catalog_currency else {}
    options = module.ConvertOptions(shift_days=args.shift_days, empty=args.empty, **currency)
    started = time.perf_counter()
    summary = module.convert(lines, Path(args.out), start, end, options)
    print(f"{args.dataset}: {len(lines):,} lines ({first} .. {last}); wrote {len(summary.days)} business dates "
          f"{summary.days[0]} .. {summary.days[-1]} to {args.out} in {time.perf_counter() - started:.1f}s: "
          f"{summary.pos_lines:,} POS lines ({summary.negative_lines:,} negative, {summary.anonymous_lines:,} "
          f"anonymous), {len(summary.empty_store_days)} days without sales, {summary.products:,} products, "
          f"{summary.customers:,} customers")
    return 0


def _cmd_airflow_env(args: argparse.Namespace) -> int:
    from omnifuse.airflow_env import airflow_env

    for key, value in airflow_env().items():
        print(f"export {key}={shlex.quote(value)}")
    return 0


def _cmd_backfill(args: argparse.Namespace) -> int:
    from omnifuse.backfill import BackfillError, backfill

    try:
        outcomes = backfill(date.fromisoformat(args.date_from), date.fromisoformat(args.date_to),
                            retrain=args.retrain, order=args.order, stop_on_failure=not args.keep_going)
    except BackfillError as exc:
        print(f"backfill FAILED: {exc}", file=sys.stderr)
        return 1
    ingest = [o for o in outcomes if o.dag_id == "omnifuse_ingest"]
    seconds = sum(o.seconds for o in outcomes)
    print(f"backfill ok: {len(ingest)} business dates ingested, {len(outcomes)} DAG runs, every task succeeded, "
          f"{seconds:,.0f}s ({len(ingest) / max(seconds, 1e-9) * 60:.1f} dates per minute)")
    return 0


def _cmd_manifest(args: argparse.Namespace) -> int:
    from omnifuse.manifest import write_manifest

    for folder in args.folders:  # a local folder or an object-storage URL (s3://conn_id@bucket/landing/web/<date>)
        body = write_manifest(folder)
        print(f"{folder.rstrip('/')}/_manifest.json: {len(body['files'])} files, "
              f"{sum(int(f['data_lines']) for f in body['files']):,} data lines")
    return 0


@contextmanager
def library_output_to(log_path: Path) -> Iterator[Callable[..., None]]:
    """Send everything this process writes to its stdout and stderr — Airflow's task logs, Great Expectations,
    TensorFlow and absl (whose C++ code writes straight to file descriptor 2), Python warnings — to ``log_path``,
    and yield a ``say(...)`` that prints to the terminal. The descriptors are restored on the way out, also when an
    exception escapes (its traceback then reaches the terminal)."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    terminal = os.fdopen(os.dup(saved[0]), "w", buffering=1)

    def say(*parts: object, end: str = "\n") -> None:
        print(*parts, end=end, file=terminal, flush=True)

    with open(log_path, "ab") as log:  # appended: a server started here may keep writing to it
        log.write(f"\n===== omnifuse demo {time.strftime('%Y-%m-%dT%H:%M:%S')} =====\n".encode())
        log.flush()
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
        try:
            yield say
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            for fd in saved:
                os.close(fd)
            terminal.close()


@contextmanager
def _terminal(verbose: bool, log_path: Path) -> Iterator[Callable[..., None]]:
    if verbose:
        yield lambda *parts, end="\n": print(*parts, end=end, flush=True)
    else:
        with library_output_to(log_path) as say:
            yield say


def _cmd_demo(args: argparse.Namespace) -> int:
    settings = load_settings()
    log_path = settings.state_dir / "logs" / "demo.log"
    # OMNIFUSE_DEMO_VERBOSE=1 shows the libraries' output (task logs, GX, TensorFlow) in the terminal as well
    verbose = args.verbose or settings.demo_verbose
    with _terminal(verbose, log_path) as say:
        code = _demo(args, settings, say, log_path if not verbose else None)
    return code


def _demo(args: argparse.Namespace, settings: Settings, say: Callable[..., None], log_path: Path | None) -> int:
    from omnifuse import warehouse
    from omnifuse.airflow_env import prepare_airflow
    from omnifuse.generate import WorldConfig, generate
    from omnifuse.landing_zone import local_folder
    from omnifuse.report import audit_rows, format_audit, pipeline_summary

    logs = settings.state_dir / "airflow" / "logs"
    where = f"{log_path} and the task logs under {logs}" if log_path else f"the task logs under {logs}"
    url = warehouse.warehouse_url(settings)
    say(f"warehouse: {warehouse.describe(url)}")
    if log_path:
        say(f"library output (Airflow task logs, Great Expectations, TensorFlow) goes to {log_path}")
    cfg = WorldConfig(customers=args.customers, products=args.products, days=args.days,
                      start=date.fromisoformat(args.start), seed=args.seed)
    started = time.perf_counter()
    summary = generate(cfg, local_folder(settings.landing_dir))
    say(f"generated {summary['events']:,} events ({cfg.customers:,} customers, {cfg.products:,} products, "
        f"{cfg.days} days) into {settings.landing_dir} in {time.perf_counter() - started:.1f}s")
    days = [cfg.start + timedelta(days=i) for i in range(cfg.days)]
    say("running the real DAGs with dag.test() (the first run also migrates Airflow's metadata database):")
    settings = prepare_airflow(settings)  # Airflow reads its environment once, when it is first imported
    from omnifuse.airflow_glue import run_dag_days

    states = run_dag_days("omnifuse_ingest", days, settings, echo=lambda line: say(f"  {line}"))
    say()
    say(format_audit(audit_rows(days)))
    say()
    failed = [d for d, s in zip(days, states, strict=True) if s != "success"]
    if failed:
        say(f"omnifuse_ingest did not succeed for {failed}: see {where} (or `make airflow` to look in the UI).")
        return 1
    last = days[-1]
    # in production the Assets trigger these; dag.test() runs them in-process for the last date
    for dag_id in ("omnifuse_retrain", "omnifuse_publish"):
        if run_dag_days(dag_id, [last], settings, echo=lambda line: say(f"  {line}"))[0] != "success":
            say(f"{dag_id} did not succeed for {last}: see {where}.")
            return 1
    say()
    say(pipeline_summary(last))
    say()
    say("Look at the data:")
    say("  .venv/bin/omnifuse warehouse url          # the libpq URL of the embedded warehouse")
    say('  psql "$(.venv/bin/omnifuse warehouse url)" -c "select * from mart.customer_recommendations limit 20"')
    say("  make airflow                             # the runs, the asset graph and the omnifuse view in the "
        "Airflow UI (http://localhost:8080, Browse → omnifuse: models & data health)")
    say(f"  Data Docs: {settings.state_dir / 'data_docs'}/<gate>/<date>/index.html")
    if log_path:
        say(f"  Library output of this demo: {log_path}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="omnifuse", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("warehouse", help="manage the embedded PostgreSQL warehouse")
    p.add_argument("action", choices=["up", "down", "status", "url", "migrate"])
    p.add_argument("--show-password", action="store_true",
                   help="url: print the password too (masked as *** otherwise), e.g. to hand the URL to psql")
    p.set_defaults(func=_cmd_warehouse)

    def _cmd_model(args: argparse.Namespace) -> int:
        from omnifuse.registry import cli_model

        return cli_model(args.action)

    p = sub.add_parser("model", help="the model registry: show the champion, or roll back to the previous one")
    p.add_argument("action", choices=["champion", "rollback"])
    p.set_defaults(func=_cmd_model)

    def world_args(p: argparse.ArgumentParser, customers: int, products: int, days: int) -> None:
        p.add_argument("--customers", type=int, default=customers)
        p.add_argument("--products", type=int, default=products)
        p.add_argument("--days", type=int, default=days)
        p.add_argument("--start", default="2026-11-02", help="first business date (YYYY-MM-DD)")
        p.add_argument("--seed", type=int, default=7)

    p = sub.add_parser("generate", help="write a synthetic multi-channel landing zone")
    world_args(p, 2_000, 300, 3)
    p.add_argument("--out", required=True)
    p.add_argument("--clean", action="store_true", help="no planted mess")
    p.add_argument("--profile", choices=["default", "wholesale"], default="default",
                   help="wholesale: what real tills have (wholesale quantities, returns, fees, closed Sundays...)")
    p.add_argument("--web-format", choices=["native", "ga4"], default="native",
                   help="ga4: web and app events as a Google Analytics 4 BigQuery export (docs/landing.md)")
    p.set_defaults(func=_cmd_generate)

    p = sub.add_parser("convert", help="convert a real public data set into the landing zone (see omnifuse.realdata)")
    p.add_argument("dataset", choices=sorted(DATASETS))
    p.add_argument("--src", required=True, help="the data set's file (.csv, .csv.gz, .parquet or .xlsx)")
    p.add_argument("--out", required=True, help="landing zone root (e.g. $OMNIFUSE_LANDING_DIR)")
    p.add_argument("--from", dest="date_from", help="first business date (default: the data's first)")
    p.add_argument("--to", dest="date_to", help="last business date (default: the data's last)")
    p.add_argument("--shift-days", type=int, default=0, help="move every date and time by this many days")
    p.add_argument("--empty", choices=["manifest", "header"], default="manifest",
                   help="an empty delivery is a manifest listing no file (default) or header-only files")
    p.add_argument("--catalog-currency", default=None,
                   help="currency of the catalog prices: the data set's own (default) or EUR")
    p.set_defaults(func=_cmd_convert)

    p = sub.add_parser("airflow-env", help="print shell exports for running Airflow on the embedded setup")
    p.set_defaults(func=_cmd_airflow_env)

    p = sub.add_parser("backfill", help="load a range of business dates through the real DAGs (any year)")
    p.add_argument("--from", dest="date_from", required=True, help="first business date (YYYY-MM-DD)")
    p.add_argument("--to", dest="date_to", required=True, help="last business date (YYYY-MM-DD)")
    p.add_argument("--retrain", choices=["last", "every", "none"], default="last",
                   help="retrain and publish for the last date (default), after every date, or not at all")
    p.add_argument("--order", choices=["ascending", "descending", "shuffled"], default="ascending",
                   help="order the dates run in (the tables come out the same)")
    p.add_argument("--keep-going", action="store_true", help="run the remaining dates after a failure")
    p.set_defaults(func=_cmd_backfill)

    p = sub.add_parser("manifest", help="write _manifest.json for landing folders assembled by hand")
    p.add_argument("folders", nargs="+", help="landing folders, e.g. landing/store/2024-03-01 or "
                   "s3://conn_id@bucket/landing/store/2024-03-01")
    p.set_defaults(func=_cmd_manifest)

    p = sub.add_parser("demo", help="generate a world and run the real DAGs on it, then print a summary")
    world_args(p, 2_000, 300, 4)
    p.add_argument("--verbose", action="store_true",
                   help="show the libraries' output in the terminal too (default: $OMNIFUSE_STATE_DIR/logs/demo.log)")
    p.set_defaults(func=_cmd_demo)

    args = parser.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
