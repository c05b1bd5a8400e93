"""``GET /metrics`` of ``finite-memory serve``, read back with Prometheus's own text parser."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
from _api_server import openai_prompt_tokens
from _serve_helpers import ServeUpstream
from prometheus_client.parser import text_string_to_metric_families


def scrape(proxy: Any) -> dict[str, Any]:
    response = httpx.get(proxy.url + "/metrics")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain; version=0.0.4")
    return {family.name: family for family in text_string_to_metric_families(response.text)}


def value(families: dict[str, Any], sample: str, **labels: str) -> float:
    for family in families.values():
        for s in family.samples:
            if s.name == sample and all(s.labels.get(k) == v for k, v in labels.items()):
                return float(s.value)
    return 0.0


def test_metrics_count_requests_errors_tokens_and_latency(
    make_proxy: Callable[..., Any], upstream: ServeUpstream
) -> None:
    proxy = make_proxy()
    upstream.cached = 5
    url = proxy.url + "/v1/chat/completions"
    for text in ("one", "two"):
        httpx.post(
            url, json={"messages": [{"role": "user", "content": text}]}, headers={"x-finite-memory-session": "a"}
        )
    httpx.post(url, json={"messages": [{"role": "user", "content": "stateless"}]})
    httpx.post(url, content=b"{oops")
    upstream.faults.append("503")
    httpx.post(url, json={"messages": [{"role": "user", "content": "x"}]})
    httpx.get(proxy.url + "/nowhere")

    families = scrape(proxy)
    assert value(families, "finite_memory_requests_total", route="chat", status="200") == 3
    assert value(families, "finite_memory_requests_total", route="chat", status="400") == 1
    assert value(families, "finite_memory_requests_total", route="chat", status="502") == 1
    assert value(families, "finite_memory_errors_total", kind="invalid_json") == 1
    assert value(families, "finite_memory_errors_total", kind="upstream_error") == 1
    assert value(families, "finite_memory_errors_total", kind="unknown_url") == 1
    assert value(families, "finite_memory_turns_total", mode="session") == 2
    assert value(families, "finite_memory_turns_total", mode="stateless") == 2  # the failed one was sent too
    assert value(families, "finite_memory_archived_messages_total") == 4
    assert value(families, "finite_memory_cached_prompt_tokens_total") == 15
    answered = [r["body"]["messages"] for r in upstream.requests if r["path"] == "/v1/chat/completions"][:3]
    assert value(families, "finite_memory_prompt_tokens_total") == sum(openai_prompt_tokens(m) for m in answered)
    assert value(families, "finite_memory_upstream_seconds_count") == 3
    assert value(families, "finite_memory_context_tokens_count") == 4
    assert value(families, "finite_memory_policy_seconds_count") == 4
    assert value(families, "finite_memory_context_tokens_bucket", le="+Inf") == 4
    assert value(families, "finite_memory_sessions_open") == 1
    assert value(families, "finite_memory_turns_in_flight") == 0


async def test_a_held_back_snapshot_is_written_later_without_another_request(tmp_path: Any) -> None:
    import asyncio
    import json

    from finite_memory_api.serve._metrics import Metrics

    metrics = Metrics(shared_dir=str(tmp_path))
    metrics.count("finite_memory_requests_total", route="chat", status="200")
    metrics.write_snapshot(every=0.2)  # written now
    metrics.count("finite_memory_requests_total", route="chat", status="200")
    metrics.write_snapshot(every=0.2)  # held back: too soon after the last one
    (snapshot,) = tmp_path.glob("*.json")
    assert json.loads(snapshot.read_text())["counters"][0][2] == 1
    await asyncio.sleep(0.4)  # no request follows, yet the last figures land
    assert json.loads(snapshot.read_text())["counters"][0][2] == 2
