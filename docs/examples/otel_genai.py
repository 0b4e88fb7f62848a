import os

from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

exporter = OTLPSpanExporter(
    endpoint=os.environ.get("VERDICT_INGEST_TARGET", "127.0.0.1:50052"),
    insecure=True,
    headers=(("authorization", f"Bearer {os.environ['VERDICT_INGEST_API_KEY']}"),),
)
provider = TracerProvider(resource=Resource.create({"service.name": "my-gateway"}))
provider.add_span_processor(BatchSpanProcessor(exporter))
tracer = provider.get_tracer("my-gateway")

with tracer.start_as_current_span("chat gpt-4o-mini") as span:  # one span per LLM call
    span.set_attributes(
        {
            "gen_ai.operation.name": "chat",
            "gen_ai.request.model": "gpt-4o-mini",
            "gen_ai.response.model": "gpt-4o-mini-2024-07-18",
            "gen_ai.usage.input_tokens": 42,
            "gen_ai.usage.output_tokens": 128,
            "gen_ai.response.finish_reasons": ["stop"],
            "user.id": os.environ.get("DEMO_USER", "user-42"),  # the unit
        }
    )
provider.shutdown()  # flushes
