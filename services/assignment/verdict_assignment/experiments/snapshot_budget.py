"""The configuration snapshot's size budget (VERDICT_MAX_SNAPSHOT_BYTES).

Every assignment replica holds the snapshot (running and stopped experiments, saved groups) in
memory and sends it whole to local evaluators, so its size is bounded: a change that would make
it larger than the budget is refused (FAILED_PRECONDITION) in the change's own transaction. The
check runs after the configuration version is bumped, so concurrent changes are serialised on
that row and cannot both slip under the budget. Sizes are counted as the stored JSON, which is
larger than the snapshot's protobuf encoding: the budget is a safe bound.
"""

from __future__ import annotations

from verdict_assignment.experiments.ports import ConfigWrites
from verdict_platform.errors import FailedPrecondition


async def check_snapshot_budget(writes: ConfigWrites, budget: int | None) -> None:
    """FailedPrecondition when the snapshot, with the transaction's changes, exceeds `budget`."""
    if budget is None:
        return
    size = await writes.snapshot_bytes()
    if size > budget:
        raise FailedPrecondition(
            f"the configuration snapshot would hold {size} bytes, over its {budget}-byte budget "
            "(VERDICT_MAX_SNAPSHOT_BYTES): archive stopped experiments, or make payloads and "
            "saved groups smaller"
        )
