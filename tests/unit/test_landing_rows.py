from __future__ import annotations

import gzip
from datetime import date

import pytest
from omnifuse import ingest, sources


def _lf(path, lines):
    return ingest.LandedFile(path, f"web/2026-11-02/{path.name}", path.stat().st_size, "x", lines)


def test_ndjson_rows_number_lines_and_escape(tmp_path):
    path = tmp_path / "events.ndjson.gz"
    with gzip.open(path, "wb") as fh:
        fh.write(b'{"a":"x\\\\y"}\n{"b":"tab\there"}\nnot json')
    stats = ingest.FileLoad()
    out = b"".join(ingest._ndjson_rows(_lf(path, 3), date(2026, 11, 2), stats))
    rows = out.split(b"\n")[:-1]
    assert stats.lines == 3
    assert rows[0] == b'2026-11-02\tweb/2026-11-02/events.ndjson.gz\t1\t{"a":"x\\\\\\\\y"}\t\\N\t\\N'
    assert rows[1].split(b"\t")[3] == b'{"b":"tab\\there"}'
    assert rows[2].split(b"\t")[2:4] == [b"3", b"not json"]


def test_truncated_gzip_names_the_file(tmp_path):
    path = tmp_path / "events.ndjson.gz"
    with gzip.open(path, "wb") as fh:
        fh.write(b'{"a":1}\n' * 5000)
    path.write_bytes(path.read_bytes()[:-20])
    with pytest.raises(ingest.LandingError, match="events.ndjson.gz: corrupt or truncated gzip"):
        b"".join(ingest._ndjson_rows(_lf(path, 5000), date(2026, 11, 2), ingest.FileLoad()))


def test_csv_rows_map_aliases_and_flag_bad_lines(tmp_path):
    path = tmp_path / "pos.csv"
    path.write_text(
        "receipt_id,line_no,store_id,loyalty_card,sku,qty,unit_price,currency,sold_at\n"
        'r1,1,S01,,SKU1,2,"1,5",EUR,2026-11-02 10:00:00\n'
        "r1,2,S01\n"
    )
    store = sources.get("store")
    stats = ingest.FileLoad()
    lf = ingest.LandedFile(path, "store/2026-11-02/pos.csv", path.stat().st_size, "x", 2)
    rows = b"".join(ingest._csv_rows(lf, store, date(2026, 11, 2), stats)).decode().split("\n")[:-1]
    assert stats.mapping == {"qty": "quantity"}
    assert '"quantity":"2"' in rows[0] and '"unit_price":"1,5"' in rows[0]
    assert rows[1].endswith("\t\\N\twrong_field_count")
    assert rows[0].split("\t")[2] == "2"  # physical line number: header is line 1


def test_csv_missing_required_column_marks_every_row(tmp_path):
    path = tmp_path / "pos.csv"
    path.write_text("receipt_id,line_no,store_id,loyalty_card,sku,amount,unit_price,currency,sold_at\n"
                    "r1,1,S01,,SKU1,2,1.5,EUR,2026-11-02 10:00:00\n")
    stats = ingest.FileLoad()
    lf = ingest.LandedFile(path, "store/2026-11-02/pos.csv", path.stat().st_size, "x", 1)
    rows = b"".join(ingest._csv_rows(lf, sources.get("store"), date(2026, 11, 2), stats)).decode()
    assert rows.rstrip("\n").endswith("missing_column:quantity")
    assert any("lacks ['quantity']" in n for n in stats.notes)
