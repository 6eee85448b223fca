"""OpenTelemetry tracing: a span for each chat request and each step of it, exported over
OTLP/HTTP when OTEL_EXPORTER_OTLP_ENDPOINT is set (Phoenix, Jaeger, any collector).

Each app builds its own provider (no process-global state), and flushes it on shutdown so
no finished span is lost. The request span's trace id is the one shown to users and admins.
"""

from __future__ import annotations

from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import Span, Tracer

from app.settings import Settings


def build_tracing(settings: Settings) -> tuple[Tracer, TracerProvider]:
    provider = TracerProvider(
        resource=Resource.create({"service.name": settings.otel_service_name})
    )
    endpoint = settings.otel_exporter_otlp_endpoint
    if endpoint:
        exporter = OTLPSpanExporter(endpoint=f"{endpoint.rstrip('/')}/v1/traces", timeout=5)
        provider.add_span_processor(BatchSpanProcessor(exporter, schedule_delay_millis=1000))
    return provider.get_tracer("ragship"), provider


def trace_id_of(span: Span) -> str:
    return format(span.get_span_context().trace_id, "032x")
