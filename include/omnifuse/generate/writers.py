"""Byte-stable file writers for the landing zone: same input, same bytes."""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import json
from pathlib import Path


def write_gzip_lines(path: Path, lines: list[str]) -> dict[str, object]:
    """Write ``lines`` (no trailing newlines) as a gzip file with a fixed header (mtime 0, no name)."""
    payload = ("\n".join(lines) + "\n").encode() if lines else b""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=1) as gz:
        gz.write(payload)
    return _manifest_entry(path, len(lines))


def write_csv(path: Path, header: list[str], rows: list[list[object]]) -> dict[str, object]:
    """Write a CSV with ``\\n`` line endings and minimal quoting."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(buf.getvalue().encode())
    return _manifest_entry(path, len(rows))


def write_lines(path: Path, lines: list[str]) -> dict[str, object]:
    """Write prepared CSV lines (header included) as they are."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(("\n".join(lines) + "\n").encode())
    return _manifest_entry(path, len(lines) - 1)


def _manifest_entry(path: Path, data_lines: int) -> dict[str, object]:
    data = path.read_bytes()
    return {
        "name": path.name,
        "bytes": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
        "data_lines": data_lines,
    }


def write_manifest(folder: Path, entries: list[dict[str, object]]) -> None:
    """Write ``_manifest.json`` last: its presence says the folder is complete."""
    body = {"files": sorted(entries, key=lambda e: str(e["name"]))}
    (folder / "_manifest.json").write_text(json.dumps(body, indent=1, sort_keys=True) + "\n")
