"""The partition plan: which days need a partition, which are past the retention."""

from __future__ import annotations

from datetime import date

from verdict_ingest.partitions import plan_for


def test_partition_plan_covers_the_window_and_a_week_ahead() -> None:
    plan = plan_for(date(2026, 3, 10), past_window_days=7, retention_days=90)
    assert plan.first_day == date(2026, 3, 2)
    assert plan.days == 8 + 7 + 1
    assert plan.drop_before == date(2025, 12, 10)
