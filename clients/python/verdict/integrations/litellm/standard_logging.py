"""LiteLLM's `standard_logging_object` as an `LlmCall` (pure: dicts in, no LiteLLM import).

The fields read (LiteLLM's StandardLoggingPayload): `startTime`, `endTime` and
`completionStartTime` (seconds), `stream`, `prompt_tokens`, `completion_tokens`,
`response_cost`, `cache_hit`, `model_group` / `model` (requested), the response's `model`
(served), `custom_llm_provider`, `id` (the response id users give feedback on),
`litellm_call_id`, `end_user`, `model_parameters.user`, `error_information.error_class`,
`response.choices[].finish_reason`. The call's `metadata["verdict"]` (written by the router)
gives the unit, experiment, variant and prompt version.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

from verdict.integrations import genai_events as ge
from verdict.integrations.litellm.payloads import VERDICT_METADATA, unit_of

_CALL_ID_NAMESPACE = uuid.UUID("3e2f5d8a-1c4b-5e6f-8a9b-0c1d2e3f4a5b")
_OPERATIONS = {  # LiteLLM's call type -> GenAI `gen_ai.operation.name`
    "completion": "chat",
    "acompletion": "chat",
    "text_completion": "text_completion",
    "atext_completion": "text_completion",
    "embedding": "embeddings",
    "aembedding": "embeddings",
    "responses": "chat",
    "aresponses": "chat",
}


def _verdict_metadata(kwargs: Mapping[str, Any], slo: Mapping[str, Any]) -> Mapping[str, Any]:
    for metadata in (
        (kwargs.get("litellm_params") or {}).get("metadata"),
        (slo.get("metadata") or {}).get("requester_metadata"),
    ):
        if isinstance(metadata, Mapping):
            found = metadata.get(VERDICT_METADATA)
            if isinstance(found, Mapping):
                return found
    return {}


def _unit(kwargs: Mapping[str, Any], slo: Mapping[str, Any], verdict: Mapping[str, Any]) -> str:
    for candidate in (
        verdict.get("unit_id"),
        unit_of(
            {
                "metadata": (kwargs.get("litellm_params") or {}).get("metadata"),
                "user": kwargs.get("user"),
            }
        ),
        slo.get("end_user"),
        (slo.get("model_parameters") or {}).get("user"),
    ):
        if isinstance(candidate, str) and candidate:
            return candidate
    return ""


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _response(slo: Mapping[str, Any]) -> Mapping[str, Any]:
    response = slo.get("response")
    return response if isinstance(response, Mapping) else {}


def _finish_reasons(response: Mapping[str, Any]) -> list[str]:
    choices = response.get("choices")
    if not isinstance(choices, list):
        return []
    reasons = []
    for choice in choices:
        reason = choice.get("finish_reason") if isinstance(choice, Mapping) else None
        if isinstance(reason, str) and reason:
            reasons.append(reason)
    return reasons


def event_id_of(slo: Mapping[str, Any]) -> str:
    """The event id of a call: LiteLLM's call id (a UUID; anything else is hashed into one),
    so the same call recorded twice is one event."""
    call_id = str(slo.get("litellm_call_id") or slo.get("id") or "")
    try:
        return str(uuid.UUID(call_id))
    except ValueError:
        return str(uuid.uuid5(_CALL_ID_NAMESPACE, call_id or str(uuid.uuid4())))


def call_from_logging(kwargs: Mapping[str, Any], failed: bool) -> ge.LlmCall | None:
    """The call LiteLLM logged; None when it has no standard logging object or no unit."""
    slo = kwargs.get("standard_logging_object")
    if not isinstance(slo, Mapping):
        return None
    verdict = _verdict_metadata(kwargs, slo)
    unit = _unit(kwargs, slo, verdict)
    start, end = _number(slo.get("startTime")), _number(slo.get("endTime"))
    if not unit or start is None:
        return None
    first = _number(slo.get("completionStartTime"))
    response = _response(slo)
    error = ""
    if failed:
        info = slo.get("error_information") or {}
        error = str(info.get("error_class") or "") or "error"
    cache_hit = slo.get("cache_hit")
    return ge.LlmCall(
        unit_id=ge.truncated(unit, 256),
        start_ns=int(start * 1e9),
        latency_ms=None if end is None else (end - start) * 1000.0,
        ttft_ms=(first - start) * 1000.0 if slo.get("stream") and first is not None else None,
        input_tokens=None if failed else _number(slo.get("prompt_tokens")),
        output_tokens=None if failed else _number(slo.get("completion_tokens")),
        cost_usd=None if failed else _number(slo.get("response_cost")),
        operation=_OPERATIONS.get(str(slo.get("call_type") or ""), "chat"),
        request_model=ge.truncated(str(slo.get("model_group") or slo.get("model") or "")),
        response_model=ge.truncated(str(response.get("model") or "")),
        provider=ge.truncated(str(slo.get("custom_llm_provider") or "")),
        response_id="" if failed else ge.truncated(str(slo.get("id") or "")),
        finish_reasons=_finish_reasons(response),
        prompt_version=ge.truncated(str(verdict.get("prompt_version") or "")),
        experiment=ge.truncated(str(verdict.get("experiment") or "")),
        variant=ge.truncated(str(verdict.get("variant") or "")),
        error_type=ge.truncated(error),
        cache_hit=cache_hit if isinstance(cache_hit, bool) else None,
    )
