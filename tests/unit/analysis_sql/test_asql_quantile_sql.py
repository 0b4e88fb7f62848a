"""The histogram quantile statements: parameters only, and lookups read only their buckets."""

from __future__ import annotations

from datetime import UTC, datetime

from verdict_analysis import stats
from verdict_analysis.metrics import MetricSpec, Segment, quantile_sql, sql

SPEC = MetricSpec("p95", stats.MetricType.QUANTILE, "llm'call", "latency", quantile=0.95)
SCOPE = sql.UnitScope("exp", ("control", "treatment"), Segment("country", "US"))
MARK = datetime(2026, 1, 2, tzinfo=UTC)


def test_values_travel_as_parameters() -> None:
    rollup = quantile_sql.QuantileRollup(7, MARK)
    text, params = quantile_sql.quantile_stats_query(SCOPE, SPEC, MARK, rollup)
    assert "llm'call" not in text and "latency" not in text and "country" not in text
    assert {"llm'call", "latency", "country", "US", 0.95, 7, MARK} <= {
        p for p in params if not isinstance(p, list)
    }
    assert text.count("$") >= len(params)


def test_a_complete_rollup_reads_raw_events_from_the_watermark_only() -> None:
    complete = quantile_sql.QuantileRollup(7, MARK, complete=True)
    text, _ = quantile_sql.quantile_stats_query(SCOPE, SPEC, MARK, complete)
    assert "analysis_quantile_units" not in text and "NOT u.rolled" not in text
    partial = quantile_sql.QuantileRollup(7, MARK)
    text, _ = quantile_sql.quantile_stats_query(SCOPE, SPEC, MARK, partial)
    assert "analysis_quantile_units" in text and "NOT u.rolled" in text


def test_rank_lookups_read_only_their_buckets() -> None:
    lookups = [
        quantile_sql.RankLookup("control", 12, 3, 1.5, 1.75),
        quantile_sql.RankLookup("treatment", 14, 1, 2.0, 2.25),
    ]
    text, params = quantile_sql.values_at_ranks_query(
        SCOPE, SPEC, lookups, MARK, quantile_sql.QuantileRollup(7, MARK)
    )
    assert "v.bucket = ANY(" in text
    assert [12, 14] in params and 1.5 in params and 2.25 in params
    assert ["control", "treatment"] in params and [3, 1] in params


def test_full_path_has_no_rollup() -> None:
    text, _ = quantile_sql.quantile_stats_query(SCOPE, SPEC, MARK)
    assert "analysis_quantile" not in text
