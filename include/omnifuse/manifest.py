"""``_manifest.json``: what a sender promises a landing folder holds (written last: it says "complete").

``{"files": [{"name", "bytes", "sha256", "data_lines"}, ...]}``; ``"files": []`` is an explicit empty
delivery (a day without sales). Ingest checks every listed file's size, checksum and line count.
``omnifuse manifest DIR`` writes it for a folder assembled by hand or by a shop's own export job. Every function
here takes a local folder or file, or one in object storage (a URL or an ``ObjectStoragePath``, see
:mod:`omnifuse.landing_zone`), read block by block.
"""

from __future__ import annotations

import gzip
import hashlib
import json

from omnifuse import landing_zone
from omnifuse.landing_zone import Location

MANIFEST = "_manifest.json"
BLOCK = 1 << 20


def data_lines(location: Location) -> int:
    """Data lines as ingest counts them: NDJSON (``.gz``) lines, or CSV records after the header."""
    path = landing_zone.resolve(location)
    if path.suffix != ".gz":
        from omnifuse.landing_csv import count_records

        return count_records(path)
    with landing_zone.open_binary(path, BLOCK) as raw, gzip.GzipFile(fileobj=raw, mode="rb") as fh:
        count, last = 0, b"\n"
        while block := fh.read(BLOCK):
            count += block.count(b"\n")
            last = block[-1:]
    return count + (last != b"\n")  # a last line without its newline counts too


def entry(location: Location) -> dict[str, object]:
    """The manifest entry of one file."""
    path = landing_zone.resolve(location)
    digest = hashlib.sha256()
    with landing_zone.open_binary(path, BLOCK) as fh:
        while block := fh.read(BLOCK):
            digest.update(block)
    return {"name": path.name, "bytes": path.stat().st_size, "sha256": digest.hexdigest(),
            "data_lines": data_lines(path)}


def write_manifest(location: Location) -> dict:
    """Write ``<location>/_manifest.json`` listing every data file in it (dot files and the manifest excluded)."""
    folder = landing_zone.resolve(location)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder} is not a folder; give a landing folder like <landing>/store/2024-03-01")
    files = sorted((p for p in folder.iterdir() if p.is_file() and p.name != MANIFEST and not p.name.startswith(".")),
                   key=lambda p: p.name)
    body = {"files": [entry(p) for p in files]}
    (folder / MANIFEST).write_text(json.dumps(body, indent=1, sort_keys=True) + "\n")
    return body
