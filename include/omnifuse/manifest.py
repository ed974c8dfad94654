"""``_manifest.json``: what a sender promises a landing folder holds (written last: it says "complete").

``{"files": [{"name", "bytes", "sha256", "data_lines"}, ...]}``; ``"files": []`` is an explicit empty
delivery (a day without sales). Ingest checks every listed file's size, checksum and line count.
``omnifuse manifest DIR`` writes it for a folder assembled by hand or by a shop's own export job. Every function
here takes a local folder or file, or one in object storage (a URL or an ``ObjectStoragePath``, see
:mod:`omnifuse.landing_zone`), read block by block.
"""

from __future__ import annotations

import codecs
import gzip
import hashlib
import json
from collections.abc import Iterator
from fnmatch import fnmatchcase
from typing import Any

from omnifuse import landing_zone
from omnifuse.config import load_settings
from omnifuse.landing_zone import LandingPath, Location

MANIFEST = "_manifest.json"
BLOCK = 1 << 20


def data_lines(location: Location, quote: bytes = b'"', delimiter: bytes = b",", encoding: str = "utf-8",
               limit: int | None = None) -> int:
    """Data lines as ingest counts them: NDJSON (``.gz``) lines, or CSV records after the header (read with the
    source's quote character, delimiter and encoding, and the line bound ``OMNIFUSE_INGEST_MAX_LINE_KB``)."""
    path = landing_zone.resolve(location)
    if path.suffix != ".gz":
        from omnifuse.landing_csv import iter_records, read_blocks

        bound = limit if limit is not None else load_settings().ingest_max_line_kb * 1024
        blocks = _utf8(read_blocks(path, BLOCK), encoding)
        return max(sum(len(block) for block in iter_records(blocks, quote, delimiter, bound)) - 1, 0)
    with landing_zone.open_binary(path, BLOCK) as raw, gzip.GzipFile(fileobj=raw, mode="rb") as fh:
        count, last = 0, b"\n"
        while block := fh.read(BLOCK):
            count += block.count(b"\n")
            last = block[-1:]
    return count + (last != b"\n")  # a last line without its newline counts too


def _utf8(blocks: Iterator[bytes], encoding: str) -> Iterator[bytes]:
    if encoding.lower().replace("-", "").replace("_", "") in ("utf8", "utf8sig"):
        yield from blocks
        return
    decoder = codecs.getincrementaldecoder(encoding)()
    for block in blocks:
        yield decoder.decode(block).encode("utf-8")
    yield decoder.decode(b"", final=True).encode("utf-8")


def entry(location: Location, **csv: Any) -> dict[str, object]:
    """The manifest entry of one file (``csv``: :func:`data_lines`' CSV options)."""
    path = landing_zone.resolve(location)
    digest = hashlib.sha256()
    with landing_zone.open_binary(path, BLOCK) as fh:
        while block := fh.read(BLOCK):
            digest.update(block)
    return {"name": path.name, "bytes": path.stat().st_size, "sha256": digest.hexdigest(),
            "data_lines": data_lines(path, **csv)}


def _csv_options(folder: LandingPath) -> list[tuple[tuple[str, ...], dict[str, Any]]]:
    """(file name patterns, CSV options) of each CSV source reading ``<landing>/<folder>/<date>``, from its column
    mapping when it has one: records are counted the way ingest will read them."""
    from omnifuse import sources
    from omnifuse.landing_csv import load_mapping

    settings = load_settings()
    mapping_dir = settings.mapping_dir if settings.mapping_dir else folder.parent.parent / "_mappings"
    found = []
    for source in sources.REGISTRY.values():
        if source.folder != folder.parent.name or source.fmt != "csv":
            continue
        mapping = load_mapping(mapping_dir, source.name)
        if mapping is not None:
            found.append((source.patterns, {"quote": mapping.quotechar.encode(),
                                            "delimiter": mapping.delimiter.encode(), "encoding": mapping.encoding}))
    return found


def write_manifest(location: Location) -> dict:
    """Write ``<location>/_manifest.json`` listing every data file in it (dot files and the manifest excluded)."""
    folder = landing_zone.resolve(location)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder} is not a folder; give a landing folder like <landing>/store/2024-03-01")
    files = sorted((p for p in folder.iterdir() if p.is_file() and p.name != MANIFEST and not p.name.startswith(".")),
                   key=lambda p: p.name)
    options = _csv_options(folder)

    def csv_of(name: str) -> dict[str, Any]:
        return next((o for patterns, o in options if any(fnmatchcase(name, p) for p in patterns)), {})

    body = {"files": [entry(p, **csv_of(p.name)) for p in files]}
    (folder / MANIFEST).write_text(json.dumps(body, indent=1, sort_keys=True) + "\n")
    return body
