"""How figures read: signs, dashes for missing values, p-values, durations, safe JSON."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta

from verdict_dashboard import formatting as f


def test_effects_carry_their_sign_and_a_typographic_minus() -> None:
    assert f.signed_percent(0.0412) == "+4.1 %"
    assert f.signed_percent(-0.25) == "−25.0 %"
    assert f.signed_percent(0.0) == "0.0 %"
    assert f.signed_percent(math.nan) == "—"
    assert f.signed_percent(math.inf) == "+∞"


def test_numbers_keep_three_significant_digits() -> None:
    assert f.number(0.10853) == "0.109"
    assert f.number(902.61) == "903"
    assert f.number(12345.6) == "12,346"
    assert f.number(-0.5, signed=True) == "−0.5"
    assert f.number(0.5, signed=True) == "+0.5"
    assert f.number(0.0) == "0"
    assert f.number(math.nan) == "—"


def test_intervals_show_open_bounds_and_missing_ones() -> None:
    assert f.interval(-0.01, 0.05) == "[−1.0 %, +5.0 %]"
    assert f.interval(-math.inf, 0.05) == "[−∞, +5.0 %]"
    assert f.interval(math.nan, 0.05) == "—"
    assert f.interval(0.003, 0.0169, "number") == "[+0.003, +0.0169]"


def test_p_values_counts_and_days() -> None:
    assert f.p_value(0.0004) == "< 0.001"
    assert f.p_value(0.0431) == "0.043"
    assert f.p_value(math.nan) == "—"
    assert f.count(1234567) == "1,234,567"
    assert f.days(0.4) == "less than a day"
    assert f.days(1.0) == "1 day"
    assert f.days(3.2) == "4 days"
    assert f.days(math.nan) == "—"


def test_since_reads_like_a_person_says_it() -> None:
    now = datetime(2030, 1, 1, tzinfo=UTC)
    assert f.since(now - timedelta(seconds=12), now) == "12 s ago"
    assert f.since(now - timedelta(minutes=5), now) == "5 min ago"
    assert f.since(now - timedelta(hours=3), now) == "3 h ago"
    assert f.since(now - timedelta(days=2), now) == "2 days ago"
    assert f.since(None, now) == "—"


def test_json_for_html_cannot_end_its_script_element() -> None:
    text = f.json_for_html({"label": "</script><script>alert(1)</script> & more"})
    assert "<" not in text and ">" not in text and "&" not in text
    assert json.loads(text) == {"label": "</script><script>alert(1)</script> & more"}
