from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from omnifuse.airflow_glue import business_date_for


def test_conf_business_date_wins():
    start = datetime(2026, 11, 5, 3, tzinfo=UTC)
    assert business_date_for({"business_date": "2026-11-02"}, start, start) == date(2026, 11, 2)


def test_data_interval_start_is_the_business_date():
    assert business_date_for({}, datetime(2026, 11, 4, 3, tzinfo=UTC), None) == date(2026, 11, 4)


def test_bad_conf_date_says_how_to_trigger():
    with pytest.raises(ValueError, match="YYYY-MM-DD"):
        business_date_for({"business_date": "yesterday"}, None, None)
