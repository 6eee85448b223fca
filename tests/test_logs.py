"""Structured logs: one JSON object per line, with the trace id of the current span."""

from __future__ import annotations

import json
import logging

from opentelemetry.sdk.trace import TracerProvider

from app.observability.logs import JsonFormatter


def test_json_log_lines_carry_the_trace_id() -> None:
    record = logging.LogRecord(
        "ragship.test", logging.WARNING, __file__, 1, "upstream %s", ("slow",), None
    )
    tracer = TracerProvider().get_tracer("test")
    with tracer.start_as_current_span("request") as span:
        line = JsonFormatter().format(record)
    entry = json.loads(line)
    assert entry["message"] == "upstream slow" and entry["level"] == "warning"
    assert entry["trace_id"] == format(span.get_span_context().trace_id, "032x")
    assert "trace_id" not in json.loads(JsonFormatter().format(record))
