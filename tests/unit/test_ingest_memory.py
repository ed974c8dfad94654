"""Ingest reads landed files in blocks: its memory is bounded by ``OMNIFUSE_INGEST_BLOCK_MB``, not the file size."""

from __future__ import annotations

import gzip
import tracemalloc
from datetime import date

from omnifuse import ingest, sources
from omnifuse.landing_csv import count_records, iter_records, split_records

D = date(2026, 11, 2)
HEADER = b"receipt_id,line_no,store_id,loyalty_card,sku,quantity,unit_price,currency,sold_at\n"


def _peak(fn) -> int:
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def _drain(rows) -> None:
    for _ in rows:
        pass


def test_csv_rows_peak_memory_does_not_grow_with_the_file(tmp_path, monkeypatch):
    # 64 KiB blocks and files of 0.27 and 2.2 MB: the peak is set by the block size (about 27 blocks' worth), so
    # this is the 0.25 MiB / 1 and 8 MiB geometry scaled down 4x (160,000 traced rows took most of a minute)
    monkeypatch.setenv(ingest.BLOCK_MB_ENV, "0.0625")
    record = b'r%d,1,S01,,SKU000001,2,"1.50",EUR,2026-11-02 10:00:00\n'
    peaks = {}
    for records in (5_000, 40_000):  # about 0.27 MB and 2.2 MB
        path = tmp_path / f"pos-{records}.csv"
        path.write_bytes(HEADER + b"".join(record % i for i in range(records)))
        lf = ingest.LandedFile(path, f"store/2026-11-02/{path.name}", path.stat().st_size, "x", records)
        stats = ingest.FileLoad()
        peaks[records] = _peak(lambda lf=lf, stats=stats: _drain(ingest._csv_rows(lf, sources.get("store"), D, stats)))
        assert stats.lines == records
    assert peaks[40_000] < 2 << 20  # under the file's size
    assert peaks[40_000] < 2 * peaks[5_000]


def test_ndjson_rows_peak_memory_does_not_grow_with_the_file(tmp_path, monkeypatch):
    monkeypatch.setenv(ingest.BLOCK_MB_ENV, "0.25")
    line = (b'{"event_id":"w-%d","type":"product_view","ts":"2026-11-02T10:00:00Z","cookie_id":"ck",'
            b'"product":{"sku":"S","price":1}}\n')
    peaks = {}
    for lines in (10_000, 80_000):
        path = tmp_path / f"events-{lines}.ndjson.gz"
        with gzip.open(path, "wb") as fh:
            fh.write(b"".join(line % i for i in range(lines)))
        lf = ingest.LandedFile(path, f"web/2026-11-02/{path.name}", path.stat().st_size, "x", lines)
        stats = ingest.FileLoad()
        peaks[lines] = _peak(lambda lf=lf, stats=stats: _drain(ingest._ndjson_rows(lf, D, stats)))
        assert stats.lines == lines
    assert peaks[80_000] < 2 * peaks[10_000]


def test_records_split_across_blocks_like_the_whole_file():
    data = (b"\xef\xbb\xbf" + HEADER + b'r1,1,S01,,SKU1,2,1.5,EUR,2026-11-02 10:00:00\n'
            b'r2,1,S01,,"SKU\n2",2,1.5,EUR,2026-11-02 10:00:00\r\n\nr3,1,"open\n')
    whole = split_records(data)
    assert whole[0] == HEADER.rstrip(b"\n") and whole[2].startswith(b'r2,1,S01,,"SKU\n2"') and whole[3] == b""
    for size in (1, 2, 3, 7, 64):
        blocks = [data[i:i + size] for i in range(0, len(data), size)]
        assert [r for block in iter_records(blocks) for r in block] == whole


def test_count_records_streams(tmp_path):
    path = tmp_path / "pos.csv"
    path.write_bytes(HEADER + b'a,"b\nc"\n' * 1000)
    assert count_records(path, block_size=5) == 1000 == count_records(path)


def test_produced_ahead_keeps_order_raises_the_producers_error_and_stops_with_the_reader():
    import threading

    assert list(ingest.produced_ahead(iter([b"a", b"b", b"c"]))) == [b"a", b"b", b"c"]

    def failing():
        yield b"a"
        raise ingest.LandingError("x.csv: broken")

    got = []
    try:
        for chunk in ingest.produced_ahead(failing()):
            got.append(chunk)
    except ingest.LandingError as exc:
        assert "x.csv" in str(exc)
    else:
        raise AssertionError("the producer's error was not raised")
    assert got == [b"a"]

    produced = []

    def endless():
        n = 0
        while True:
            n += 1
            produced.append(n)
            yield b"%d" % n

    ahead = ingest.produced_ahead(endless(), depth=2)
    assert next(ahead) == b"1"
    ahead.close()  # the reader stops early (a failed COPY)
    assert not any(t.name == "ingest-producer" and t.is_alive() for t in threading.enumerate())
    assert len(produced) <= 4  # it never ran more than the queue's depth ahead
