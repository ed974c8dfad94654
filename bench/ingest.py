"""Ingest throughput versus a bare COPY of the same files, and generator speed, measured in one run.

    .venv/bin/python bench/ingest.py [--events 1000000] [--keep DIR]

1. Generates one day with at least ``--events`` events across the four channels (default mess rates) and
   reports the generator's events/s.
2. Ingests the day's catalog, then the four event channels through ``omnifuse.ingest.ingest_source`` — the
   same function the DAG's tasks call — sequentially, and again with two workers (the DAG's channel loads run
   in parallel on a 2-core LocalExecutor).
3. In the same run, a bare ``COPY`` of the same decompressed lines into one unindexed ``text`` table created in
   the copying transaction (so it gets the same WAL skip as the partitions the ingest truncates).
Prints rows/s of each and the ratios (target: full ingest ≥ 0.5 of bare COPY rows/s), and the peak resident
memory of this process during the two ingest runs (the world is generated in a child process): it is bounded by
``OMNIFUSE_INGEST_BLOCK_MB`` (default 1), whatever the size of the files.
"""

from __future__ import annotations

import argparse
import gzip
import multiprocessing
import os
import resource
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import date
from pathlib import Path

from _isolated import isolated_url
from omnifuse import ingest, sources, warehouse
from omnifuse.generate import WorldConfig, generate

DAY = date(2026, 11, 6)
EVENT_SOURCES = ("web", "mobile", "social", "store")
BARE_BLOCK = 8 << 20  # the bare COPY's step, fixed: the baseline does not move with the ingest's setting


def _file_blocks(path: Path, size: int) -> Iterator[bytes]:
    with open(path, "rb") as fh:
        while block := fh.read(size):
            yield block


def _lines(source, lf) -> Iterator[bytes]:
    """The data lines of one landed file, in blocks of 8 MiB (the CSV header dropped)."""
    size = BARE_BLOCK
    if source.fmt == "ndjson":
        with gzip.open(lf.path, "rb") as fh:
            while block := fh.read(size):
                yield block
        return
    blocks = _file_blocks(lf.path, size)
    head = b""
    for block in blocks:  # drop the header line
        head += block
        if b"\n" in head:
            yield head.split(b"\n", 1)[1]
            break
    yield from blocks


def _bare_copy(url: str, world: Path) -> tuple[int, float]:
    """COPY every event line of the day into a fresh unindexed table; returns (rows, seconds)."""
    started = time.perf_counter()
    rows = 0

    def escaped(source, lf) -> Iterator[bytes]:
        nonlocal rows
        for data in _lines(source, lf):
            rows += data.count(b"\n")
            yield data.replace(b"\\", b"\\\\").replace(b"\t", b"\\t").replace(b"\r", b"\\r")

    with warehouse.transaction(url) as cur:
        cur.execute("drop table if exists public.bench_bare_copy")
        cur.execute("create table public.bench_bare_copy (line text)")
        for name in EVENT_SOURCES:
            source = sources.get(name)
            for lf in ingest.landed_files(world, source, DAY):
                cur.copy_expert("copy public.bench_bare_copy (line) from stdin",
                                ingest.ChunkStream(escaped(source, lf)), size=1 << 20)
        cur.execute("drop table public.bench_bare_copy")
    return rows, time.perf_counter() - started


def _ingest(url: str, world: Path, workers: int) -> tuple[int, float, list[dict]]:
    started = time.perf_counter()

    def one(name: str) -> dict:
        return ingest.ingest_source(name, DAY, landing_dir=world, url=url)

    if workers == 1:
        summaries = [one(n) for n in EVENT_SOURCES]
    else:
        # biggest first so the two workers finish together
        with ThreadPoolExecutor(max_workers=workers) as pool:
            summaries = list(pool.map(one, ("web", "mobile", "store", "social")))
    seconds = time.perf_counter() - started
    return sum(int(s["lines_read"]) for s in summaries), seconds, summaries


def _status_mb(field: str) -> float | None:
    """``VmRSS`` / ``VmHWM`` (peak) of this process from /proc, in MiB; None where there is no /proc."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def _reset_peak_rss() -> bool:
    """Start a new peak-RSS window (Linux: writing 5 to clear_refs resets VmHWM)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def _peak_rss_mb() -> float:
    """Peak resident memory of this process (in the current window where Linux allows one), in MiB."""
    peak = _status_mb("VmHWM")
    return peak if peak is not None else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _generate(cfg: WorldConfig, out: Path) -> dict[str, object]:
    """Generate in a child process, so that the generator's memory is not counted as the ingest's."""
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        return pool.apply(generate, (cfg, out))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--keep", help="write the world here and keep it")
    args = parser.parse_args()

    out = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="omnifuse-bench-"))
    # Active shoppers: 2 sessions per customer-day give ~10.5 events per customer-day (measured).
    customers = int(args.events / 10.0) + 1
    cfg = WorldConfig(customers=customers, products=5_000, days=1, start=DAY, seed=42, sessions_per_customer_day=2.0)
    t0 = time.perf_counter()
    summary = _generate(cfg, out)
    gen_s = time.perf_counter() - t0
    events = int(summary["events"])
    print(f"generator : {events:,} events ({customers:,} customers) in {gen_s:.1f}s = {events / gen_s:,.0f} events/s"
          f"  (target >= 50,000)")
    if events < args.events:
        print(f"warning: generated {events:,} < {args.events:,} events requested", file=sys.stderr)

    url = isolated_url("ingest")  # never the user's warehouse
    for name in ("catalog", "store_locations", "fx_rates"):
        ingest.ingest_source(name, DAY, landing_dir=out, url=url)

    bare_rows, bare_s = _bare_copy(url, out)
    windowed = _reset_peak_rss()  # the ingest runs' own peak, not the bare COPY's or the imports'
    rss_before = _status_mb("VmRSS") or _peak_rss_mb()  # the interpreter and its imports (numpy among them)
    seq_rows, seq_s, summaries = _ingest(url, out, workers=1)
    par_rows, par_s, _ = _ingest(url, out, workers=2)
    rss_peak = _peak_rss_mb()
    bare_rows2, bare_s2 = _bare_copy(url, out)  # again, to see the baseline's own noise
    bare_best = min(bare_s, bare_s2)

    print(f"bare COPY : {bare_rows:,} rows in {bare_best:.2f}s = {bare_rows / bare_best:,.0f} rows/s "
          f"(two runs: {bare_s:.2f}s, {bare_s2:.2f}s)")
    for label, rows, secs in (("ingest x1", seq_rows, seq_s), ("ingest x2", par_rows, par_s)):
        ratio = (rows / secs) / (bare_rows / bare_best)
        print(f"{label} : {rows:,} lines in {secs:.2f}s = {rows / secs:,.0f} rows/s   ratio vs bare COPY = {ratio:.2f}"
              f"  (target >= 0.50)")
    block_mb = os.environ.get(ingest.BLOCK_MB_ENV) or str(ingest.block_bytes() >> 20)
    data_mb = sum(f.stat().st_size for f in out.rglob("*") if f.is_file() and f.parent.parent.name in EVENT_SOURCES)
    print(f"peak RSS  : {rss_peak:,.0f} MiB during the ingest runs ({'' if windowed else 'process peak; '}"
          f"{rss_before:,.0f} MiB when they started; {ingest.BLOCK_MB_ENV}={block_mb}; "
          f"event files on disk: {data_mb / (1 << 20):,.0f} MiB)")
    print("per channel (sequential run):")
    for s in summaries:
        print(f"  {s['source']:<7} lines={s['lines_read']:>9,} staged={s['rows_staged']:>9,} "
              f"quarantined={s['rows_quarantined']:>6,} dups={s['duplicates_dropped']:>7,} "
              f"total={s['seconds']:.2f}s (landing COPY {s['landing_seconds']:.2f}s)")
    if not args.keep:
        shutil.rmtree(out, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
