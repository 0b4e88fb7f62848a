"""The Assign hot path's three mechanical steps, each with its Python reference.

The compiled decoder equals protobuf's on every message protobuf accepts (tests fuzz it with
random and corrupted requests); on corrupted bytes it may be more lenient (it decodes some that
protobuf refuses, e.g. with invalid UTF-8 inside unknown fields), never less.

`decode_request`, `encode` and `unrecorded` use the compiled versions from `_fastpath.c` when
`make setup` built it, else the `*_py` references below; `COMPILED` says which. Tests run both on
the same inputs and require the same answers. The rules themselves (which variant, why) live in
the evaluation core, not here.
"""

from __future__ import annotations

from array import array
from collections.abc import Callable, Mapping, MutableSequence, Sequence
from types import ModuleType
from typing import Any

from verdict.evaluation import Assignment, Reason
from verdict.local import attributes_to_dict
from verdict.v1 import assignment_pb2

DecodedRequest = tuple[str, dict[str, Any], tuple[str, ...], bool]
"""(unit_id, attributes, experiment_keys, skip_exposure_logging)."""

Tables = Mapping[str, tuple[bytes, ...]]
"""Experiment key -> its prebuilt entries, laid out as `table_slot` says."""

IN_EXPERIMENT_REASONS = (Reason.ASSIGNED, Reason.FORCED, Reason.STICKY)
"""Reasons with a variant: one prebuilt entry per (reason, variant)."""
OUT_OF_EXPERIMENT_REASONS = tuple(r for r in Reason if r not in IN_EXPERIMENT_REASONS)
"""Reasons without a variant: one prebuilt entry each, after the in-experiment ones."""
COUNTED_REASONS = IN_EXPERIMENT_REASONS + OUT_OF_EXPERIMENT_REASONS
"""The reason of each counter of `encode`'s `counts`, in order."""


def decision_counters() -> MutableSequence[int]:
    """Zeroed counters for `encode`: one unsigned 64-bit counter per `COUNTED_REASONS`."""
    return array("Q", bytes(8 * len(COUNTED_REASONS)))


def table_slot(reason: Reason, variant_index: int, variants: int) -> int:
    """Where an entry sits in an experiment's table: in-experiment reasons first (one block of
    `variants` entries per reason, by variant), then one entry per out-of-experiment reason."""
    if reason in IN_EXPERIMENT_REASONS:
        return IN_EXPERIMENT_REASONS.index(reason) * variants + variant_index
    return len(IN_EXPERIMENT_REASONS) * variants + OUT_OF_EXPERIMENT_REASONS.index(reason)


def decode_request_py(body: bytes) -> DecodedRequest:
    """Reference: the generated parser, then `attributes_to_dict`. Raises ValueError."""
    try:
        request = assignment_pb2.AssignRequest.FromString(body)
    except Exception as error:  # protobuf's DecodeError
        raise ValueError(f"malformed AssignRequest: {error}") from error
    return (
        request.unit_id,
        attributes_to_dict(request.attributes),
        tuple(request.experiment_keys),
        request.skip_exposure_logging,
    )


def encode_py(
    results: Sequence[Assignment],
    tables: Tables,
    in_reasons: tuple[Reason, ...],
    out_reasons: tuple[Reason, ...],
    tail: bytes,
    counts: MutableSequence[int] | None = None,
) -> bytes | None:
    """Reference: the prebuilt entries of `results` joined, then `tail`; None when one is
    missing (an unknown key, or a variant index out of range). With `counts` (one counter per
    reason of `in_reasons + out_reasons`), each result's reason is counted once it succeeds."""
    parts = []
    for r in results:
        table = tables.get(r.experiment_key)
        if table is None:
            return None
        variants = (len(table) - len(out_reasons)) // len(in_reasons)
        if r.reason in in_reasons:
            if not 0 <= r.variant_index < variants:
                return None
            parts.append(table[in_reasons.index(r.reason) * variants + r.variant_index])
        elif r.reason in out_reasons:
            parts.append(table[len(in_reasons) * variants + out_reasons.index(r.reason)])
        else:
            return None
    parts.append(tail)
    if counts is not None:
        reasons = in_reasons + out_reasons
        for r in results:
            counts[reasons.index(r.reason)] += 1
    return b"".join(parts)


def unrecorded_py(
    results: Sequence[Assignment],
    unit_id: str,
    recent: Mapping[str, Mapping[str, str]],
    exposed: tuple[Reason, ...],
) -> list[Assignment]:
    """Reference: the results to record as exposures (reason in `exposed`, with a variant, not
    the variant `recent[unit_id]` holds for their experiment)."""
    seen = recent.get(unit_id, {})
    return [
        r
        for r in results
        if r.variant_key is not None
        and r.reason in exposed
        and seen.get(r.experiment_key) != r.variant_key
    ]


_compiled: ModuleType | None
try:
    from verdict_assignment.assign import _fastpath as _compiled  # type: ignore[attr-defined,no-redef]
except ImportError:  # pragma: no cover - exercised only without a C compiler at setup
    _compiled = None

COMPILED = _compiled is not None
"""Whether the compiled versions are in use."""


def decode_request(body: bytes) -> DecodedRequest | None:
    """The request as Python values, None when malformed (the handler answers INVALID_ARGUMENT,
    where a raising deserializer would make grpc answer INTERNAL). The compiled decoder when it
    was built, with the reference as judge of what it refuses: bytes it finds malformed but
    protobuf accepts (exotic encodings such as unknown groups) are decoded by the reference."""
    if _compiled is not None:
        try:
            return _compiled.decode_request(body)  # type: ignore[no-any-return]
        except ValueError:
            pass
    try:
        return decode_request_py(body)
    except ValueError:
        return None


encode: Callable[
    [
        Sequence[Assignment],
        Tables,
        tuple[Reason, ...],
        tuple[Reason, ...],
        bytes,
        MutableSequence[int] | None,
    ],
    bytes | None,
] = _compiled.encode if _compiled is not None else encode_py
unrecorded: Callable[
    [Sequence[Assignment], str, Mapping[str, Mapping[str, str]], tuple[Reason, ...]],
    list[Assignment],
] = _compiled.unrecorded if _compiled is not None else unrecorded_py
