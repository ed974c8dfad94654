"""Landing zone → ``raw`` → ``staging`` / ``core`` snapshots, with quarantine and the load audit.

One call of :func:`ingest_source` owns one (source, business date): the landing folder
``<folder>/<business date>/``, whose lines all carry that date as their arrival date (``_arrival_date``, the
list-partition key of the raw, quarantine and staging tables). In a single transaction, under a
transaction-level advisory lock, it truncates that date's partitions, COPYs every landed line into
``raw.<table>`` with lineage, types them into the source's target table with its ``.sql`` file, sends
every other line to ``quarantine.<table>`` with a reason, and writes ``ops.load_audit`` — so a re-run
replaces exactly what the run owns and a failure leaves the previous load in place.
"""

from __future__ import annotations

import codecs
import gzip
import hashlib
import io
import itertools
import json
import logging
import queue
import re
import threading
import time
import zlib
from collections.abc import Generator, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date
from fnmatch import fnmatchcase
from pathlib import Path
from typing import IO

import psycopg2
import psycopg2.extensions
from psycopg2 import sql

from omnifuse import landing_zone, sources, staging_sql, warehouse
from omnifuse.config import Settings, load_settings
from omnifuse.landing import ga4, merchant_center
from omnifuse.landing.lines import BadLine, any_too_deep, split_lines, too_deep
from omnifuse.landing_csv import (
    Mapping,
    MappingError,
    apply_mapping,
    iter_records,
    load_mapping,
    parse_record,
    read_blocks,
    text_encoding,
)
from omnifuse.landing_zone import LandingPath, Location
from omnifuse.rules import staging_params
from omnifuse.sources import Source

log = logging.getLogger(__name__)

MANIFEST = "_manifest.json"
#: The setting behind :func:`block_bytes` (``Settings.ingest_block_mb``; tests and benches set it).
BLOCK_MB_ENV = "OMNIFUSE_INGEST_BLOCK_MB"


def block_bytes(settings: Settings | None = None) -> int:
    """Bytes of a landed file read per step: ``OMNIFUSE_INGEST_BLOCK_MB`` (default 1; at least 64 KiB). Peak memory
    of a load grows with it (about 30x: the block, its lines, their COPY rows), never with the size of the files;
    larger blocks are not faster."""
    return max(int((settings or load_settings()).ingest_block_mb * (1 << 20)), 1 << 16)


def line_limit(settings: Settings | None = None) -> int:
    """Bytes of the longest landed line (or CSV record) read as data: ``OMNIFUSE_INGEST_MAX_LINE_KB``. A longer
    line is quarantined ``line_too_long`` with its first bytes; no more of it is held in memory."""
    return (settings or load_settings()).ingest_max_line_kb * 1024


class LandingError(RuntimeError):
    """A landed file is missing, truncated or corrupt. The message names the file and what to do."""


@dataclass(frozen=True)
class LandedFile:
    path: LandingPath  # a local file or an object in object storage (omnifuse.landing_zone)
    relative: str  # "<folder>/<date>/<name>": what raw._source_file records, the same wherever the zone lives
    bytes: int
    sha256: str
    data_lines: int


@dataclass
class FileLoad:
    """What landing one file found: data lines, header and column renames (CSV)."""

    lines: int = 0
    records: int | None = None  # lines of the audit when they differ from the file's (a GA4 row per item)
    header: str | None = None
    mapping: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def landing_folder(landing_dir: Location, source: Source, business_date: date) -> LandingPath:
    """``<landing>/<folder>/<date>``: a local folder or an object-storage prefix (see :mod:`omnifuse.landing_zone`)."""
    return landing_zone.resolve(landing_dir) / source.folder / business_date.isoformat()


def manifest_file(landing_dir: Location, folder: str, business_date: date) -> LandingPath:
    """``<landing>/<folder>/<date>/_manifest.json``, what the sensor of that folder waits for."""
    return landing_zone.resolve(landing_dir) / folder / business_date.isoformat() / MANIFEST


def folder_ready(landing_dir: Location, folder: str, business_date: date) -> bool:
    """True once the sender has written ``_manifest.json`` (it is written last) for that folder and day."""
    return manifest_file(landing_dir, folder, business_date).is_file()


def landed_files(landing_dir: Location, source: Source, business_date: date) -> list[LandedFile]:
    """The files of ``source`` for ``business_date`` listed in the manifest, checked for presence and size
    (in a local folder or in object storage alike)."""
    folder = landing_folder(landing_dir, source, business_date)
    manifest_path = folder / MANIFEST
    if not manifest_path.is_file():
        raise LandingError(
            f"{manifest_path}: no manifest, so the {source.folder} delivery for {business_date} is not complete. "
            "Check that the sender delivered this day (the sensor waits for this file), then clear the task."
        )
    try:
        manifest = json.loads(manifest_path.read_text())
        entries = manifest["files"]
    except (ValueError, KeyError, TypeError) as exc:
        raise LandingError(f"{manifest_path}: unreadable manifest ({exc}); ask the sender to re-deliver it.") from exc
    if not isinstance(entries, list):
        raise LandingError(f"{manifest_path}: \"files\" is not a list; ask the sender to re-deliver the manifest.")
    found = []
    readers = [s for s in sources.REGISTRY.values() if s.folder == source.folder]
    seen: set[str] = set()
    for entry in entries:
        name, listed_bytes, sha256, lines = _manifest_entry(entry, manifest_path, source, business_date)
        if name in seen:
            raise LandingError(
                f"{manifest_path}: {name!r} is listed twice. Nothing was loaded for {source.name} on "
                f"{business_date}; ask the sender to list each file once, then clear the task.")
        seen.add(name)
        if not any(fnmatchcase(name, pattern) for reader in readers for pattern in reader.patterns):
            raise LandingError(
                f"{manifest_path}: lists {name!r}, which no source of the {source.folder} folder reads (file "
                f"names: {sorted({p for reader in readers for p in reader.patterns})}). Nothing was loaded for "
                f"{source.name} on {business_date}; ask the sender to name the file by the landing contract "
                "(docs/landing.md) or to leave it out of the manifest, then clear the task.")
        if not any(fnmatchcase(name, pattern) for pattern in source.patterns):
            continue  # another source of this folder reads it
        path = folder / name
        relative = f"{source.folder}/{business_date.isoformat()}/{name}"
        if isinstance(path, Path) and isinstance(folder, Path) and (
                path.is_symlink() or path.resolve().parent != folder.resolve()):
            raise LandingError(
                f"{folder}: {name!r} is a link, not a file of this folder; ingest reads only files delivered into "
                f"the folder. Nothing was loaded for {source.name} on {business_date}; ask the sender to deliver "
                "the file itself, then clear the task.")
        if not path.is_file():
            raise LandingError(
                f"{path}: listed in {MANIFEST} but missing. Nothing was loaded for {source.name} on "
                f"{business_date}; ask the sender to re-deliver the file, then clear the task."
            )
        size = path.stat().st_size
        if size != listed_bytes:
            raise LandingError(
                f"{path}: {size} bytes on disk but {listed_bytes} in {MANIFEST} — the file is truncated or was "
                f"overwritten. Nothing was loaded for {source.name} on {business_date}; ask for a re-delivery."
            )
        found.append(LandedFile(path, relative, size, sha256, lines))
    if not entries:
        # an explicit empty delivery (a holiday, a closed store): a valid zero-row run, audited as such
        log.info("%s: the manifest lists no file; %s has no data for %s", manifest_path, source.name, business_date)
        return []
    if not found:
        raise LandingError(
            f"{folder}: the manifest lists no file matching {list(source.patterns)} for {source.name}; "
            "check the sender's file naming (an empty delivery is a manifest with \"files\": [])."
        )
    return sorted(found, key=lambda f: f.relative)


#: A manifest name: a plain file name of its folder (no separator, no control character such as a tab or newline).
_PLAIN_NAME = re.compile(r"[^/\\\x00-\x1f\x7f]+")
_SHA256 = re.compile(r"[0-9a-fA-F]{64}")


def plain_name(name: str) -> bool:
    """True when ``name`` names a file directly in its folder: no ``/`` or ``\\``, not ``.``/``..`` nor a
    dot file, not the manifest itself, no control character (a tab or newline would also break the COPY)."""
    return bool(_PLAIN_NAME.fullmatch(name)) and not name.startswith(".") and name != MANIFEST


def _manifest_entry(entry: object, manifest_path: LandingPath, source: Source,
                    business_date: date) -> tuple[str, int, str, int]:
    """(name, bytes, sha256, data lines) of one manifest entry, checked before anything is opened: a name that
    is not a plain file name of the folder is refused without looking at what it points to."""
    nothing = (f"Nothing was loaded for {source.name} on {business_date}; ask the sender to re-deliver the manifest "
               "(`omnifuse manifest <folder>` writes a valid one), then clear the task.")
    if not isinstance(entry, dict):
        raise LandingError(f"{manifest_path}: the entry {entry!r} is not an object with name, bytes, sha256 and "
                           f"data_lines. {nothing}")
    name = entry.get("name")
    if not isinstance(name, str) or not plain_name(name):
        raise LandingError(
            f"{manifest_path}: the entry name {name!r} is not a plain file name of this folder (no '/', '\\', "
            f"'..', leading '.', tab, newline or other control character). {nothing}")
    listed_bytes, lines, sha256 = entry.get("bytes"), entry.get("data_lines"), entry.get("sha256")
    for key, value in (("bytes", listed_bytes), ("data_lines", lines)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise LandingError(f"{manifest_path}: {name}: {key} {value!r} is not a count. {nothing}")
    if not isinstance(sha256, str) or not _SHA256.fullmatch(sha256):
        raise LandingError(f"{manifest_path}: {name}: sha256 {sha256!r} is not a SHA-256 in hex. {nothing}")
    assert isinstance(listed_bytes, int) and isinstance(lines, int)
    return name, listed_bytes, sha256, lines


def verify_checksum(lf: LandedFile, source: Source, business_date: date, block_size: int | None = None) -> None:
    """Raise :class:`LandingError` when the file's sha256 differs from the manifest's (a partial or swapped file);
    reads ``block_size`` bytes at a time (default :func:`block_bytes`)."""
    digest = hashlib.sha256()
    for block in read_blocks(lf.path, block_size or block_bytes()):
        digest.update(block)
    if digest.hexdigest() != lf.sha256.lower():
        raise LandingError(
            f"{lf.path}: sha256 {digest.hexdigest()} but {MANIFEST} promises {lf.sha256} — the file was changed "
            f"or corrupted after the manifest was written. Nothing was loaded for {source.name} on {business_date}; "
            "ask the sender to re-deliver the file and its manifest, then clear the task."
        )


# --- COPY streams ----------------------------------------------------------------------------------------


class ChunkStream(io.RawIOBase):
    """A read-only file over an iterator of byte chunks (what ``copy_expert`` reads from).

    Reads advance an offset into the current buffer; only the unread tail is copied when a chunk is added.
    """

    def __init__(self, chunks: Iterable[bytes]):
        self._chunks: Iterator[bytes] = iter(chunks)
        self._buf = b""
        self._pos = 0
        self.error: BaseException | None = None  # what the producer raised (psycopg2 only reports "read failed")

    def readable(self) -> bool:
        return True

    def _next_chunk(self) -> bool:
        try:
            chunk = next(self._chunks)
        except StopIteration:
            return False
        except Exception as exc:
            self.error = exc
            raise
        self._buf = self._buf[self._pos:] + chunk
        self._pos = 0
        return True

    def read(self, size: int = -1) -> bytes:
        if size < 0:
            while self._next_chunk():
                pass
            size = len(self._buf) - self._pos
        while len(self._buf) - self._pos < size and self._next_chunk():
            pass
        out = self._buf[self._pos:self._pos + size]
        self._pos += len(out)
        return out


_DONE = object()


def produced_ahead(chunks: Iterator[bytes], depth: int = 2) -> Generator[bytes, None, None]:
    """``chunks``, produced by a thread up to ``depth`` chunks ahead of the reader.

    The server copies one block while Python parses and formats the next (psycopg2 releases the GIL while it
    sends). Memory stays bounded: at most ``depth`` chunks wait. An error of the producer is raised here; when
    the reader stops early (a failed COPY), the producer stops too.
    """
    waiting: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(item: object) -> bool:
        while not stop.is_set():
            try:
                waiting.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for chunk in chunks:
                if not put(chunk):
                    return
            put(_DONE)
        except BaseException as exc:  # handed to the reader, which raises it
            put(exc)

    producer = threading.Thread(target=produce, name="ingest-producer", daemon=True)
    producer.start()
    try:
        while (item := waiting.get()) is not _DONE:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        producer.join()


def _escape(block: bytes) -> bytes:
    """Escape a block of lines for COPY text format (newlines stay: they separate the lines)."""
    return block.replace(b"\\", b"\\\\").replace(b"\t", b"\\t").replace(b"\r", b"\\r")


def _clean_line(line: bytes) -> tuple[bytes, bytes]:
    """Make one line storable as text: returns (escaped line, parse error or ``\\N``)."""
    error = b"\\N"
    if b"\x00" in line:
        line, error = line.replace(b"\x00", b""), b"nul_byte"
    try:
        line.decode("utf-8")
    except UnicodeDecodeError:
        line, error = line.decode("utf-8", errors="replace").encode(), b"invalid_utf8"
    return _escape(line).replace(b"\n", b"\\n"), error  # a CSV record may hold a newline


def _copy_text(value: str) -> str:
    """``value`` escaped for a COPY text-format field."""
    return value.replace("\\", "\\\\").replace("\t", "\\t").replace("\r", "\\r").replace("\n", "\\n")


def _bounded_blocks(lf: LandedFile, size: int) -> Iterator[bytes]:
    """The file's bytes in blocks of ``size``, never more than the manifest's ``bytes``: a file that grows while it
    is read (rewritten after its checks) raises :class:`LandingError` at once."""
    read = 0
    for block in read_blocks(lf.path, size):
        read += len(block)
        if read > lf.bytes:
            raise _grew(lf)
        yield block


def _grew(lf: LandedFile) -> LandingError:
    return LandingError(
        f"{lf.path}: longer than the {lf.bytes} bytes its manifest promises — the file was rewritten while it was "
        "loaded. Nothing was loaded; ask the sender not to touch a delivered folder, then clear the task.")


def _too_many_lines(lf: LandedFile, business_date: date, max_lines: int) -> LandingError:
    return LandingError(
        f"{lf.path}: more than the {max_lines} data lines its manifest promises (reading stopped at line "
        f"{max_lines + 1}) — the file is not the one the manifest describes. Nothing was loaded for "
        f"{business_date}; ask for a re-delivery of the file and its manifest, then clear the task.")


def _gzip_lines(lf: LandedFile, business_date: date, size: int, limit: int,
                max_lines: int | None = None) -> Iterator[list[bytes]]:
    """The lines of a gzip file, ``size`` bytes of it at a time (a line cut by a block's end is carried into
    the next; a line longer than ``limit`` is a :class:`BadLine`, cut). Reading stops, raising
    :class:`LandingError`, as soon as the file holds more than ``max_lines`` lines (what its manifest promises) or
    more bytes than its manifest; a corrupt or truncated file raises :class:`LandingError` naming it."""
    line_no = 0

    def decompressed(raw: IO[bytes], fh: gzip.GzipFile) -> Iterator[bytes]:
        while block := fh.read(size):
            if raw.tell() > lf.bytes:
                raise _grew(lf)
            yield block

    try:
        with landing_zone.open_binary(lf.path, size) as raw, gzip.GzipFile(fileobj=raw, mode="rb") as fh:
            for parts in split_lines(decompressed(raw, fh), limit):
                line_no += len(parts)
                if max_lines is not None and line_no > max_lines:
                    raise _too_many_lines(lf, business_date, max_lines)
                yield parts
    except (gzip.BadGzipFile, EOFError, zlib.error) as exc:  # not the storage's own errors: those may be retried
        raise LandingError(
            f"{lf.path}: corrupt or truncated gzip after {line_no} lines ({exc}). Nothing was loaded for "
            f"{business_date}; ask the sender to re-deliver the file, then clear the task."
        ) from exc


#: The first lines of an NDJSON file whose keys are read in Python (and then the first lines of every block): enough
#: to see a renamed key, far fewer than the lines COPYed.
KEY_SAMPLE_LINES = 1000
KEY_SAMPLE_PER_BLOCK = 20


@dataclass
class _KeyNotes:
    """What an NDJSON file's keys say: top-level keys the source does not read (from a sample of lines) and, per
    optional key, how many lines carry it (every line, counted in bytes)."""

    source: Source
    sampled: int = 0
    unexpected: dict[str, int] = field(default_factory=dict)
    optional: dict[str, int] = field(default_factory=dict)

    def see(self, parts: list[bytes], rows: bytes, first_block_line: int) -> None:
        """``parts``: a block's lines, numbered from ``first_block_line``; ``rows``: their COPY rows (the key
        names are not changed by escaping: one ``bytes.count`` per optional key and block)."""
        for key in self.source.optional_keys:
            self.optional[key] = self.optional.get(key, 0) + rows.count(b'"%s":' % key.encode())
        take = max(KEY_SAMPLE_LINES - first_block_line, KEY_SAMPLE_PER_BLOCK)
        for line in parts[:take]:
            if isinstance(line, BadLine) or too_deep(line):
                continue
            try:
                doc = json.loads(line)
            except ValueError:
                continue
            if not isinstance(doc, dict):
                continue
            self.sampled += 1
            for key in doc:
                if key not in self.source.keys:
                    self.unexpected[key] = self.unexpected.get(key, 0) + 1

    def notes(self, relative: str, lines: int) -> list[str]:
        if not self.unexpected:
            return []
        listed = ", ".join(f"'{k}' on {n}" for k, n in sorted(self.unexpected.items()))
        out = [f"{relative}: keys the {self.source.name} source does not read, kept in raw.line only ({listed} of "
               f"{self.sampled} sampled lines)"]
        for key, carried in self.optional.items():
            if carried == 0 and lines:
                out.append(f"{relative}: no line carries the optional key '{key}', so it is NULL on all {lines} lines "
                           f"— was it renamed (to {', '.join(repr(k) for k in sorted(self.unexpected))})? Ask the "
                           "sender to restore the key, then re-run the date.")
        return out


def _ndjson_rows(lf: LandedFile, business_date: date, stats: FileLoad,
                 block_size: int | None = None, limit: int | None = None,
                 source: Source | None = None, max_lines: int | None = None) -> Iterator[bytes]:
    """COPY rows (arrival date, file, line no, line, fields, parse error) for a gzip NDJSON file; with ``source``,
    keys it does not read are noted in ``stats.notes`` (a renamed optional key would otherwise be NULL silently)."""
    prefix = f"{business_date.isoformat()}\t{_copy_text(lf.relative)}\t".encode()
    line_no = 0
    keys = _KeyNotes(source) if source is not None and source.keys else None
    for parts in _gzip_lines(lf, business_date, block_size or block_bytes(), limit or line_limit(), max_lines):
        block = _rows_from_parts(parts, prefix, line_no)
        if keys is not None:
            keys.see(parts, block, line_no)
        yield block
        line_no += len(parts)
    stats.lines = line_no
    if keys is not None:
        stats.notes.extend(keys.notes(lf.relative, line_no))


def _ga4_rows(lf: LandedFile, source: Source, business_date: date, stats: FileLoad,
              block_size: int | None = None, limit: int | None = None,
              max_lines: int | None = None) -> Iterator[bytes]:
    """COPY rows for a gzip GA4 export file (``format = "ga4"``): one row per item of each interaction event,
    with the native record of ``source`` as ``line`` and the GA4 row's line number as ``_line_no``; a row that
    cannot be expanded lands once, as it came, with its reason in ``_parse_error``. Rows that are not
    interactions of this source are counted in ``stats.notes`` (see :mod:`omnifuse.landing.ga4`)."""
    prefix = f"{business_date.isoformat()}\t{_copy_text(lf.relative)}\t"
    line_no = records = 0
    skipped: dict[str, int] = {}

    def rows(parts: list[bytes], start: int) -> bytes:
        nonlocal records
        out = []
        for n, raw_line in enumerate(parts, start=start + 1):
            text, error = _line_error(raw_line)
            if error != b"\\N":
                out.append(f"{prefix}{n}\t{text.decode()}\t\\N\t{error.decode()}\n")
                records += 1
                continue
            found = ga4.expand(raw_line.decode("utf-8"), source.name)
            if found.skipped is not None:
                skipped[found.skipped] = skipped.get(found.skipped, 0) + 1
                continue
            if found.reason is not None:
                out.append(f"{prefix}{n}\t{text.decode()}\t\\N\t{found.reason}\n")
                records += 1
                continue
            for record in found.records:
                out.append(f"{prefix}{n}\t{_copy_text(record)}\t\\N\t\\N\n")
            records += len(found.records)
        return "".join(out).encode()

    for parts in _gzip_lines(lf, business_date, block_size or block_bytes(), limit or line_limit(), max_lines):
        yield rows(parts, line_no)
        line_no += len(parts)
    stats.lines, stats.records = line_no, records
    stats.notes.append(f"{lf.relative}: read as a GA4 export, {line_no} GA4 rows -> {records} lines (one per item)")
    if skipped:
        listed = ", ".join(f"{k}={v}" for k, v in sorted(skipped.items()))
        stats.notes.append(f"{lf.relative}: {sum(skipped.values())} GA4 rows are not {source.name} interactions "
                           f"and were not loaded ({listed})")


def _line_error(line: bytes) -> tuple[bytes, bytes]:
    """(escaped line, its reason or ``\\N``) of one NDJSON line: a line cut at the bound (``line_too_long``), a
    NUL byte, invalid UTF-8, or JSON nested deeper than PostgreSQL parses (``json_too_deep``)."""
    text, error = _clean_line(line)
    if isinstance(line, BadLine):
        return text, line.reason.encode()
    if error == b"\\N" and too_deep(line):
        return text, b"json_too_deep"
    return text, error


def _rows_from_parts(parts: list[bytes], prefix: bytes, start: int) -> bytes:
    block = b"\n".join(parts)
    clean = b"\x00" not in block and BadLine not in map(type, parts)
    if clean:
        try:
            block.decode("utf-8")
        except UnicodeDecodeError:
            clean = False
    if clean:
        clean = not any_too_deep(parts)
    if clean:
        escaped = _escape(block).split(b"\n") if parts else []
        return b"".join([b"%s%d\t%s\t\\N\t\\N\n" % (prefix, n, line)
                         for n, line in enumerate(escaped, start=start + 1)])
    out = []
    for n, line in enumerate(parts, start=start + 1):
        text, error = _line_error(line)
        out.append(b"%s%d\t%s\t\\N\t%s\n" % (prefix, n, text, error))
    return b"".join(out)


def _decoded_blocks(lf: LandedFile, mapping: Mapping | None, size: int) -> Iterator[bytes]:
    """The file's bytes in blocks of ``size`` (never more than the manifest's bytes), as UTF-8 (transcoded from
    the mapping's encoding, which must be a text encoding: a decompressing codec is refused)."""
    blocks = _bounded_blocks(lf, size)
    if mapping is None or mapping.encoding.lower().replace("-", "") in ("utf8", "utf8sig"):
        yield from blocks
        return
    try:
        decoder = codecs.getincrementaldecoder(text_encoding(mapping.encoding, mapping.path))()
        for block in blocks:
            yield decoder.decode(block).encode("utf-8")
        yield decoder.decode(b"", final=True).encode("utf-8")
    except (UnicodeDecodeError, LookupError) as exc:
        raise LandingError(f"{lf.path}: cannot be read as {mapping.encoding} ({exc}), the encoding that "
                           f"{mapping.path} names; fix the mapping or ask for a re-delivery.") from exc


def _csv_rows(lf: LandedFile, source: Source, business_date: date, stats: FileLoad,
              mapping: Mapping | None = None, block_size: int | None = None,
              limit: int | None = None, max_lines: int | None = None) -> Iterator[bytes]:
    """COPY rows for a CSV file; ``fields`` holds the columns keyed by canonical name.

    One row per record (a quoted field may span lines); a UTF-8 BOM is ignored; with a ``mapping`` the
    shop's delimiter, encoding, column names, number and timestamp formats and defaults are applied. The file
    is read :func:`block_bytes` at a time: memory does not grow with the file.
    """
    quote = (mapping.quotechar if mapping else '"').encode()
    delimiter = mapping.delimiter if mapping else ","
    blocks = iter_records(_decoded_blocks(lf, mapping, block_size or block_bytes()), quote, delimiter.encode(),
                          limit or line_limit())
    first = next(blocks, None)
    if not first:
        raise LandingError(f"{lf.path}: empty file (no header). Ask the sender to re-deliver it.")
    if isinstance(first[0], BadLine):
        raise LandingError(f"{lf.path}: the header cannot be read ({first[0].reason}). Nothing was loaded; ask the "
                           "sender to re-deliver the file with a one-line header, then clear the task.")
    header_text = first[0].decode("utf-8", errors="replace").rstrip("\r")
    header = [h.strip() for h in parse_record(header_text, mapping)]
    renames = {**source.aliases, **(mapping.renames if mapping else {})}
    canonical = []
    for column in header:
        target = renames.get(column, column)
        if target != column:
            stats.mapping[column] = target
            if mapping is None or column not in mapping.renames:
                stats.notes.append(f"{lf.relative}: column '{column}' mapped to '{target}'")
        canonical.append(target)
    if mapping is not None:
        stats.notes.append(f"{lf.relative}: read through {mapping.path.name}")
    provided = set(canonical) | set(mapping.defaults if mapping else ())
    missing = [c for c in source.required_columns if c not in provided]
    header_error = f"missing_column:{missing[0]}".encode() if missing else None
    if missing:
        stats.notes.append(f"{lf.relative}: header lacks {missing} (header: {header_text}); rows quarantined")
    unknown = [c for c in canonical if c not in source.columns]
    if unknown:
        stats.notes.append(f"{lf.relative}: unexpected columns {unknown} kept in raw.fields")
    stats.header = header_text
    prefix = f"{business_date.isoformat()}\t{_copy_text(lf.relative)}\t"
    width = len(canonical)
    dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
    # A record without quote, CR or NUL splits like csv.reader splits it; when it also holds no backslash, JSON
    # quote or control character, its fields' JSON is a fixed template filled with the values as they are.
    plain = re.compile(f"[{re.escape(quote.decode())}\r\x00]").search
    unsafe = re.compile(f"[\\x00-\\x1f\"\\\\{re.escape(quote.decode())}]").search
    template = None
    if mapping is None and header_error is None and len(set(canonical)) == width:
        keys = [dumps(c).replace("\\", "\\\\").replace("{", "{{").replace("}", "}}") for c in canonical]
        template = "{{" + ",".join(f'{k}:"{{}}"' for k in keys) + "}}"
    n = 1  # the header is record 1
    header_reason = header_error.decode() if header_error is not None else None
    wrong_field_count = b"wrong_field_count".decode()  # a blank line too (tests find the reason as a bytes literal)
    for records in itertools.chain([first[1:]], blocks):
        out: list[str] = []
        if max_lines is not None and n - 1 + len(records) > max_lines:
            raise _too_many_lines(lf, business_date, max_lines)
        for raw_line in records:
            n += 1
            if isinstance(raw_line, BadLine):  # a record cut at the bound, or a quote left open
                cut, _ = _clean_line(raw_line)
                out.append(f"{prefix}{n}\t{cut.decode()}\t\\N\t{raw_line.reason}\n")
                continue
            record = raw_line.rstrip(b"\r")
            if b"\x00" in record:  # stored without its NUL bytes, with that reason
                out.append(_unreadable_record_row(record, n, prefix))
                continue
            try:
                decoded = record.decode("utf-8")
            except UnicodeDecodeError:
                out.append(_unreadable_record_row(record, n, prefix))
                continue
            text = _copy_text(decoded)
            if header_reason is not None:
                out.append(f"{prefix}{n}\t{text}\t\\N\t{header_reason}\n")
                continue
            if template is not None and decoded and unsafe(decoded) is None:
                row = decoded.split(delimiter)
                if len(row) != width:
                    out.append(f"{prefix}{n}\t{text}\t\\N\t{wrong_field_count}\n")
                else:
                    out.append(f"{prefix}{n}\t{text}\t{template.format(*row)}\t\\N\n")
                continue
            if not decoded:
                row = []
            elif plain(decoded) is None:
                row = decoded.split(delimiter)
            else:
                row = parse_record(decoded, mapping)
            if len(row) != width:
                out.append(f"{prefix}{n}\t{text}\t\\N\t{wrong_field_count}\n")
                continue
            values = dict(zip(canonical, row, strict=True))
            if mapping is not None:
                values = apply_mapping(values, mapping, n - 1)
                if mapping.format == merchant_center.FORMAT:
                    values = merchant_center.to_catalog(values)
            fields = dumps(values).replace("\\", "\\\\")
            out.append(f"{prefix}{n}\t{text}\t{fields}\t\\N\n")
        if out:
            yield "".join(out).encode()
    stats.lines = n - 1


def _unreadable_record_row(record: bytes, n: int, prefix: str) -> str:
    """The COPY row of a record holding a NUL byte (removed) or invalid UTF-8 (replaced), with that reason."""
    text, error = _clean_line(record)
    return f"{prefix}{n}\t{text.decode()}\t\\N\t{error.decode()}\n"


# --- the load --------------------------------------------------------------------------------------------


def _partition(schema: str, table: str, business_date: date) -> sql.Identifier:
    """The list partition of ``schema.table`` for one arrival (or snapshot) date: :func:`warehouse.partition_name`."""
    return sql.Identifier(schema, warehouse.partition_name(table, business_date))


def _fresh_partition(cur, schema: str, table: str, business_date: date) -> sql.Identifier:
    """Create the partition of ``schema.table`` for the date if needed, and empty it (this transaction owns it)."""
    part = _partition(schema, table, business_date)
    cur.execute(
        sql.SQL("create table if not exists {} partition of {} for values in ({})").format(
            part, sql.Identifier(schema, table), sql.Literal(business_date.isoformat())
        )
    )
    cur.execute(sql.SQL("truncate {}").format(part))
    return part


def load_source(
    cur: psycopg2.extensions.cursor,
    source: Source,
    business_date: date,
    files: list[LandedFile],
    late_window_days: int,
    mapping: Mapping | None = None,
    *,
    settings: Settings,
) -> dict[str, object]:
    """Land, type, quarantine and audit one (source, date) inside the caller's transaction (CSV files are
    read through ``mapping`` when the source has one; ``format = "ga4"`` reads GA4 exports for web/mobile).
    ``settings``: the block size files are read by and the staging bounds."""
    started = time.perf_counter()
    block = block_bytes(settings)
    limit = line_limit(settings)
    warehouse.lock(cur, "ingest", source.name, business_date)
    raw_part = _fresh_partition(cur, "raw", source.table, business_date)
    _fresh_partition(cur, "quarantine", source.table, business_date)
    target_schema, target_table = source.target.split(".")
    if target_schema == "staging" or target_table.endswith("_snapshots"):
        _fresh_partition(cur, target_schema, target_table, business_date)
    cur.execute(
        "delete from ops.landed_files where source = %s and business_date = %s", (source.name, business_date)
    )

    copy = sql.SQL("copy {} (_arrival_date, _source_file, _line_no, line, fields, _parse_error) from stdin").format(
        raw_part
    )
    lines_read = 0
    notes: list[str] = []
    for lf in files:
        verify_checksum(lf, source, business_date, block)
        stats = FileLoad()
        if mapping is not None and mapping.format == "ga4":
            rows = _ga4_rows(lf, source, business_date, stats, block, limit, lf.data_lines)
        elif source.fmt == "ndjson":
            rows = _ndjson_rows(lf, business_date, stats, block, limit, source, lf.data_lines)
        else:
            rows = _csv_rows(lf, source, business_date, stats, mapping, block, limit, lf.data_lines)
        ahead = produced_ahead(rows)
        stream = ChunkStream(ahead)
        try:
            warehouse.copy_from(cur, copy, stream)  # type: ignore[arg-type]  # a raw binary stream COPY reads
        except psycopg2.Error:
            if stream.error is not None:
                raise stream.error from None
            raise
        finally:
            ahead.close()  # stops the producer if the COPY ended early
        if stats.lines != lf.data_lines:
            raise LandingError(
                f"{lf.path}: {stats.lines} data lines read but the manifest promises {lf.data_lines} — the file is "
                f"truncated or was rewritten. Nothing was loaded for {source.name} on {business_date}; "
                "ask for a re-delivery."
            )
        lines_read += stats.lines if stats.records is None else stats.records
        notes.extend(stats.notes)
        cur.execute(
            """
            insert into ops.landed_files
                (source, business_date, source_file, bytes, sha256, data_lines, header, column_mapping)
            values (%s, %s, %s, %s, %s, %s, %s, %s)
            """,
            (source.name, business_date, lf.relative, lf.bytes, lf.sha256, stats.lines, stats.header,
             json.dumps(stats.mapping)),
        )
    # Statistics of the lines just landed: without them the planner guesses a few rows and may scan the catalog
    # once per line (a nested loop) instead of hashing it once.
    cur.execute(sql.SQL("analyze {}").format(raw_part))
    landed_s = time.perf_counter() - started

    # the staging SQL reads each line through lateral subqueries computed once per row: caching them (memoize)
    # only hashes every parsed line for no hit
    cur.execute("set local enable_memoize = off")
    cur.execute(staging_sql.statement(source),
                {"business_date": business_date, "late_window_days": late_window_days, **staging_params(settings)})
    rows_staged, duplicates, by_reason = cur.fetchone()
    if target_table.endswith("_snapshots"):  # the day's catalog (and CRM) that the event sources join
        cur.execute(sql.SQL("analyze {}").format(_partition(target_schema, target_table, business_date)))
    quarantined = sum(by_reason.values())
    if rows_staged + quarantined + duplicates != lines_read:
        raise RuntimeError(
            f"{source.name} {business_date}: accounting does not reconcile — {lines_read} lines read but "
            f"{rows_staged} staged + {quarantined} quarantined + {duplicates} duplicates; this is a bug in "
            f"{source.stage_sql}, the load was rolled back."
        )
    cur.execute(
        """
        insert into ops.load_audit as a (channel, business_date, files, lines_read, rows_staged, rows_quarantined,
                                         duplicates_dropped, quarantine_by_reason, notes, loaded_at)
        values (%s, %s, %s, %s, %s, %s, %s, %s, %s, now())
        on conflict (channel, business_date) do update set
            files = excluded.files, lines_read = excluded.lines_read, rows_staged = excluded.rows_staged,
            rows_quarantined = excluded.rows_quarantined, duplicates_dropped = excluded.duplicates_dropped,
            quarantine_by_reason = excluded.quarantine_by_reason, notes = excluded.notes,
            loaded_at = excluded.loaded_at
        """,
        (source.name, business_date, len(files), lines_read, rows_staged, quarantined, duplicates,
         json.dumps(by_reason, sort_keys=True), json.dumps(notes)),
    )
    return {
        "source": source.name,
        "business_date": business_date.isoformat(),
        "files": len(files),
        "lines_read": lines_read,
        "rows_staged": rows_staged,
        "rows_quarantined": quarantined,
        "duplicates_dropped": duplicates,
        "quarantine_by_reason": dict(sorted(by_reason.items())),
        "notes": notes,
        "seconds": round(time.perf_counter() - started, 3),
        "landing_seconds": round(landed_s, 3),
    }


def ingest_source(
    source_name: str,
    business_date: date,
    *,
    landing_dir: Location | None = None,
    url: str | None = None,
    late_window_days: int | None = None,
    settings: Settings | None = None,
) -> dict[str, object]:
    """Load one source for one business date in one transaction; returns a small summary for XCom.

    ``landing_dir`` (default ``OMNIFUSE_LANDING_DIR``) is a local folder or a URL of object storage."""
    settings = settings or load_settings()
    source = sources.get(source_name)
    landing = landing_zone.resolve(landing_dir if landing_dir else settings.landing_dir, settings.landing_conn_id)
    try:
        files = landed_files(landing, source, business_date)
        window = settings.late_window_days if late_window_days is None else late_window_days
        mapping_dir = settings.mapping_dir if settings.mapping_dir else landing / "_mappings"
        mapping = load_mapping(mapping_dir, source.name)
        for former in source.former_names:
            if mapping is None and load_mapping(mapping_dir, former) is not None:
                raise LandingError(
                    f"{mapping_dir}: a column mapping {former}.toml but none named {source.name}.toml — the source "
                    f"{former!r} is now {source.name!r} (its files keep their names). Rename the mapping file to "
                    f"{source.name}.toml, then clear the task."
                )
        with warehouse.transaction(url) as cur:
            summary = load_source(cur, source, business_date, files, window, mapping, settings=settings)
    except (LandingError, MappingError) as exc:
        if not source.judges_events:
            raise
        raise type(exc)(f"{exc}\n{_event_loads_wait(business_date)}") from exc
    log.info("%s %s: %s", source.name, business_date, summary)
    return summary


def _event_loads_wait(business_date: date) -> str:
    """What a failed catalog delivery means for the day's event loads, and what to do (the DAG's load order)."""
    channels = ", ".join(sources.EVENT_CHANNELS)
    return (f"The event loads of {business_date} ({channels}) wait for the catalog delivery and did not run: they "
            "judge SKUs, prices, stores and currencies against that day's catalog, store list and rates, and without "
            "them every event would be quarantined as unknown. Fix the catalog delivery as said above, then clear "
            f"load_catalog of {business_date} together with its downstream tasks (Clear, \"Downstream\" ticked) so "
            "that the event loads run after it.")
