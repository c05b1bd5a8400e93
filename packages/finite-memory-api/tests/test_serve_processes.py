"""``finite-memory serve`` as real processes: ``kill -9`` and restart, several processes on one SQLite file."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import httpx
import openai
import pytest
from _serve_helpers import UPSTREAM_KEY, ProcessProxy, ServeUpstream, session_messages
from prometheus_client.parser import text_string_to_metric_families

from finite_memory.cli import main

SESSION = "X-Finite-Memory-Session"


def say(url: str, session: str, text: str, *, retries: int = 0) -> str:
    chat = openai.OpenAI(base_url=url + "/v1", api_key="k", max_retries=retries, default_headers={SESSION: session})
    reply = chat.chat.completions.create(model="test-model", messages=[{"role": "user", "content": text}])
    return reply.choices[0].message.content or ""


def test_a_session_survives_kill_9_of_the_proxy(upstream: ServeUpstream, tmp_path: Path) -> None:
    store = f"sqlite:///{tmp_path / 'chats.db'}"
    proxy = ProcessProxy(upstream.url, store).start()
    for text in ("I moved to Lisbon in May.", "My sister is called Ana.", "I have a dog."):
        say(proxy.url, "me", text)
    proxy.kill()  # SIGKILL: no shutdown code runs
    restarted = ProcessProxy(upstream.url, store).start()
    try:
        say(restarted.url, "me", "What do you remember?")
    finally:
        log = restarted.stop()
    context = [m["content"] for m in upstream.requests[-1]["body"]["messages"]]
    assert context[:6] == [
        "I moved to Lisbon in May.",
        "echo: I moved to Lisbon in May.",
        "My sister is called Ana.",
        "echo: My sister is called Ana.",
        "I have a dog.",
        "echo: I have a dog.",
    ]
    assert UPSTREAM_KEY not in log and "Traceback" not in log


def test_two_processes_on_one_sqlite_file_lose_and_duplicate_nothing(upstream: ServeUpstream, tmp_path: Path) -> None:
    path = tmp_path / "shared.db"
    store = f"sqlite:///{path}"
    first, second = ProcessProxy(upstream.url, store).start(), ProcessProxy(upstream.url, store).start()
    answered: dict[str, list[str]] = {f"s{i}": [] for i in range(3)}
    failures: list[str] = []
    lock = threading.Lock()

    def client(worker: int) -> None:
        url = (first, second)[worker % 2].url
        for turn in range(8):
            session = f"s{(worker + turn) % 3}"  # every session gets turns from both processes
            text = f"w{worker} t{turn}"
            try:
                reply = say(url, session, text, retries=5)  # a 409 from a raced turn is retried by the SDK
            except openai.APIError as exc:
                failures.append(f"{text}: {exc}")
                continue
            assert reply == f"echo: {text}"
            with lock:
                answered[session].append(text)

    threads = [threading.Thread(target=client, args=(w,)) for w in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    first.stop()
    second.stop()
    assert failures == []
    for session, texts in answered.items():
        archive = session_messages(path, session)
        users = [content for role, content in archive if role == "user"]
        assert sorted(users) == sorted(texts)  # nothing lost, nothing duplicated
        # every turn is whole and in place: a user message, then its own reply
        assert archive == [pair for text in users for pair in (("user", text), ("assistant", f"echo: {text}"))]


def test_workers_share_the_port_the_store_and_the_metrics(upstream: ServeUpstream, tmp_path: Path) -> None:
    path = tmp_path / "workers.db"
    with ProcessProxy(upstream.url, f"sqlite:///{path}", "--workers", "2") as proxy:
        for turn in range(10):
            say(proxy.url, "shared", f"turn {turn}", retries=3)
        requests = 0.0
        deadline = time.monotonic() + 10  # a worker's figures reach the others' scrapes within a second
        while requests != 10 and time.monotonic() < deadline:  # each scrape reaches one worker; each reports both
            text = httpx.get(proxy.url + "/metrics").text
            families = {f.name: f for f in text_string_to_metric_families(text)}
            requests = sum(s.value for s in families["finite_memory_requests"].samples if s.labels["route"] == "chat")
            time.sleep(0.2)
        assert requests == 10
    users = [content for role, content in session_messages(path, "shared") if role == "user"]
    assert users == [f"turn {t}" for t in range(10)]


def test_a_turn_raced_by_another_process_is_409_and_not_archived(upstream: ServeUpstream, tmp_path: Path) -> None:
    path = tmp_path / "race.db"
    store = f"sqlite:///{path}"
    with ProcessProxy(upstream.url, store) as slow, ProcessProxy(upstream.url, store) as fast:
        upstream.faults.append("slow:1.5")  # the first turn to reach the upstream takes its time
        outcome: dict[str, object] = {}

        def slow_turn() -> None:
            try:
                outcome["slow"] = say(slow.url, "s", "slow turn")
            except openai.APIStatusError as exc:
                outcome["slow"] = exc

        thread = threading.Thread(target=slow_turn)
        thread.start()
        deadline = time.monotonic() + 10
        while upstream.count("/v1/chat/completions") < 1 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert say(fast.url, "s", "fast turn") == "echo: fast turn"  # the other process finishes first
        thread.join()
    raced = outcome["slow"]
    assert isinstance(raced, openai.ConflictError), raced
    assert raced.body["code"] == "session_busy" and "finished first" in raced.body["message"]  # type: ignore[index]
    assert session_messages(path, "s") == [("user", "fast turn"), ("assistant", "echo: fast turn")]


@pytest.mark.parametrize(
    ("args", "problem"),
    [
        (["--policy", "no-such-policy"], "unknown policy"),
        (["--option", "nonsense"], "key=value"),
        (["--api-keys-file", "/nonexistent/keys.txt"], "cannot read the API keys file"),
        (["--backend", "ollama:m"], "'openai' or 'anthropic'"),
        (["--workers", "0"], "--workers must be at least 1"),
        (["--max-tokens", "0"], "max_tokens must be a positive integer"),
    ],
)
def test_bad_settings_end_the_command_with_one_line(
    upstream: ServeUpstream, tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], problem: str
) -> None:
    command = ProcessProxy(upstream.url, f"sqlite:///{tmp_path / 'x.db'}", *args).args[3:]  # after "-m finite_memory"
    assert main(command) == 2
    err = capsys.readouterr().err
    assert problem in err and err.count("\n") == 1 and err.startswith("finite-memory serve: error:")
