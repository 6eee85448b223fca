"""Every chat request is traced, step by step, and exported over OTLP to a collector."""

from __future__ import annotations

from typing import Any

from app.localmodel.runner import BackgroundServer
from tests.conftest import eventually, sign_in
from tests.otlp_receiver import create_otlp_receiver
from tests.sse import chat

STEPS = {
    *("chat", "caps.rate_limit", "retrieve", "caps.reserve"),
    *("llm.stream", "settle"),
}


def test_chat_spans_reach_the_collector_with_the_trace_id_users_see(start_app) -> None:  # type: ignore[no-untyped-def]
    spans: list[dict[str, Any]] = []
    collector = BackgroundServer(create_otlp_receiver(spans)).start()
    try:
        app: BackgroundServer = start_app(
            otel_exporter_otlp_endpoint=collector.url, otel_service_name="ragship-test"
        )
        with sign_in(app.url, "traced@example.com") as client:
            events = chat(client, "How do I ingest PDF files?")
        trace_id = events[0][1]["trace_id"]

        def exported() -> bool:
            return STEPS <= {s["name"] for s in spans if s["trace_id"] == trace_id}

        eventually(exported, timeout_s=15, what="the request's spans at the collector")
        ours = {s["name"]: s for s in spans if s["trace_id"] == trace_id}
        root = ours["chat"]
        assert root["parent_span_id"] == "" and root["service"] == "ragship-test"
        assert all(ours[name]["parent_span_id"] == root["span_id"] for name in STEPS - {"chat"})
        assert "first_token" in ours["llm.stream"]["events"]
        assert root["attributes"]["gen_ai.usage.output_tokens"].int_value > 0
    finally:
        collector.stop()
