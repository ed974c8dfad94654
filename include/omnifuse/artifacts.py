"""The model store's files: written atomically, checked on read, never pickled.

- :func:`write_file` writes one file through a temporary file in the same folder and ``os.replace`` (readers
  see the old or the new file, never half), with its sha256 in ``<file>.sha256`` beside it.
- :func:`write_dir` is a context manager: the caller fills a temporary folder, then every file's sha256 goes
  to ``MANIFEST.json`` and the folder is renamed into place (a previous folder of that name is moved aside
  first and removed after).
- :func:`read_file` and :func:`verify_dir` check those checksums and raise :class:`ArtifactError` naming the
  file and what to do.

Only numpy ``.npz`` (``allow_pickle=False``), JSON and Keras weights are stored: nothing read from the store
can run code.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

MANIFEST = "MANIFEST.json"


class ArtifactError(RuntimeError):
    """A model-store file is missing, corrupt or does not match its checksum."""


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _fsync_dir(folder: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def write_file(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically, with ``<path>.sha256``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    for target, payload in ((path, data), (path.with_name(path.name + ".sha256"), sha256(data).encode())):
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{target.name}.")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(payload)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    _fsync_dir(path.parent)


def read_file(path: Path) -> bytes:
    """The bytes of a file written by :func:`write_file`, after checking its sha256."""
    check = path.with_name(path.name + ".sha256")
    if not path.is_file():
        raise ArtifactError(f"model store file {path} is missing; re-run the retrain that wrote it "
                            "(or roll back: omnifuse model rollback).")
    data = path.read_bytes()
    if not check.is_file():
        raise ArtifactError(f"model store file {path} has no checksum {check.name}; it was not written by "
                            "omnifuse (or is incomplete): re-run the retrain that wrote it.")
    if check.read_text().strip() != sha256(data):
        raise ArtifactError(f"model store file {path} does not match its sha256 ({check.name}): it is corrupt or "
                            "was changed; re-run the retrain that wrote it or roll back (omnifuse model rollback).")
    return data


@contextlib.contextmanager
def write_dir(folder: Path) -> Iterator[Path]:
    """Yield a temporary folder; on success checksum its files into ``MANIFEST.json`` and rename it to ``folder``."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}.tmp-"))
    try:
        yield tmp
        files = sorted(p for p in tmp.rglob("*") if p.is_file() and p.name != MANIFEST)
        manifest = {str(p.relative_to(tmp)): sha256(p.read_bytes()) for p in files}
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=1, sort_keys=True))
        for p in [*files, tmp / MANIFEST]:
            with open(p, "rb") as fh:
                os.fsync(fh.fileno())
        old = None
        if folder.exists():
            old = folder.with_name(f".{folder.name}.old-{os.getpid()}-{id(tmp)}")
            os.replace(folder, old)
        os.replace(tmp, folder)
        _fsync_dir(folder.parent)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def verify_dir(folder: Path) -> dict[str, str]:
    """Check every file of ``MANIFEST.json`` (nested manifests are checked by their own loaders)."""
    manifest_path = folder / MANIFEST
    if not manifest_path.is_file():
        raise ArtifactError(f"model store folder {folder} is missing or has no {MANIFEST}; re-run the retrain that "
                            "wrote it (or roll back: omnifuse model rollback).")
    try:
        manifest = json.loads(manifest_path.read_text())
    except json.JSONDecodeError as exc:
        raise ArtifactError(f"{manifest_path} is corrupt ({exc}); re-run the retrain that wrote it.") from exc
    for name, digest in manifest.items():
        path = folder / name
        if not path.is_file():
            raise ArtifactError(f"model store file {path} is missing (listed in {manifest_path}); re-run the "
                                "retrain that wrote it or roll back (omnifuse model rollback).")
        if sha256(path.read_bytes()) != digest:
            raise ArtifactError(f"model store file {path} does not match its sha256 in {manifest_path}: it is "
                                "corrupt or was changed; re-run the retrain or roll back (omnifuse model rollback).")
    return manifest
