"""The evaluation runner and ``finite-memory eval``: recall on the synthetic generator, output, errors."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from finite_memory.cli import main
from finite_memory.eval.runner import ProgressBar, evaluate, evidence_ids, load_dataset
from finite_memory.eval.synthetic import generate_conversation, generate_dataset

#: Recall at a 256-token context on ``generate_dataset(5)``, pinned so a regression shows.
PINNED = {"sliding": 0.04, "semantic": 0.81, "hybrid": 0.81}


@pytest.fixture(scope="module")
def samples() -> list[dict[str, object]]:
    return generate_dataset(5)


@pytest.fixture(scope="module")
def results(samples: list[dict[str, object]]) -> dict[str, object]:
    return {name: evaluate(samples, name, 256) for name in PINNED}


def test_smart_policies_beat_sliding_by_a_wide_margin(results: dict[str, object]) -> None:
    sliding = results["sliding"].overall  # type: ignore[attr-defined]
    for name in ("semantic", "hybrid"):
        assert results[name].overall >= sliding + 0.6, name  # type: ignore[attr-defined]


@pytest.mark.parametrize("name", sorted(PINNED))
def test_recall_figures_are_pinned(results: dict[str, object], name: str) -> None:
    assert results[name].overall == pytest.approx(PINNED[name], abs=0.05)  # type: ignore[attr-defined]


def test_result_breaks_recall_down(results: dict[str, object], samples: list[dict[str, object]]) -> None:
    result = results["semantic"]
    assert result.questions == sum(len(s["qa"]) for s in samples)  # type: ignore[arg-type, attr-defined]
    assert set(result.by_category) == {1, 2, 4} and sum(result.counts.values()) == result.questions  # type: ignore[attr-defined]
    assert len(result.by_conversation) == 5  # type: ignore[attr-defined]
    low, mid, high = result.spread()  # type: ignore[attr-defined]
    assert 0 <= low <= mid <= high <= 1
    overall = sum(result.by_category[c] * n for c, n in result.counts.items()) / result.questions  # type: ignore[attr-defined]
    assert overall == pytest.approx(result.overall)  # type: ignore[attr-defined]
    assert result.add_ms > 0 and result.context_ms > 0  # type: ignore[attr-defined]
    document = result.as_dict()  # type: ignore[attr-defined]
    assert document["by_category"].keys() == {"multi-hop", "temporal", "single-hop"}
    json.dumps(document)


def test_evidence_ids_and_questions_without_usable_evidence() -> None:
    assert evidence_ids({"evidence": ["D8:6; D9:17", "D1:2"]}) == ["D8:6", "D9:17", "D1:2"]
    assert evidence_ids({}) == []
    sample = generate_conversation(1, sessions=3)
    sample["qa"] = [
        {"question": "Nothing to find?", "evidence": ["D99:1"], "category": 4},  # names no line: skipped
        {"question": "Adversarial", "evidence": ["D1:1"], "category": 5},  # category 5: not asked
        {"question": "What did they say first?", "evidence": ["D1:1"], "category": 4},
    ]
    result = evaluate([sample], "sliding", 4096)
    assert result.questions == 1 and result.overall == 1.0


def test_bad_budget_is_refused(samples: list[dict[str, object]]) -> None:
    with pytest.raises(ValueError, match="budget"):
        evaluate(samples, "sliding", 16)


def test_progress_bar_is_one_line_redrawn_then_cleared() -> None:
    stream = io.StringIO()
    bar = ProgressBar("semantic@256", stream=stream, width=10)
    for done in range(1, 201):
        bar(done, 200, "conv-1")
    text = stream.getvalue()
    assert "\n" not in text and text.count("\r") <= 2 * 101 + 1  # redrawn per percent, not per question
    assert "[##########] 200/200 conv-1" in text and text.endswith("\r")


def test_load_dataset_reads_files_and_says_what_is_wrong(tmp_path: Path) -> None:
    good = tmp_path / "d.json"
    good.write_text(json.dumps(generate_dataset(3)))
    assert [s["sample_id"] for s in load_dataset(str(good), limit=2)] == ["synthetic-0-0", "synthetic-0-1"]
    assert len(load_dataset("synthetic", limit=2)) == 2
    with pytest.raises(FileNotFoundError, match="no dataset file"):
        load_dataset(str(tmp_path / "missing.json"))
    cases = {"{oops": "not a JSON file", "[]": "list of LoCoMo", '[{"qa": []}]': "not a LoCoMo conversation"}
    for text, message in cases.items():
        bad = tmp_path / "bad.json"
        bad.write_text(text)
        with pytest.raises(ValueError, match=message):
            load_dataset(str(bad))
    with pytest.raises(ValueError, match="limit"):
        load_dataset("synthetic", limit=0)


def test_cli_prints_a_table_and_writes_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "r.json"
    argv = ["eval", "--dataset", "synthetic", "--policy", "sliding,semantic", "--budget", "256,512"]
    assert main([*argv, "--limit", "2", "--json", str(out)]) == 0
    captured = capsys.readouterr()
    lines = captured.out.splitlines()
    assert lines[0].startswith("evidence recall on synthetic (2 conversations")
    assert lines[1].split()[:4] == ["policy", "budget", "recall", "multi-hop"]
    rows = [line.split() for line in lines[2:]]
    assert [(r[0], r[1]) for r in rows] == [
        ("sliding", "256"),
        ("sliding", "512"),
        ("semantic", "256"),
        ("semantic", "512"),
    ]
    assert float(rows[2][2]) > float(rows[0][2]) + 0.5
    assert "\r" not in captured.err and "run 4 of 4: semantic@512\n" in captured.err, "a log gets one line per run"
    document = json.loads(out.read_text())
    assert document["conversations"] == 2 and len(document["results"]) == 4
    first = document["results"][2]
    assert first["policy"] == "semantic" and first["budget"] == 256
    assert f"{first['overall']:.3f}" == rows[2][2]
    heads = lines[1].split()
    continuity = heads.index("continuity") - 1  # "conv min/med/max" is two words in the head, one in a row
    assert rows[2][continuity] == f"{first['continuity']:.3f}"
    assert rows[2][continuity + 1] == f"{first['prefix_reuse_median']:.3f}/{first['prefix_reuse_mean']:.3f}"
    assert first["options"] == {}, "no option given: the policy's defaults"
    assert main([*argv, "--limit", "1", "--quiet"]) == 0
    assert capsys.readouterr().err == ""


def test_cli_draws_a_progress_bar_on_a_terminal(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import io
    import sys

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    screen = Terminal()
    monkeypatch.setattr(sys, "stderr", screen)
    assert main(["eval", "--dataset", "synthetic", "--limit", "1", "--policy", "sliding", "--budget", "256,512"]) == 0
    drawn = screen.getvalue()
    assert "\rrun 1 of 2: sliding@256 [" in drawn and "\rrun 2 of 2: sliding@512 [" in drawn
    assert drawn.endswith("\r"), "the bar clears its line before the table"


def test_cli_passes_policy_options(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "r.json"
    argv = ["eval", "--dataset", "synthetic", "--policy", "sliding,semantic", "--budget", "384", "--limit", "2"]
    argv += ["--quiet", "--json", str(out)]
    assert main([*argv, "--option", "recent_turns=0", "--option", "low_water=null"]) == 0
    sliding_bare, semantic_bare = json.loads(out.read_text())["results"]
    assert semantic_bare["options"]["recent_turns"] == 0 and sliding_bare["options"]["low_water"] is None
    assert main(argv) == 0
    sliding, semantic = json.loads(out.read_text())["results"]
    assert semantic["continuity"] == 1.0 > semantic_bare["continuity"] + 0.5  # what recent_turns buys
    assert sliding["prefix_reuse_median"] > 0.8 > 0.1 > sliding_bare["prefix_reuse_median"]  # what low_water buys
    assert main([*argv, "--option", "recent_turns"]) == 2
    assert "--option takes KEY=VALUE" in capsys.readouterr().err
    assert main([*argv, "--option", "nope=1"]) == 2
    assert "nope" in capsys.readouterr().err


def test_result_dict_holds_the_chat_figures_and_options(samples: list[dict[str, object]]) -> None:
    result = evaluate(samples[:2], "sliding", 256, low_water=0.5)
    document = result.as_dict()
    assert document["continuity"] > 0.95  # the newest 3 exchanges, while they fit in half of a small budget
    assert 0.5 < document["prefix_reuse_median"] <= 1 and 0 < document["prefix_reuse_mean"] <= 1
    assert document["options"] == {"low_water": 0.5}
    json.dumps(document)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--dataset", "/no/such/file.json"], "no dataset file"),
        (["--dataset", "synthetic", "--budget", "abc"], "comma-separated integers"),
        (["--dataset", "synthetic", "--budget", "8"], ">= 32"),
        (["--dataset", "synthetic", "--policy", "nope"], "unknown policy 'nope'"),
        (["--dataset", "synthetic", "--policy", ","], "at least one policy"),
    ],
)
def test_cli_errors_are_one_clear_line(args: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["eval", *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("finite-memory eval: error:") and message in err and err.count("\n") == 1
