"""Reading a landed CSV file: records (a quoted field may hold a newline), a UTF-8 BOM, and a shop's own
export shape through a per-source column mapping — no code.

A mapping is a TOML file ``<mapping dir>/<source>.toml`` (``OMNIFUSE_MAPPING_DIR``, default
``<landing>/_mappings``); see ``docs/landing.md`` for the contract. ``format = "ga4"`` (web, mobile) reads a
standard export instead (``omnifuse.landing.ga4``); ``format = "merchant_center"`` (catalog) is a preset mapping
for a Merchant Center feed plus a per-record rewrite (``omnifuse.landing.merchant_center``). Example, a till
export::

    version = 1
    [csv]
    delimiter = ";"
    decimal = ","          # decimal separator of number columns ("1.234,50" with thousands = ".")
    thousands = "."
    encoding = "cp1252"
    [columns]              # our column = their header
    receipt_id = "Bon"
    sku = "Artikel"
    quantity = "Menge"
    unit_price = "Preis"
    sold_at = "Zeit"
    loyalty_card = "Kundenkarte"
    [timestamps]           # strptime formats; values are rewritten as ISO 8601
    sold_at = "%d/%m/%Y %H:%M"
    [defaults]             # for columns the export lacks (or leaves empty); "@row" = the record's number
    currency = "EUR"
    store_id = "S01"
    line_no = "@row"
"""

from __future__ import annotations

import codecs
import csv
import re
import tomllib
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from itertools import repeat
from operator import contains

from omnifuse import landing_zone
from omnifuse.landing.lines import BadLine, split_lines
from omnifuse.landing_zone import LandingPath, Location

#: Columns read as numbers in every source (decimal and thousands separators apply to them).
NUMBER_COLUMNS = frozenset({"quantity", "unit_price", "price", "stock", "rate_to_eur", "qty"})
BOM = b"\xef\xbb\xbf"
#: ``format`` values of a mapping file: a standard export read as it comes, per source that accepts it.
FORMATS: dict[str, frozenset[str]] = {"ga4": frozenset({"web", "mobile"}), "merchant_center": frozenset({"catalog"})}


class MappingError(ValueError):
    """A mapping file is malformed; the message names the file and the key."""


@dataclass(frozen=True)
class Mapping:
    """A source's column mapping (see the module docstring); ``path`` is where it was read from."""

    path: LandingPath
    format: str | None = None  # a standard export (``FORMATS``) instead of the source's own format
    delimiter: str = ","
    quotechar: str = '"'
    decimal: str = "."
    thousands: str = ""
    encoding: str = "utf-8"
    columns: dict[str, str] = field(default_factory=dict)  # ours -> theirs
    timestamps: dict[str, str] = field(default_factory=dict)  # ours -> strptime format
    defaults: dict[str, str] = field(default_factory=dict)  # ours -> constant or "@row"

    @property
    def renames(self) -> dict[str, str]:
        """Their header -> our column."""
        return {theirs: ours for ours, theirs in self.columns.items()}


def load_mapping(mapping_dir: Location | None, source_name: str) -> Mapping | None:
    """The mapping of ``source_name`` if ``<mapping_dir>/<source>.toml`` exists (a local folder or a prefix in
    object storage), else None."""
    if mapping_dir is None:
        return None
    path = landing_zone.resolve(mapping_dir) / f"{source_name}.toml"
    if not path.is_file():
        return None
    try:
        doc = tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise MappingError(f"{path}: not valid TOML ({exc}); fix the mapping file, then clear the task.") from exc
    if doc.get("version", 1) != 1:
        raise MappingError(f"{path}: mapping version {doc.get('version')!r} is not supported (this release reads 1)")
    unknown = set(doc) - {"version", "format", "csv", "columns", "timestamps", "defaults"}
    if unknown:
        raise MappingError(f"{path}: unknown sections {sorted(unknown)}; allowed: format, csv, columns, timestamps, "
                           "defaults")
    fmt = doc.get("format")
    if fmt is not None and source_name not in FORMATS.get(str(fmt), ()):
        accepted = sorted(f for f, names in FORMATS.items() if source_name in names)
        raise MappingError(f"{path}: format {fmt!r} is not a format of source {source_name!r} (accepted: "
                           f"{accepted or 'none'}); fix the mapping file, then clear the task.")
    opts = doc.get("csv", {})
    bad = set(opts) - {"delimiter", "quotechar", "decimal", "thousands", "encoding"}
    if bad:
        raise MappingError(f"{path}: unknown [csv] keys {sorted(bad)}")
    for key in ("delimiter", "quotechar"):
        if key in opts and len(str(opts[key])) != 1:
            raise MappingError(f"{path}: [csv] {key} must be one character, not {opts[key]!r}")
    encoding = text_encoding(str(opts.get("encoding", "utf-8")), path)
    preset_columns: dict[str, str] = {}
    preset_defaults: dict[str, str] = {}
    delimiter = ","
    if fmt == "merchant_center":  # a preset mapping; the file's own sections override it
        from omnifuse.landing import merchant_center

        preset_columns, preset_defaults = merchant_center.COLUMNS, merchant_center.DEFAULTS
        delimiter = merchant_center.DELIMITER
    return Mapping(
        path=path,
        format=str(fmt) if fmt is not None else None,
        delimiter=str(opts.get("delimiter", delimiter)),
        quotechar=str(opts.get("quotechar", '"')),
        decimal=str(opts.get("decimal", ".")),
        thousands=str(opts.get("thousands", "")),
        encoding=encoding,
        columns={**preset_columns, **{str(k): str(v) for k, v in doc.get("columns", {}).items()}},
        timestamps={str(k): str(v) for k, v in doc.get("timestamps", {}).items()},
        defaults={**preset_defaults, **{str(k): str(v) for k, v in doc.get("defaults", {}).items()}},
    )


#: The longest line or record a reader holds when no bound is given (``OMNIFUSE_INGEST_MAX_LINE_KB`` sets it).
DEFAULT_LINE_LIMIT = 1 << 20


def text_encoding(name: str, path: LandingPath | str) -> str:
    """``name`` if it is a text encoding Python knows (``cp1252``, ``latin-1``, ``utf-16``, ...), else
    :class:`MappingError`. Python also registers codecs that transform bytes (``bz2_codec``, ``zlib_codec``,
    ``base64_codec``, ...): a decompressor as a file's "encoding" turns a small landed file into gigabytes, so
    only codecs Python itself marks as text encodings are accepted."""
    try:
        info = codecs.lookup(name)
    except LookupError:
        raise MappingError(f"{path}: [csv] encoding {name!r} is not an encoding Python knows; name the export's "
                           "text encoding (utf-8, cp1252, latin-1, utf-16, ...), then clear the task.") from None
    if not getattr(info, "_is_text_encoding", False):  # what str.encode / bytes.decode check themselves
        raise MappingError(f"{path}: [csv] encoding {name!r} is not a text encoding (Python's {info.name} codec "
                           "transforms bytes, e.g. decompresses them); name the export's text encoding (utf-8, "
                           "cp1252, latin-1, utf-16, ...), then clear the task. Compressed CSV is not part of "
                           "the landing contract: deliver the file uncompressed.")
    return name


def split_records(data: bytes, quote: bytes = b'"', delimiter: bytes = b",",
                  limit: int = DEFAULT_LINE_LIMIT) -> list[bytes]:
    """The file's records: physical lines, joined while a quoted field is open (a comment with a newline)."""
    return [record for block in iter_records([data], quote, delimiter, limit) for record in block]


def iter_records(blocks: Iterable[bytes], quote: bytes = b'"', delimiter: bytes = b",",
                 limit: int = DEFAULT_LINE_LIMIT) -> Iterator[list[bytes]]:
    """:func:`split_records` over a stream of byte blocks, in memory bounded by the block size and ``limit``:
    yields the complete records found so far (a non-empty list), carrying a partial line or an open quoted
    field on.

    A quote opens a quoted field only at the start of a field, as ``csv.reader`` reads it: ``Monitor 27"`` is a
    field holding a quote, not the start of a multi-line record. A UTF-8 BOM at the start of the stream is
    dropped; the last empty line (after the file's final newline) is not a record. A line longer than ``limit``
    bytes is a :class:`~omnifuse.landing.lines.BadLine` (``line_too_long``, cut); a quoted field that is still
    open after ``limit`` bytes or at the end of the file makes the line that opened it a ``BadLine``
    (``unbalanced_quote``) and the lines after it are read again as records of their own, so one stray quote
    costs one record, not the rest of the file.
    """
    joiner = _QuoteJoiner(quote, delimiter, limit)
    for lines in split_lines(_without_bom(blocks), limit):
        out = joiner.feed(lines)
        if out:
            yield out
    out = joiner.finish()
    if out:
        yield out


def _without_bom(blocks: Iterable[bytes]) -> Iterator[bytes]:
    head = b""
    it = iter(blocks)
    for block in it:
        head += block
        if len(head) >= len(BOM):
            break
    if head.startswith(BOM):
        head = head[len(BOM):]
    if head:
        yield head
    for block in it:
        if block:
            yield block


class _QuoteJoiner:
    """Joins physical lines into CSV records (see :func:`iter_records`), in time linear in the file.

    Whether a line, read from the start of a record, ends inside a quoted field, and whether a line read from
    inside a quoted field closes it, are properties of the line alone (one regular expression each, possessive:
    linear). The lines of an open record after its first all failed to close it; so when the record is given up
    (too long, or the file ends) its first line is the bad one and the others are read again only as far as
    needed: those complete on their own are records, and the first that opens a quoted field starts the next open
    record with the rest as its continuation. Every line is checked a bounded number of times.
    """

    def __init__(self, quote: bytes, delimiter: bytes, limit: int):
        q, d = re.escape(quote), re.escape(delimiter)
        field = b"(?:%s(?:[^%s]|%s%s)*+%s(?!%s)[^%s]*+|[^%s%s][^%s]*+|)" % (q, q, q, q, q, q, d, d, q, d)
        rest = b"(?:%s%s)*+" % (d, field)
        self.quote = quote
        self.closed = re.compile(field + rest, re.S).fullmatch  # a line read from the start of a record
        # a line read from inside an open quoted field: it closes that field and every field it opens
        self.closes = re.compile(b"(?:[^%s]|%s%s)*+%s(?!%s)[^%s]*+" % (q, q, q, q, q, d) + rest, re.S).fullmatch
        self.limit = limit
        self.pending: deque[bytes] = deque()  # an open record: its first line, then lines that did not close it
        self.pending_bytes = 0

    def feed(self, lines: list[bytes]) -> list[bytes]:
        if not self.pending and not any(map(contains, lines, repeat(self.quote))):  # the usual block: in C
            return lines
        out: list[bytes] = []
        for line in lines:
            if isinstance(line, BadLine):  # cut at the bound: it ends any open record and is a record of its own
                while self.pending:
                    self._give_up(out)
                out.append(line)
            elif self.pending:
                if self.closes(line):
                    self.pending.append(line)
                    out.append(b"\n".join(self.pending))
                    self.pending.clear()
                    self.pending_bytes = 0
                else:
                    self.pending.append(line)
                    self.pending_bytes += len(line) + 1
                    while self.pending_bytes > self.limit:
                        self._give_up(out)
            elif self.quote not in line or self.closed(line):
                out.append(line)
            else:
                self.pending.append(line)
                self.pending_bytes = len(line)
        return out

    def finish(self) -> list[bytes]:
        out: list[bytes] = []
        while self.pending:
            self._give_up(out)
        return out

    def _give_up(self, out: list[bytes]) -> None:
        """The open record's first line is a bad record; the lines after it are read again from a record's start
        until one opens a quoted field, which then heads the open record (the rest stay its continuation)."""
        first = self.pending.popleft()
        out.append(BadLine(first[:self.limit], "unbalanced_quote"))
        self.pending_bytes -= len(first) + 1
        while self.pending and (self.quote not in self.pending[0] or self.closed(self.pending[0])):
            line = self.pending.popleft()
            self.pending_bytes -= len(line) + 1
            out.append(line)
        if not self.pending:
            self.pending_bytes = 0


def read_blocks(path: Location, size: int) -> Iterator[bytes]:
    """The bytes of ``path`` (a local file or an object in object storage) in blocks of ``size``."""
    with landing_zone.open_binary(landing_zone.resolve(path), size) as fh:
        while block := fh.read(size):
            yield block


def count_records(path: Location, quote: bytes = b'"', block_size: int = 1 << 20, delimiter: bytes = b",",
                  limit: int = DEFAULT_LINE_LIMIT) -> int:
    """Data records of a CSV file (after the header), as ingest counts them; reads ``block_size`` bytes at a time."""
    records = sum(len(block) for block in iter_records(read_blocks(path, block_size), quote, delimiter, limit))
    return max(records - 1, 0)


def _number(value: str, mapping: Mapping) -> str:
    if mapping.thousands:
        value = value.replace(mapping.thousands, "")
    if mapping.decimal != ".":
        value = value.replace(mapping.decimal, ".")
    return value.strip()


def apply_mapping(row: dict[str, str], mapping: Mapping, record_no: int) -> dict[str, str]:
    """One record (already keyed by our column names) rewritten to the landing contract's shape.

    Numbers get a dot decimal, timestamps ISO 8601 (a value that does not match its format is left as it is,
    so staging quarantines it as ``invalid_timestamp`` with the original text), defaults fill what is missing.
    """
    for column, default in mapping.defaults.items():
        if not row.get(column):
            row[column] = str(record_no) if default == "@row" else default
    for column in NUMBER_COLUMNS.intersection(row):
        if row[column]:
            row[column] = _number(row[column], mapping)
    for column, fmt in mapping.timestamps.items():
        value = row.get(column)
        if value:
            try:
                row[column] = datetime.strptime(value.strip(), fmt).isoformat(sep=" ")
            except ValueError:
                pass
    return row


def parse_record(text: str, mapping: Mapping | None) -> list[str]:
    """Split one record into fields with the mapping's delimiter and quote character."""
    if mapping is None:
        return next(csv.reader([text]), [])
    return next(csv.reader([text], delimiter=mapping.delimiter, quotechar=mapping.quotechar), [])
