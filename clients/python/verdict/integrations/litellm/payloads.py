"""How a variant's payload changes a LiteLLM call (pure).

A payload is the variant's LLM configuration, e.g. `{"model": "gpt-4o", "temperature": 0.2,
"max_tokens": 512, "prompt_version": "v2"}`. Every key becomes a call parameter (the
experiment decides, so it wins over the caller's value), except:

- `prompt_version`: recorded with the call; when the gateway was given prompts by version, the
  version's text becomes the call's system message;
- `system_prompt`: becomes the call's system message;
- `params`: an object whose keys become call parameters (for payloads that nest them).

The call's `metadata["verdict"]` records the unit, experiments, variants and prompt version, so
that the recording callback can put them on the call's event.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

VERDICT_METADATA = "verdict"
"""The key of `metadata` the router writes and the callback reads."""
UNIT_KEY = "verdict_unit_id"
"""`metadata[UNIT_KEY]`: the unit when it is not the call's `user`."""
ATTRIBUTES_KEY = "verdict_attributes"
"""`metadata[ATTRIBUTES_KEY]`: the unit's targeting attributes (e.g. {"country": "FR"})."""
_NOT_PARAMETERS = frozenset({"prompt_version", "system_prompt", "params"})


@dataclass(frozen=True)
class Routed:
    """A unit's variant in one experiment, with its payload."""

    experiment_key: str
    variant_key: str
    payload: Mapping[str, Any]


def unit_of(kwargs: Mapping[str, Any]) -> str | None:
    """The unit a call is for: `metadata["verdict_unit_id"]`, else the OpenAI `user` field."""
    metadata = kwargs.get("metadata")
    if isinstance(metadata, Mapping):
        unit = metadata.get(UNIT_KEY)
        if isinstance(unit, str) and unit:
            return unit
    user = kwargs.get("user")
    return user if isinstance(user, str) and user else None


def attributes_of(kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """The unit's targeting attributes given with the call (`metadata["verdict_attributes"]`)."""
    metadata = kwargs.get("metadata")
    if isinstance(metadata, Mapping):
        attributes = metadata.get(ATTRIBUTES_KEY)
        if isinstance(attributes, Mapping):
            return dict(attributes)
    return {}


def with_system_message(messages: Sequence[Any], text: str) -> list[Any]:
    """`messages` with `text` as the system message (replacing the first one, else first)."""
    out = list(messages)
    for i, message in enumerate(out):
        if isinstance(message, Mapping) and message.get("role") == "system":
            out[i] = {**message, "content": text}
            return out
    return [{"role": "system", "content": text}, *out]


def apply_variants(
    kwargs: Mapping[str, Any],
    unit_id: str,
    routed: Sequence[Routed],
    prompts: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The call's parameters with each variant's payload applied, in order (a later experiment's
    key wins when two set the same parameter), and `metadata["verdict"]` filled in."""
    call = dict(kwargs)
    prompt_version = ""
    for r in routed:
        payload = r.payload
        call.update({k: v for k, v in payload.items() if k not in _NOT_PARAMETERS})
        nested = payload.get("params")
        if isinstance(nested, Mapping):
            call.update(nested)
        version = payload.get("prompt_version")
        if isinstance(version, str | int | float) and not isinstance(version, bool):
            prompt_version = str(version)
        system = payload.get("system_prompt")
        if not isinstance(system, str) and prompts is not None:
            system = prompts.get(prompt_version) if prompt_version else None
        if isinstance(system, str) and isinstance(call.get("messages"), Sequence):
            call["messages"] = with_system_message(call["messages"], system)
    metadata = dict(call.get("metadata") or {})
    metadata[VERDICT_METADATA] = {
        "unit_id": unit_id,
        "experiment": ",".join(r.experiment_key for r in routed),
        "variant": ",".join(r.variant_key for r in routed),
        "prompt_version": prompt_version,
    }
    call["metadata"] = metadata
    return call
