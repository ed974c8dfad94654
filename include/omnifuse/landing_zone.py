"""Where the landing zone lives: a local folder, or object storage through Airflow's ``ObjectStoragePath``.

``OMNIFUSE_LANDING_DIR`` is either

- a plain path or a ``file://`` URL: read with plain local file access (``pathlib.Path``, ``open``), the fast
  path, unchanged; or
- a URL of object storage that Airflow's ``ObjectStoragePath`` understands (``s3://``, ``gs://``, ``abfs://``,
  …), with the Airflow connection named in the URL (``s3://aws_landing@bucket/prefix``) or by
  ``OMNIFUSE_LANDING_CONN_ID`` (``s3://bucket/prefix``). The scheme's filesystem comes from its Airflow provider
  (``s3`` from ``apache-airflow-providers-amazon``, pinned; ``gs`` needs ``apache-airflow-providers-google``,
  ``abfs`` ``apache-airflow-providers-microsoft-azure``).

Either way, the rest of the package handles a :data:`LandingPath`: both kinds support ``/``, ``name``,
``suffix``, ``is_file()``, ``is_dir()``, ``iterdir()``, ``stat().st_size``, ``read_text()`` and ``write_text()``;
bytes are read through :func:`open_binary`, block by block (an object is streamed in ranged reads of the block
size, never downloaded whole). This is the only module of ``omnifuse`` that imports Airflow's object storage, and
only when a remote URL is resolved (at run time, never when a DAG is parsed: resolving a URL with a connection
looks the connection up).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import IO, TYPE_CHECKING, Union
from urllib.parse import unquote, urlsplit

if TYPE_CHECKING:
    from airflow.sdk import ObjectStoragePath

#: A file or folder of the landing zone: a local path, or an object (prefix) in object storage.
LandingPath = Union[Path, "ObjectStoragePath"]
#: What callers may name a landing location with: a path, a path or URL as text, or an already resolved path.
Location = Union[str, "os.PathLike[str]", "ObjectStoragePath"]
#: Schemes read as local files.
LOCAL_SCHEMES = frozenset({"", "file", "local"})


class LandingLocationError(ValueError):
    """``OMNIFUSE_LANDING_DIR`` names a location omnifuse cannot read; the message says what to install or set."""


def _scheme(text: str) -> str:
    # "C:\\landing" has a one-letter "scheme": only a scheme followed by "://" makes a URL
    if "://" not in text:
        return ""
    return urlsplit(text).scheme.lower()


def is_remote(location: Location) -> bool:
    """True when ``location`` is in object storage (a URL whose scheme is not ``file``), not a local folder."""
    if isinstance(location, Path):
        return False
    if isinstance(location, str | os.PathLike):
        return _scheme(os.fspath(location)) not in LOCAL_SCHEMES
    return True  # an ObjectStoragePath


def parse_setting(value: str) -> Path | str:
    """The value of ``OMNIFUSE_LANDING_DIR`` as :class:`~omnifuse.config.Settings` keeps it: a resolved local
    ``Path`` (a plain path or ``file://``), or the URL of object storage as text (without a trailing ``/``).
    Nothing is looked up here: settings are read when DAGs are parsed."""
    scheme = _scheme(value)
    if scheme in LOCAL_SCHEMES:
        if scheme:
            parts = urlsplit(value)
            if parts.netloc not in ("", "localhost"):
                raise LandingLocationError(f"OMNIFUSE_LANDING_DIR={value!r}: a file:// URL names a local folder "
                                           "(file:///data/landing); a remote host is not readable as a file")
            value = unquote(parts.path)
        return Path(value).expanduser().resolve()
    if not urlsplit(value).netloc:
        raise LandingLocationError(f"OMNIFUSE_LANDING_DIR={value!r}: name a bucket or container, e.g. "
                                   f"{scheme}://my-bucket/landing")
    return value.rstrip("/")


def resolve(location: Location, conn_id: str | None = None) -> LandingPath:
    """The file or folder ``location`` names (the landing root, a file in it), ready to read.

    A local location is a ``Path`` (a ``str`` without a remote scheme included). A remote URL becomes an
    ``ObjectStoragePath`` on the connection named in the URL, else ``conn_id``, else ``OMNIFUSE_LANDING_CONN_ID``
    (unset: the filesystem's own default credentials). Raises :class:`LandingLocationError` when no installed
    provider reads the URL's scheme.
    """
    if isinstance(location, Path):
        return location
    if isinstance(location, str | os.PathLike):
        text = os.fspath(location)
        if not is_remote(text):
            value = parse_setting(text)
            assert isinstance(value, Path)
            return value
        from airflow.sdk import ObjectStoragePath
        from airflow.sdk.io import has_fs

        if conn_id is None:
            from omnifuse.config import load_settings

            conn_id = load_settings().landing_conn_id
        scheme = _scheme(text)
        if not has_fs(scheme):
            raise LandingLocationError(
                f"OMNIFUSE_LANDING_DIR={text!r}: no Airflow filesystem is installed for {scheme}:// (s3 comes with "
                "apache-airflow-providers-amazon, gs with apache-airflow-providers-google, abfs with "
                "apache-airflow-providers-microsoft-azure); install the provider or point at a local folder."
            )
        named = "@" in urlsplit(text).netloc
        return ObjectStoragePath(text) if named or conn_id is None else ObjectStoragePath(text, conn_id=conn_id)
    return location


def open_binary(path: LandingPath, block_size: int) -> IO[bytes]:
    """``path`` opened for reading bytes. A local file is opened as usual; an object is streamed in ranged reads
    of ``block_size`` bytes (one block cached), so reading a large object never holds it whole."""
    if isinstance(path, Path):
        return open(path, "rb")  # noqa: SIM115 (the caller closes it)
    return path.open("rb", block_size=block_size, cache_type="readahead")


def local_folder(location: Path | str) -> Path:
    """``location`` as a local folder, for what writes a landing zone (``omnifuse demo`` generating its world);
    raises :class:`LandingLocationError` for object storage: generate into a folder, then upload it."""
    if isinstance(location, Path):
        return location
    raise LandingLocationError(f"OMNIFUSE_LANDING_DIR={location!r} is object storage; the generator writes a local "
                               "folder: run it with OMNIFUSE_LANDING_DIR set to a folder, then upload that folder.")
