"""Real public commerce data sets converted into omnifuse's landing zone (for development and benchmarks).

One module per data set; each reads the data set's own files (fetched by hand, never at run time) and writes
``catalog/<date>/``, ``crm/<date>/`` and ``store/<date>/`` folders in the landing contract, plus empty
deliveries (a ``_manifest.json`` listing no file) for the channels the data set does not have.

- :mod:`omnifuse.realdata.online_retail`: UCI "Online Retail II" (UK gift wholesaler, 2009-12 .. 2011-12).
- :mod:`omnifuse.realdata.ta_feng`: Ta-Feng (Taiwanese grocery / warehouse club, 2000-11 .. 2001-02).
- :mod:`omnifuse.realdata.completejourney`: 84.51° "The Complete Journey" 2.0, the R package's 75,000-line
  sample (US grocery, 2017).

Every module offers the same interface: ``DEFAULT_SRC`` (where the file is on the development machine),
``read_lines(path)`` → a frame of :func:`omnifuse.realdata.online_retail.normalise`'s columns (plus, for some,
``category`` and ``non_product``), ``ConvertOptions`` (store, time zone, currency, ``shift_days``, ``empty``,
``catalog_currency``) and ``convert(lines, out, start, end, options)``.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd

#: Data sets ``omnifuse convert`` knows, by command-line name → module under ``omnifuse.realdata``.
DATASETS = {"online-retail": "online_retail", "ta-feng": "ta_feng", "completejourney": "completejourney"}


def dataset(name: str) -> ModuleType:
    """The converter module of the data set called ``name`` (a key of :data:`DATASETS`)."""
    if name not in DATASETS:
        raise ValueError(f"unknown data set {name!r}; known: {', '.join(sorted(DATASETS))} "
                         "(omnifuse.realdata.DATASETS).")
    return importlib.import_module(f"omnifuse.realdata.{DATASETS[name]}")


def non_product(lines: pd.DataFrame) -> pd.Series:
    """True for lines that are charges, fees, coupons or fuel rather than products (never a candidate nor a
    hit in evaluation): the frame's ``non_product`` column, else Online Retail's stock-code rule."""
    if "non_product" in lines.columns:
        return lines["non_product"].astype(bool)
    from omnifuse.realdata.online_retail import is_non_product

    return is_non_product(lines["sku"])
