"""The Assign hot path's three mechanical steps, each with its Python reference.

The compiled decoder equals protobuf's on every message protobuf accepts (tests fuzz it with
random and corrupted requests); on corrupted bytes it may be more lenient (it decodes some that
protobuf refuses, e.g. with invalid UTF-8 inside unknown fields), never less.

`decode_request`, `encode` and `unrecorded` use the compiled versions from `_fastpath.c` when
`make setup` built it, else the `*_py` references below; `COMPILED` says which. Tests run both on
the same inputs and require the same answers. The rules themselves (which variant, why) live in
the evaluation core, not here.

Limits of a request, which `assignment.proto` promises to answer with INVALID_ARGUMENT:
`attributes` of at most MAX_ATTRIBUTES_BYTES on the wire (the lengths of all occurrences of the
field, which protobuf merges) and at most MAX_ATTRIBUTES_DEPTH JSON levels (the attributes object
is level 1, `{"a": {"b": [1]}}` has 3). Both decoders check them after the request is known to be
well-formed, so a request is refused as malformed first, then as too large, then as too deep.
`forced_variations` holds at most MAX_FORCED_VARIATIONS entries of at most
MAX_FORCED_VARIATION_BYTES per key and value, and `min_config_version` is not negative.

Options. `forced_variations`, `explain` and `min_config_version` (fields 5 to 7) are QA and
read-your-writes tools, rare in production traffic. The compiled decoder does not read them: it
gives up (ValueError) on the first of them, so `decode_request` hands such a request to the
reference, which returns them as an `AssignOptions` (None when all are unset). Requests without
them cost what they cost before the fields existed; both decoders return the same 5-tuple.
"""

from __future__ import annotations

from array import array
from collections.abc import Callable, Mapping, MutableSequence, Sequence
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from verdict.evaluation import Assignment, Reason
from verdict.local import attributes_to_dict
from verdict.v1 import assignment_pb2

MAX_ATTRIBUTES_BYTES = 16 * 1024
"""Largest serialised `AssignRequest.attributes`; attributes are a handful of targeting facts."""
MAX_ATTRIBUTES_DEPTH = 8
"""Deepest JSON nesting of `AssignRequest.attributes` (the object itself is level 1)."""
MAX_FORCED_VARIATIONS = 100
"""Most entries of `AssignRequest.forced_variations` (the contract's limit)."""
MAX_FORCED_VARIATION_BYTES = 256
"""Longest key or value of `AssignRequest.forced_variations`, in UTF-8 bytes."""
DECODED_LENGTH = 5
"""Items of a decoded request (`DecodedRequest`); the compiled decoder must build as many."""

_compiled: ModuleType | None
try:
    from verdict_assignment.assign import _fastpath as _compiled  # type: ignore[attr-defined,no-redef]
except ImportError:  # pragma: no cover - exercised only without a C compiler at setup
    _compiled = None

COMPILED = _compiled is not None
"""Whether the compiled versions are in use."""


class _RequestLimitError(ValueError):
    """A well-formed AssignRequest over a limit; args: (field, description)."""


RequestLimitError: type[ValueError] = (
    _compiled.RequestLimitError if _compiled is not None else _RequestLimitError
)
"""Raised by both decoders for a request over a limit (the compiled module's class when built)."""


@dataclass(frozen=True, slots=True)
class RequestProblem:
    """Why a request is refused: the field to name in the INVALID_ARGUMENT answer, and why."""

    field: str
    description: str


MALFORMED = RequestProblem("request", "not a valid AssignRequest message")


@dataclass(frozen=True, slots=True)
class AssignOptions:
    """The request's rarely used fields, present when any of them is set."""

    forced: Mapping[str, str]
    """`forced_variations`: experiment key -> variant key (QA; needs the qa or admin role)."""
    explain: bool
    """Whether each answer carries an `Explanation` (built the slow way)."""
    min_config_version: int
    """Answer from a configuration at least this recent; 0: any."""


DecodedRequest = tuple[str, dict[str, Any], tuple[str, ...], bool, AssignOptions | None]
"""(unit_id, attributes, experiment_keys, skip_exposure_logging, options)."""

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
    """Reference: the generated parser, then `attributes_to_dict`, then the limits. Raises
    ValueError when malformed, RequestLimitError when over a limit."""
    try:
        request = assignment_pb2.AssignRequest.FromString(body)
    except Exception as error:  # protobuf's DecodeError
        raise ValueError(f"malformed AssignRequest: {error}") from error
    attributes = attributes_to_dict(request.attributes)
    size = _attributes_wire_bytes(body)
    if size > MAX_ATTRIBUTES_BYTES:
        raise RequestLimitError(
            "attributes", f"are {size} bytes; at most {MAX_ATTRIBUTES_BYTES} allowed"
        )
    if json_depth(attributes) > MAX_ATTRIBUTES_DEPTH:
        raise RequestLimitError("attributes", f"nest more than {MAX_ATTRIBUTES_DEPTH} levels deep")
    return (
        request.unit_id,
        attributes,
        tuple(request.experiment_keys),
        request.skip_exposure_logging,
        _options(request),
    )


def _options(request: assignment_pb2.AssignRequest) -> AssignOptions | None:
    """The request's options, checked against their limits; None when none is set."""
    forced = dict(request.forced_variations)
    if not (forced or request.explain or request.min_config_version):
        return None
    if len(forced) > MAX_FORCED_VARIATIONS:
        raise RequestLimitError(
            "forced_variations",
            f"has {len(forced)} entries; at most {MAX_FORCED_VARIATIONS} allowed",
        )
    for key, variant in forced.items():
        if max(len(key.encode()), len(variant.encode())) > MAX_FORCED_VARIATION_BYTES:
            raise RequestLimitError(
                "forced_variations",
                f"keys and values are at most {MAX_FORCED_VARIATION_BYTES} bytes",
            )
    if request.min_config_version < 0:
        raise RequestLimitError("min_config_version", "must not be negative")
    return AssignOptions(forced, request.explain, request.min_config_version)


def json_depth(value: Any) -> int:
    """JSON nesting: a dict or list is one level more than its deepest item; a scalar is 0."""
    if isinstance(value, dict):
        return 1 + max(map(json_depth, value.values()), default=0)
    if isinstance(value, list):
        return 1 + max(map(json_depth, value), default=0)
    return 0


def _varint(body: bytes, at: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = body[at]
        value |= (byte & 0x7F) << shift
        at += 1
        shift += 7
        if not byte & 0x80:
            return value, at


def _skip(body: bytes, at: int, field: int, wire: int) -> tuple[int, int]:
    """The end of the field whose value starts at `at`, and its length if length-delimited."""
    if wire == 0:
        return _varint(body, at)[1], 0
    if wire == 1:
        return at + 8, 0
    if wire == 5:
        return at + 4, 0
    if wire == 2:
        length, at = _varint(body, at)
        return at + length, length
    while True:  # a group (3), up to its end tag (4): protobuf skips unknown groups whole
        tag, at = _varint(body, at)
        if tag & 7 == 4:
            return at, 0
        at = _skip(body, at, tag >> 3, tag & 7)[0]


def _attributes_wire_bytes(body: bytes) -> int:
    """The lengths of the `attributes` occurrences of a request protobuf has parsed."""
    total = at = 0
    while at < len(body):
        tag, at = _varint(body, at)
        at, length = _skip(body, at, tag >> 3, tag & 7)
        if tag == (2 << 3 | 2):
            total += length
    return total


def encode_py(
    results: Sequence[Assignment],
    tables: Tables,
    in_reasons: tuple[Reason, ...],
    out_reasons: tuple[Reason, ...],
    tail: bytes,
    counts: MutableSequence[int] | None = None,
) -> bytes | None:
    """Reference: the prebuilt entries of `results` joined, then `tail`; None when one is
    missing (an unknown key, a variant index out of range, an entry that is no bytes).
    TypeError or ValueError for tables of the wrong shape. With `counts` (one counter per reason
    of `in_reasons + out_reasons`), each result's reason is counted once the join succeeds."""
    if not in_reasons:
        raise ValueError("in_reasons must not be empty")
    parts = []
    for r in results:
        table = tables.get(r.experiment_key)
        if table is None:
            return None
        if not isinstance(table, tuple):
            raise TypeError("tables must map experiment keys to tuples")
        if len(table) < len(out_reasons):
            raise ValueError("a prebuilt table is smaller than out_reasons")
        variants = (len(table) - len(out_reasons)) // len(in_reasons)
        if r.reason in in_reasons:
            if not 0 <= r.variant_index < variants:
                return None
            entry = table[in_reasons.index(r.reason) * variants + r.variant_index]
        elif r.reason in out_reasons:
            entry = table[len(in_reasons) * variants + out_reasons.index(r.reason)]
        else:
            return None
        if not isinstance(entry, bytes):
            return None
        parts.append(entry)
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


def check_layout(compiled: Any) -> None:
    """RuntimeError unless the compiled module's limits and the Assignment fields it reads by
    position are the ones this module and the evaluation core define."""
    fields = tuple(compiled.ASSIGNMENT_FIELDS)
    if Assignment._fields[: len(fields)] != fields:
        raise RuntimeError(
            f"_fastpath.c reads Assignment as {fields}, the evaluation core defines "
            f"{Assignment._fields}: rebuild (make setup) or update _fastpath.c"
        )
    limits = (compiled.MAX_ATTRIBUTES_BYTES, compiled.MAX_ATTRIBUTES_DEPTH)
    if limits != (MAX_ATTRIBUTES_BYTES, MAX_ATTRIBUTES_DEPTH):
        raise RuntimeError(f"_fastpath.c enforces limits {limits}: rebuild (make setup)")
    length = getattr(compiled, "DECODED_LENGTH", 4)
    if length != DECODED_LENGTH:
        raise RuntimeError(
            f"_fastpath.c decodes requests into {length} items, not {DECODED_LENGTH}: "
            "rebuild (make setup)"
        )


if _compiled is not None:
    check_layout(_compiled)


def decode_request(body: bytes) -> DecodedRequest | RequestProblem:
    """The request as Python values, or the problem to answer INVALID_ARGUMENT with (a raising
    deserializer would make grpc answer INTERNAL). The compiled decoder when it was built, with
    the reference as judge of whatever it refuses: bytes it finds malformed but protobuf accepts
    (exotic encodings such as unknown groups), and requests with options (fields 5 to 7, which
    it leaves to the reference), are decoded by the reference, and a request it finds over a
    limit is checked by the reference (which refuses malformed bytes first)."""
    if _compiled is not None:
        try:
            return _compiled.decode_request(body)  # type: ignore[no-any-return]
        except ValueError:
            pass
    try:
        return decode_request_py(body)
    except RequestLimitError as error:
        return RequestProblem(*error.args)
    except ValueError:
        return MALFORMED


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
