"""``_manifest.json``: what a sender promises a landing folder holds (written last: it says "complete").

``{"files": [{"name", "bytes", "sha256", "data_lines"}, ...]}``; ``"files": []`` is an explicit empty
delivery (a day without sales). Ingest checks every listed file's size, checksum and line count.
``omnifuse manifest DIR`` writes it for a folder assembled by hand or by a shop's own export job.
"""

from __future__ import annotations

import gzip
import hashlib
import json
from pathlib import Path

MANIFEST = "_manifest.json"


def data_lines(path: Path) -> int:
    """Data lines as ingest counts them: NDJSON (``.gz``) lines, or CSV records after the header."""
    if path.suffix != ".gz":
        from omnifuse.landing_csv import count_records

        return count_records(path)
    with gzip.open(path, "rb") as fh:
        count, last = 0, b"\n"
        while block := fh.read(1 << 20):
            count += block.count(b"\n")
            last = block[-1:]
    return count + (last != b"\n")  # a last line without its newline counts too


def entry(path: Path) -> dict[str, object]:
    """The manifest entry of one file."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(1 << 20):
            digest.update(block)
    return {"name": path.name, "bytes": path.stat().st_size, "sha256": digest.hexdigest(),
            "data_lines": data_lines(path)}


def write_manifest(folder: Path) -> dict:
    """Write ``folder/_manifest.json`` listing every data file in it (dot files and the manifest excluded)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder} is not a folder; give a landing folder like <landing>/store/2024-03-01")
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.name != MANIFEST and not p.name.startswith("."))
    body = {"files": [entry(p) for p in files]}
    (folder / MANIFEST).write_text(json.dumps(body, indent=1, sort_keys=True) + "\n")
    return body
