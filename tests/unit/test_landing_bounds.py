"""What a hostile landed file or mapping cannot do to a load (issue 23, findings 5-7): decompress through an
"encoding", make the reader run past its manifest, hold a huge line in memory, or swallow the rest of a CSV
file with one stray quote."""

from __future__ import annotations

import gzip
import hashlib
import tracemalloc
from datetime import date

import pytest
from omnifuse import ingest, sources
from omnifuse.landing.lines import BadLine, split_lines
from omnifuse.landing_csv import MappingError, count_records, iter_records, load_mapping, split_records

D = date(2026, 11, 2)


def _landed(path, data_lines: int) -> ingest.LandedFile:
    data = path.read_bytes()
    return ingest.LandedFile(path, f"web/{D}/{path.name}", len(data), hashlib.sha256(data).hexdigest(), data_lines)


@pytest.mark.parametrize("codec", ["bz2_codec", "zlib_codec", "base64_codec", "hex", "rot13", "uu_codec", "nope"])
def test_a_mapping_names_only_text_encodings(tmp_path, codec):
    (tmp_path / "store.toml").write_text(f'version = 1\n[csv]\nencoding = "{codec}"\n')
    with pytest.raises(MappingError, match="encoding"):
        load_mapping(tmp_path, "store")


@pytest.mark.parametrize("codec", ["utf-8", "cp1252", "latin-1", "utf-16", "utf-8-sig", "iso8859_15"])
def test_text_encodings_are_accepted(tmp_path, codec):
    (tmp_path / "store.toml").write_text(f'version = 1\n[csv]\nencoding = "{codec}"\n')
    mapping = load_mapping(tmp_path, "store")
    assert mapping is not None and mapping.encoding == codec


def test_an_ndjson_file_stops_at_the_first_line_beyond_its_manifest(tmp_path):
    """A 19 KB gzip of 20 M newlines was COPYed whole before the manifest's count was compared."""
    path = tmp_path / "events.ndjson.gz"
    path.write_bytes(gzip.compress(b"\n" * 2_000_000))
    lf = _landed(path, data_lines=3)
    produced = 0
    with pytest.raises(ingest.LandingError, match="more than the 3 data lines its manifest promises"):
        for chunk in ingest._ndjson_rows(lf, D, ingest.FileLoad(), block_size=1 << 16, max_lines=lf.data_lines):
            produced += chunk.count(b"\n")
    assert produced <= 3


def test_a_csv_file_stops_at_the_first_record_beyond_its_manifest(tmp_path):
    path = tmp_path / "pos.csv"
    path.write_bytes(b"receipt_id,line_no\n" + b"r,1\n" * 200_000)
    lf = _landed(path, data_lines=5)
    produced = 0
    with pytest.raises(ingest.LandingError, match="more than the 5 data lines its manifest promises"):
        for chunk in ingest._csv_rows(lf, sources.get("store"), D, ingest.FileLoad(), block_size=1 << 16,
                                      max_lines=lf.data_lines):
            produced += chunk.count(b"\n")
    assert produced <= 5


def test_a_file_longer_than_its_manifest_bytes_is_not_read_past_them(tmp_path):
    path = tmp_path / "pos.csv"
    path.write_bytes(b"receipt_id,line_no\nr,1\n")
    lf = _landed(path, data_lines=1)
    with open(path, "ab") as fh:  # rewritten after its checks
        fh.write(b"r,2\n" * 10)
    with pytest.raises(ingest.LandingError, match="longer than the 23 bytes"):
        list(ingest._csv_rows(lf, sources.get("store"), D, ingest.FileLoad()))


def test_one_huge_line_is_cut_and_costs_the_bound_not_its_size(tmp_path):
    """One 200 MB line took 433 MB; now it costs the line bound (here 64 KiB) plus a block."""
    path = tmp_path / "events.ndjson.gz"
    with gzip.open(path, "wb") as fh:
        fh.write(b'{"event_id":"a"}\n{"page":"' + b"x" * (40 << 20) + b'"}\n{"event_id":"b"}\n')
    lf = _landed(path, data_lines=3)
    stats = ingest.FileLoad()
    tracemalloc.start()
    try:
        rows = b"".join(ingest._ndjson_rows(lf, D, stats, block_size=1 << 16, limit=64 << 10))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    lines = rows.split(b"\n")[:-1]
    assert stats.lines == 3 and len(lines) == 3
    assert lines[1].endswith(b"\tline_too_long") and len(lines[1]) < (64 << 10) + 200
    assert lines[0].endswith(b"\\N\t\\N") and lines[2].endswith(b"\\N\t\\N")
    assert peak < 4 << 20


def test_split_lines_bounds_every_line_at_any_block_size():
    data = b"a\n" + b"x" * 50 + b"\nbb\n" + b"y" * 11 + b"\n" + b"z" * 10
    expected = [b"a", b"x" * 10, b"bb", b"y" * 10, b"z" * 10]
    for size in (1, 3, 7, 10, 11, 64, 1000):
        blocks = [data[i:i + size] for i in range(0, len(data), size)]
        got = [line for part in split_lines(blocks, 10) for line in part]
        assert got == expected, size
        assert [isinstance(x, BadLine) for x in got] == [False, True, False, True, False], size


HEADER = b"sku,name,category,brand,price,currency,stock,repeatable,in_store\n"


def test_a_quote_inside_a_field_is_a_character_not_an_open_record():
    """``Monitor 27"`` opened a quoted field that swallowed the rest of the file (and made reading quadratic)."""
    data = HEADER + b'A1,Monitor 27",tv,b,1,EUR,1,false,true\nA2,Cable,tv,b,1,EUR,1,false,true\n'
    records = split_records(data)
    assert records[1:] == [b'A1,Monitor 27",tv,b,1,EUR,1,false,true', b"A2,Cable,tv,b,1,EUR,1,false,true"]
    assert split_records(b'a,"q ""x"" y\nz",b\nc,d\n') == [b'a,"q ""x"" y\nz",b', b"c,d"]
    assert split_records(b"a;\"x;\ny\";b\nc\n", delimiter=b";") == [b'a;"x;\ny";b', b"c"]


def test_a_quoted_field_left_open_costs_its_own_line_only():
    lines = [b'A%d,"Monitor 27,tv' % 0] + [b"A%d,Cable,tv" % i for i in range(1, 2000)]
    data = b"\n".join(lines) + b"\n"
    records = [r for block in iter_records([data], limit=1024) for r in block]
    assert len(records) == 2000
    assert isinstance(records[0], BadLine) and records[0].reason == "unbalanced_quote"
    assert records[1:] == lines[1:]
    # the same at the end of a file, and counted the same way by the manifest writer
    tail = [r for block in iter_records([b'h\nA,"open\nB,x\nC,y\n']) for r in block]
    assert tail == [b"h", b'A,"open', b"B,x", b"C,y"] and tail[1].reason == "unbalanced_quote"


def test_counting_records_agrees_with_reading_them(tmp_path):
    path = tmp_path / "products.csv"
    data = HEADER + b'A1,Monitor 27",tv\nA2,"open,x\nA3,x\nA4,"multi\nline",y\n'
    path.write_bytes(data)
    assert count_records(path, block_size=7) == len(split_records(data)) - 1 == 3


def test_the_manifest_writer_counts_records_with_the_sources_mapping(tmp_path):
    """A record is split by the delimiter of the source's mapping: ``a;"x<newline>y";b`` is one record of a
    ``;``-separated till export, so the manifest promises what ingest will read."""
    from omnifuse.manifest import write_manifest

    folder = tmp_path / "store" / D.isoformat()
    folder.mkdir(parents=True)
    (folder / "pos.csv").write_bytes(b'Bon;Artikel;Menge\nr1;"Monitor\n27";1\nr2;"Kabel";2\n')
    (tmp_path / "_mappings").mkdir()
    (tmp_path / "_mappings" / "store.toml").write_text('version = 1\n[csv]\ndelimiter = ";"\n')
    assert write_manifest(folder)["files"][0]["data_lines"] == 2


def test_quotes_left_open_on_every_line_cost_each_line_a_bounded_number_of_checks():
    """A file whose every line opens a quoted field that no later line closes: each line is given up in turn, and
    each is checked a bounded number of times (reading it again per given-up line was quadratic)."""
    from omnifuse.landing_csv import _QuoteJoiner

    joiner = _QuoteJoiner(b'"', b",", 1 << 20)
    calls = 0

    def counted(check):
        def call(line):
            nonlocal calls
            calls += 1
            return check(line)
        return call

    joiner.closed, joiner.closes = counted(joiner.closed), counted(joiner.closes)
    lines = [b'"x","y%d' % i for i in range(5000)]
    records = joiner.feed(lines) + joiner.finish()
    assert records == lines and all(r.reason == "unbalanced_quote" for r in records)
    assert calls <= 2 * len(lines)
