"""The measuring stick of bench/real_data.py on a tiny hand-made history: what each protocol counts as
relevant, what the peers may list, the metrics and the cut-offs (a wrong stick would mislead issue 25)."""

from __future__ import annotations

import importlib.util
import math
import sys
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from omnifuse.realdata.online_retail import normalise

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("real_data_bench", ROOT / "bench" / "real_data.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["real_data_bench"] = module
    spec.loader.exec_module(module)
    return module


def _line(invoice: str, sku: str, qty: int, day: str, customer: float | None) -> list:
    return [invoice, sku, sku.lower(), qty, f"{day} 10:00:00", 1.0, customer, "UK"]


# Window 2010-11-01 .. 11-10; test 11-11 .. 11-20 (stock codes such as "B" or "D" would be non-products).
# Customer 1 buys A twice (old and recent) and B once;
# customer 2 buys A, C, D and E. In the test, 1 buys A again, D new, returns E, pays postage; 2 buys C again.
LINES = normalise(pd.DataFrame(
    [
        _line("1", "A1", 1, "2010-11-01", 1.0), _line("1", "B1", 1, "2010-11-01", 1.0),
        _line("2", "A1", 2, "2010-11-09", 1.0), _line("3", "C1", 1, "2010-11-05", 2.0),
        _line("4", "D1", 1, "2010-11-06", 2.0), _line("5", "E1", 1, "2010-11-07", 2.0),
        _line("5", "A1", 1, "2010-11-08", 2.0),
        _line("6", "A1", 1, "2010-11-12", 1.0), _line("6", "D1", 1, "2010-11-12", 1.0),
        _line("6", "E1", 1, "2010-11-12", 1.0), _line("C7", "E1", -1, "2010-11-13", 1.0),
        _line("6", "POST", 1, "2010-11-12", 1.0), _line("8", "C1", 1, "2010-11-15", 2.0),
        _line("9", "F1", 1, "2010-11-15", None),
    ],
    columns=["Invoice", "StockCode", "Description", "Quantity", "InvoiceDate", "Price", "Customer ID", "Country"],
))
WINDOW = (date(2010, 11, 1), date(2010, 11, 10))
TEST = (date(2010, 11, 11), date(2010, 11, 20))


def test_relevant_items_per_protocol(bench):
    h = bench.history(LINES, *WINDOW, max_items=10)
    assert h.users == ["1", "2"] and h.items == ["A1", "B1", "C1", "D1", "E1"]
    # new products: A was bought in the window, E was returned, POST is no product; customer 2 had C already
    assert bench.relevant(LINES, *TEST, h, "new") == {"1": {"D1"}}
    # next-period basket: repeats count, returns and non-products still do not
    assert bench.relevant(LINES, *TEST, h, "repeat") == {"1": {"A1", "D1"}, "2": {"C1"}}


def test_personal_frequency_lists_own_recent_purchases_first_and_new_protocol_excludes_them(bench):
    h = bench.history(LINES, *WINDOW, max_items=10)
    scorer = bench.fit_pers_freq(h, 7)
    repeat = bench.scorer_recs(scorer, h, ["1"], "repeat")["1"]
    assert repeat[:2] == ["A1", "B1"]  # two occasions of A, the latest a day ago, outrank one old B
    new = bench.scorer_recs(scorer, h, ["1"], "new")["1"]
    assert "A1" not in new and "B1" not in new and new[0] in {"C1", "D1", "E1"}
    ease = bench.scorer_recs(bench.fit_ease(h, 1.0), h, ["1"], "new")["1"]
    assert not {"A1", "B1"} & set(ease)


def test_dense_peers_see_only_the_most_bought_products(bench):
    h = bench.history(LINES, *WINDOW, max_items=1)
    assert [h.items[i] for i in h.dense] == ["A1"]  # the only product with two buyers
    scores = bench.fit_item_knn(h, 5)(np.array([1]))
    assert scores.shape == (1, 5) and (scores[0, h.dense[0]] > np.delete(scores[0], h.dense)).all()


def test_ranking_metrics_binary_gains_and_missing_lists(bench):
    truth = {"1": {"A1", "D1"}, "2": {"C1"}}
    got = bench.ranking_metrics({"1": ["X", "A1"]}, truth)
    ideal = 1 + 1 / math.log2(3)
    assert got["ndcg"] == pytest.approx(((1 / math.log2(3)) / ideal + 0.0) / 2)
    assert got["recall"] == pytest.approx((0.5 + 0.0) / 2) and got["customers"] == 2


def test_cutoffs_by_count_or_date(bench):
    last = date(2010, 12, 9)
    assert bench.parse_cutoffs("3", last, 31) == [date(2010, 9, 7), date(2010, 10, 8), date(2010, 11, 8)]
    assert bench.parse_cutoffs("2010-11-08,2010-10-01", last, 31) == [date(2010, 10, 1), date(2010, 11, 8)]
    with pytest.raises(SystemExit, match="less than --test-days 31"):
        bench.parse_cutoffs("2010-11-20", last, 31)
    assert bench.geometric_mean([0.5, 2.0]) == pytest.approx(1.0) and bench.geometric_mean([0.0, 1.0]) == 0.0
