"""The LLM metric catalog: what an LLM team wants on day one, over the gateway's events.

Defined over `genai_events` (the `llm.call` event and the feedback events), created through
`ExperimentService.CreateMetric` (so each lands in the audit log) by `verdict metrics init-llm`
and by the demo. Existing metrics are left alone: running it twice changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

import grpc

from verdict.integrations import genai_events as ge
from verdict.v1 import experiment_pb2, experiment_pb2_grpc

_INCREASE = experiment_pb2.DIRECTION_INCREASE
_DECREASE = experiment_pb2.DIRECTION_DECREASE
_CALLS = experiment_pb2.MetricSource(event_name=ge.LLM_CALL)


def _source(event: str, measure: str = "") -> experiment_pb2.MetricSource:
    return experiment_pb2.MetricSource(event_name=event, measure=measure)


THUMBS_UP_RATE = "llm_thumbs_up_rate"
CONVERSION = "llm_conversion"
LATENCY_P95 = "llm_latency_p95"
TTFT_P95 = "llm_ttft_p95"
COST_PER_USER = "llm_cost_per_user"
TOKENS_PER_RESPONSE = "llm_tokens_per_response"
ERROR_RATE = "llm_error_rate"
REGENERATE_RATE = "llm_regenerate_rate"

LLM_METRICS: tuple[experiment_pb2.Metric, ...] = (
    experiment_pb2.Metric(
        key=THUMBS_UP_RATE,
        name="Thumbs-up rate per response",
        description="Thumbs up per LLM call (feedback.thumbs_up / llm.call), clustered by user.",
        type=experiment_pb2.METRIC_TYPE_RATIO,
        source=_source(ge.THUMBS_UP),
        denominator=_CALLS,
        direction=_INCREASE,
    ),
    experiment_pb2.Metric(
        key=CONVERSION,
        name="Conversion",
        description="Share of users with at least one conversion event.",
        type=experiment_pb2.METRIC_TYPE_BINOMIAL,
        source=_source(ge.CONVERSION),
        direction=_INCREASE,
    ),
    experiment_pb2.Metric(
        key=LATENCY_P95,
        name="p95 latency (ms)",
        description="95th percentile of llm.call latency_ms, clustered by user.",
        type=experiment_pb2.METRIC_TYPE_QUANTILE,
        source=_source(ge.LLM_CALL, ge.LATENCY_MS),
        quantile=0.95,
        direction=_DECREASE,
        non_inferiority_margin=0.05,
    ),
    experiment_pb2.Metric(
        key=TTFT_P95,
        name="p95 time to first token (ms)",
        description="95th percentile of llm.call ttft_ms (streamed calls), clustered by user.",
        type=experiment_pb2.METRIC_TYPE_QUANTILE,
        source=_source(ge.LLM_CALL, ge.TTFT_MS),
        quantile=0.95,
        direction=_DECREASE,
        non_inferiority_margin=0.05,
    ),
    experiment_pb2.Metric(
        key=COST_PER_USER,
        name="Cost per user (USD)",
        description="Sum of llm.call cost_usd per user, averaged over users.",
        type=experiment_pb2.METRIC_TYPE_MEAN,
        source=_source(ge.LLM_CALL, ge.COST_USD),
        direction=_DECREASE,
        non_inferiority_margin=0.05,
    ),
    experiment_pb2.Metric(
        key=TOKENS_PER_RESPONSE,
        name="Output tokens per response",
        description="gen_ai.usage.output_tokens per llm.call, clustered by user.",
        type=experiment_pb2.METRIC_TYPE_RATIO,
        source=_source(ge.LLM_CALL, ge.OUTPUT_TOKENS),
        denominator=_CALLS,
        direction=_DECREASE,
    ),
    experiment_pb2.Metric(
        key=ERROR_RATE,
        name="Error rate",
        description="Failed calls per llm.call (measure error: 1 on failure), clustered by user.",
        type=experiment_pb2.METRIC_TYPE_RATIO,
        source=_source(ge.LLM_CALL, ge.ERROR),
        denominator=_CALLS,
        direction=_DECREASE,
        non_inferiority_margin=0.1,
    ),
    experiment_pb2.Metric(
        key=REGENERATE_RATE,
        name="Regenerate rate",
        description="Regenerations per llm.call (feedback.regenerate / llm.call).",
        type=experiment_pb2.METRIC_TYPE_RATIO,
        source=_source(ge.REGENERATE),
        denominator=_CALLS,
        direction=_DECREASE,
    ),
)
"""The catalog. Guardrail margins (relative harm tolerated): latency, TTFT and cost 5 %,
errors 10 %."""


@dataclass(frozen=True)
class CatalogOutcome:
    """What `ensure_llm_metrics` did."""

    created: tuple[str, ...]
    existing: tuple[str, ...]


def ensure_llm_metrics(
    channel: grpc.Channel, metadata: tuple[tuple[str, str], ...], timeout_s: float = 10.0
) -> CatalogOutcome:
    """Creates the catalog's metrics that do not exist yet (an admin key's metadata);
    ALREADY_EXISTS leaves the existing definition alone. Other errors raise `grpc.RpcError`."""
    stub = experiment_pb2_grpc.ExperimentServiceStub(channel)
    created, existing = [], []
    for metric in LLM_METRICS:
        try:
            stub.CreateMetric(
                experiment_pb2.CreateMetricRequest(metric=metric),
                metadata=metadata,
                timeout=timeout_s,
            )
        except grpc.RpcError as error:
            if isinstance(error, grpc.Call) and error.code() == grpc.StatusCode.ALREADY_EXISTS:
                existing.append(metric.key)
                continue
            raise
        created.append(metric.key)
    return CatalogOutcome(tuple(created), tuple(existing))
