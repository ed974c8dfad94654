"""Real public commerce data sets converted into omnifuse's landing zone (for development and benchmarks).

One module per data set; each reads the data set's own files (fetched by hand, never at run time) and writes
``catalog/<date>/``, ``crm/<date>/`` and ``store/<date>/`` folders in the landing contract, plus empty
deliveries (a ``_manifest.json`` listing no file) for the channels the data set does not have.

- :mod:`omnifuse.realdata.online_retail`: UCI "Online Retail II" (UK gift wholesaler, 2009-12 .. 2011-12).
"""

from __future__ import annotations

#: Data sets ``omnifuse convert`` knows, by command-line name → module under ``omnifuse.realdata``.
DATASETS = {"online-retail": "online_retail"}
