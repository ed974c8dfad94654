"""The model store's files: written atomically, checked on read, never pickled.

- :func:`write_file` writes one file through a temporary file in the same folder and ``os.replace`` (readers
  see the old or the new file, never half), with its sha256 in ``<file>.sha256`` beside it.
- :func:`write_dir` is a context manager: the caller fills a temporary folder, then every file's sha256 goes
  to ``MANIFEST.json`` (nested folders' own manifests included) and the folder is renamed into place (a
  previous folder of that name is moved aside first and removed after).
- :func:`read_dir` reads a folder's ``MANIFEST.json`` and **only the files it lists**, each once: the bytes it
  checks are the bytes the loaders decode (no second read a writer could slip in between). The manifest has
  a checksum of its own, :func:`manifest_digest`, which the model registry stores per version
  (``ml.model_registry.artifact_checksums``) and passes back on load: a folder rewritten after its version was
  registered — manifest and files consistently — is refused.
- :func:`read_file` checks a single file's sha256 (and the digest the caller expects, if given); every check
  raises :class:`ArtifactError` naming the file and what to do.

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
from dataclasses import dataclass
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


def read_file(path: Path, expected: str | None = None) -> bytes:
    """The bytes of a file written by :func:`write_file`, after checking its sha256 (and ``expected``: the
    digest a registry holds for it)."""
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
    if expected is not None and sha256(data) != expected:
        raise ArtifactError(f"model store file {path} is not the file its version was registered with (sha256 "
                            f"{sha256(data)[:12]}…, ml.model_registry holds {expected[:12]}…): it was rewritten after "
                            "registration. Roll back (omnifuse model rollback) or retrain the date.")
    return data


@contextlib.contextmanager
def write_dir(folder: Path) -> Iterator[Path]:
    """Yield a temporary folder; on success checksum its files into ``MANIFEST.json`` and rename it to ``folder``."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}.tmp-"))
    try:
        yield tmp
        files = sorted(p for p in tmp.rglob("*") if p.is_file() and p != tmp / MANIFEST)
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


@dataclass(frozen=True)
class StoredDir:
    """A model-store folder read by :func:`read_dir`: the verified bytes of every file its manifest lists."""

    folder: Path
    files: dict[str, bytes]  # path relative to ``folder`` (``/``-separated) -> verified bytes
    digest: str  # sha256 of the folder's MANIFEST.json

    def get(self, name: str) -> bytes:
        """The bytes of ``name``; ``ArtifactError`` when the manifest does not list it."""
        if name not in self.files:
            raise ArtifactError(f"model store file {self.folder / name} is not listed in {self.folder / MANIFEST}; "
                                "the folder is incomplete or was assembled by hand: re-run the retrain that wrote "
                                "it (or roll back: omnifuse model rollback).")
        return self.files[name]

    def sub(self, prefix: str) -> StoredDir:
        """The files under ``prefix/`` (verified by this folder's manifest), named relative to it."""
        head = prefix.rstrip("/") + "/"
        return StoredDir(self.folder / prefix, {k[len(head):]: v for k, v in self.files.items() if k.startswith(head)},
                         self.digest)


def manifest_digest(folder: Path) -> str:
    """The sha256 of ``folder``'s ``MANIFEST.json`` (what the registry stores for a version's folder)."""
    path = folder / MANIFEST
    if not path.is_file():
        raise ArtifactError(f"model store folder {folder} is missing or has no {MANIFEST}; re-run the retrain that "
                            "wrote it (or roll back: omnifuse model rollback).")
    return sha256(path.read_bytes())


def read_dir(folder: Path, expected: str | None = None) -> StoredDir:
    """Read ``folder``'s manifest and every file it lists, once each, checking each sha256; ``expected``: the
    manifest's own sha256 as the registry holds it. Files the manifest does not list are never read."""
    manifest_path = folder / MANIFEST
    if not manifest_path.is_file():
        raise ArtifactError(f"model store folder {folder} is missing or has no {MANIFEST}; re-run the retrain that "
                            "wrote it (or roll back: omnifuse model rollback).")
    raw = manifest_path.read_bytes()
    digest = sha256(raw)
    if expected is not None and digest != expected:
        raise ArtifactError(f"{manifest_path} is not the manifest its version was registered with (sha256 "
                            f"{digest[:12]}…, ml.model_registry.artifact_checksums holds {expected[:12]}…): the "
                            "folder was rewritten after registration. Roll back (omnifuse model rollback) or retrain "
                            "the date.")
    try:
        manifest = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ArtifactError(f"{manifest_path} is corrupt ({exc}); re-run the retrain that wrote it.") from exc
    if not isinstance(manifest, dict):
        raise ArtifactError(f"{manifest_path} is not a manifest (a JSON object of file -> sha256); re-run the retrain.")
    files = {}
    for name, want in sorted(manifest.items()):
        path = folder / name
        if ".." in Path(name).parts or Path(name).is_absolute():
            raise ArtifactError(f"{manifest_path} lists {name!r}, outside its folder; re-run the retrain.")
        if not path.is_file():
            raise ArtifactError(f"model store file {path} is missing (listed in {manifest_path}); re-run the "
                                "retrain that wrote it or roll back (omnifuse model rollback).")
        data = path.read_bytes()
        if sha256(data) != want:
            raise ArtifactError(f"model store file {path} does not match its sha256 in {manifest_path}: it is "
                                "corrupt or was changed; re-run the retrain or roll back (omnifuse model rollback).")
        files[name] = data
    return StoredDir(folder, files, digest)
