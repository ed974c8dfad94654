"""What every benchmark's ``main`` shares around its measurements: a scratch folder and the peak-RSS line."""

from __future__ import annotations

import contextlib
import resource
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def scratch_folder(name: str) -> Iterator[Path]:
    """A temporary folder for the benchmark's worlds, removed afterwards (also on failure); when the body
    succeeds, the process's peak resident memory is printed last."""
    scratch = Path(tempfile.mkdtemp(prefix=f"omnifuse-bench-{name}-"))
    try:
        yield scratch
        print(f"peak RSS of this process: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:,.0f} MB")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
