"""The rules between an experiment and the holdout that covers it (pure; the use cases fetch the
experiments these rules are about).

The choices, for an operator who wants a holdout to mean what it says:

- `holdout_key` names an existing, not archived experiment with `holdout` set (INVALID_ARGUMENT
  on create and update otherwise, at `experiment.holdout_key`).
- An experiment starts, and a running experiment moves under a holdout (`holdout_key` changed),
  only while that holdout runs (FAILED_PRECONDITION at `holdout_key`): otherwise the experiment
  would enrol units the holdout is meant to keep out of everything.
- `holdout` itself changes only in DRAFT, and is not cleared while experiments that are not
  archived name it (FAILED_PRECONDITION at `holdout`).
- A holdout is not archived while experiments that are not archived name it (FAILED_PRECONDITION
  at `holdout`): they would name nothing. Stopping a holdout is always allowed, because an
  operator or a stopping rule must always be able to stop; the experiments naming it keep
  running, and cannot be restarted until it runs again.
"""

from __future__ import annotations

from collections.abc import Sequence

from verdict.v1 import experiment_pb2
from verdict_platform.errors import FailedPrecondition, FieldViolation

_Experiment = experiment_pb2.Experiment
_RUNNING = experiment_pb2.EXPERIMENT_STATUS_RUNNING
_DRAFT = experiment_pb2.EXPERIMENT_STATUS_DRAFT
_ARCHIVED = experiment_pb2.EXPERIMENT_STATUS_ARCHIVED


def reference_problem(key: str, holdout: _Experiment | None) -> str | None:
    """What is wrong with `holdout_key` = `key` naming `holdout` (None when unknown), or None."""
    if holdout is None:
        return f"{key!r} names no experiment"
    if not holdout.holdout:
        return f"{key!r} is not a holdout (its `holdout` is false)"
    if holdout.status == _ARCHIVED:
        return f"{key!r} is an archived holdout"
    return None


def refuse_unless_holdout_runs(
    experiment: _Experiment, holdout: _Experiment | None, action: str, prefix: str = ""
) -> None:
    """FailedPrecondition unless the holdout `experiment` names (if any) is a running holdout."""
    key = experiment.holdout_key
    if not key:
        return
    problem = reference_problem(key, holdout)
    if problem is None and holdout is not None and holdout.status != _RUNNING:
        problem = f"the holdout {key!r} is not running: start it first"
    if problem is not None:
        raise FailedPrecondition(
            f"cannot {action} {experiment.key!r}: holdout_key {problem}",
            [FieldViolation(f"{prefix}holdout_key", problem)],
        )


def check_holdout_change(
    stored: _Experiment, updated: _Experiment, named_by: Sequence[str], prefix: str = ""
) -> None:
    """FailedPrecondition when `holdout` changes outside DRAFT, or is cleared while the
    experiments `named_by` (not archived) name this one."""
    if stored.holdout == updated.holdout:
        return
    at = f"{prefix}holdout"
    if stored.status != _DRAFT:
        problem = "can only change in DRAFT"
        raise FailedPrecondition(
            f"{stored.key!r}: holdout {problem}", [FieldViolation(at, problem)]
        )
    if stored.holdout and named_by:
        problem = f"is named as holdout_key by {', '.join(sorted(named_by))}"
        raise FailedPrecondition(
            f"{stored.key!r} stays a holdout: it {problem}", [FieldViolation(at, problem)]
        )


def refuse_archiving_named_holdout(holdout: _Experiment, named_by: Sequence[str]) -> None:
    """FailedPrecondition when experiments that are not archived name this holdout."""
    if holdout.holdout and named_by:
        problem = f"is named as holdout_key by {', '.join(sorted(named_by))}: archive them first"
        raise FailedPrecondition(
            f"cannot archive the holdout {holdout.key!r}: it {problem}",
            [FieldViolation("holdout", problem)],
        )
