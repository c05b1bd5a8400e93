"""``finite-memory eval --html`` / ``--compare``: the page's content, its safety, the CLI around it."""

from __future__ import annotations

import base64
import hashlib
import json
import re
from pathlib import Path

import pytest
from _report_data import run_document, without_chat_figures

from finite_memory.cli import main
from finite_memory.eval.report import comparison_table, render_comparison, render_report
from finite_memory.eval.results import check, read_results


def charts(page: str) -> list[str]:
    return re.findall(r"<svg class=\"chart\".*?</svg>", page, flags=re.S)


def test_the_report_is_self_contained_and_allows_nothing_else() -> None:
    page = render_report(run_document())
    assert page.startswith("<!doctype html>")
    policy = re.search(r'http-equiv="Content-Security-Policy" content="([^"]+)"', page)
    assert policy and "default-src 'none'" in policy.group(1)
    style = re.search(r"<style>(.*?)</style>", page, flags=re.S)
    assert style
    digest = base64.b64encode(hashlib.sha256(style.group(1).encode()).digest()).decode()
    assert f"style-src 'sha256-{digest}'" in policy.group(1), "the policy allows exactly this style sheet"
    for forbidden in ("<script", "<link", "<img", "<iframe", "@import", "url(", "http:", "https:", "src=", "href="):
        assert forbidden not in page, forbidden
    assert ' style="' not in page, "inline style attributes would be blocked by the policy"


def test_the_report_has_every_chart_with_a_point_per_result() -> None:
    doc = run_document()
    page = render_report(doc)
    found = charts(page)
    titles = [re.search(r'aria-label="([^"]+)"', c).group(1) for c in found]  # type: ignore[union-attr]
    assert titles == [
        "Evidence recall by context budget",
        "Evidence recall per question category",
        "Recall per conversation (spread)",
        "Milliseconds per context()",
        "Milliseconds per add()",
        "Continuity (share of turns whose last exchanges are in the context)",
        "Prefix reuse (share of a context kept from the previous turn&#x27;s)",
    ]
    for chart in found:
        assert 'class="axis x"' in chart and 'class="axis y"' in chart and 'class="legend"' in chart
    recall = found[0]
    assert recall.count('class="point"') == len(doc["results"]) == 4
    assert recall.count('class="legend-item"') == 2  # one line per policy
    hybrid_512 = next(r for r in doc["results"] if r["policy"] == "hybrid" and r["budget"] == 512)
    assert f"<title>hybrid: 512 tokens, {hybrid_512['overall']:.3f}</title>" in recall
    spread = found[2]
    assert spread.count('class="point"') == sum(len(r["by_conversation"]) for r in doc["results"])
    assert "<h1>Evidence recall on synthetic</h1>" in page
    assert "version of finite-memory-core" in page and "version of python" in page


def test_continuity_prefix_reuse_and_options_show_when_the_results_have_them() -> None:
    plain = render_report(without_chat_figures(run_document()))  # a file written before eval measured them
    assert "Continuity" not in plain and "Prefix reuse" not in plain and "low_water" not in plain
    page = render_report(run_document(options={"low_water": 0.5}))
    titles = re.findall(r'<svg class="chart"[^>]*aria-label="([^"]+)"', page)
    assert "Continuity (share of turns whose last exchanges are in the context)" in titles
    assert "Prefix reuse (share of a context kept from the previous turn&#x27;s)" in titles
    assert "<th>continuity</th>" in page and "<th>prefix reuse median</th>" in page
    assert "sliding low_water=0.5" in page


def test_data_from_a_file_is_escaped() -> None:
    doc = run_document()
    doc["dataset"] = '"><img src=x onerror=alert(1)>'
    doc["results"][0]["policy"] = "<script>alert(1)</script>"
    doc["results"][0]["by_conversation"] = {"</title><script>": 0.5}
    page = render_report(doc)
    assert "<script" not in page and "<img" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d.pop("results"), "not a finite-memory eval result (no 'results' list)"),
        (lambda d: d["results"][0].update(overall=float("nan")), "result 0: 'overall' must be a finite number"),
        (lambda d: d["results"][1].update(budget="512"), "result 1 needs a 'policy' string and a 'budget' integer"),
        (lambda d: d["results"][0].update(by_category=[]), "result 0: 'by_category' must be an object of numbers"),
        (lambda d: d["results"][0].update(continuity="high"), "result 0: 'continuity' must be a finite number"),
    ],
)
def test_bad_documents_are_refused_saying_what_is_wrong(change: object, message: str, tmp_path: Path) -> None:
    doc = run_document()
    change(doc)  # type: ignore[operator]
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(doc))
    with pytest.raises(ValueError, match=re.escape(f"{path}: {message}")):
        read_results(str(path))


def test_unreadable_files_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no such file"):
        read_results(str(tmp_path / "missing.json"))
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(ValueError, match="cannot read it as JSON"):
        read_results(str(tmp_path / "bad.json"))


def comparison_pair() -> tuple[dict[str, object], dict[str, object]]:
    a, b = run_document(), run_document()
    a["source"], b["source"] = "a.json", "b.json"
    b["results"][0]["overall"] += 0.1  # sliding@256 better
    b["results"][3]["overall"] -= 0.2  # hybrid@512 worse
    b["results"][3]["context_ms"] *= 3  # and slower
    b["results"][1]["context_ms"] *= 1.05  # noise, not a difference
    b["results"].pop(2)  # hybrid@256 only in A
    b["versions"]["finite-memory-core"] = "0.2.0"
    return a, b


def test_comparison_highlights_what_changed() -> None:
    a, b = comparison_pair()
    page = render_comparison(a, b)
    check(a, "a")
    rows = re.findall(r"<tr.*?</tr>", page.split("<tbody>")[1].split("</tbody>")[0], flags=re.S)
    assert len(rows) == 4
    by_key = {tuple(re.findall(r"<td>([^<]*)</td>", row)[:2]): row for row in rows}
    assert by_key[("sliding", "256")].count('class="better"') == 1  # only its overall recall changed
    assert 'class="worse"' in by_key[("hybrid", "512")]
    assert by_key[("hybrid", "256")].startswith('<tr class="only" title="only in A">')
    assert 'class="better"' not in by_key[("sliding", "512")] and 'class="worse"' not in by_key[("sliding", "512")]
    assert '<tr class="differs"><th>version of finite-memory-core</th><td>0.1.0</td><td>0.2.0</td></tr>' in page
    assert len(charts(page)) == 3
    text = comparison_table(a, b)
    assert text.splitlines()[:2] == ["A: a.json", "B: b.json"]
    assert re.search(r"hybrid\s+256\s+\S+\s+-\s+only in A", text)
    assert re.search(r"sliding\s+256\s+\S+\s+\S+\s+\+0\.100", text)


def test_eval_writes_json_and_html_and_compares_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["eval", "--dataset", "synthetic", "--limit", "1", "--policy", "sliding,semantic", "--budget",
                 "256,512", "--json", "a.json", "--html", "a.html"]) == 0  # fmt: skip
    out = capsys.readouterr()
    assert "wrote a.json" in out.err and "wrote a.html" in out.err
    assert [line for line in out.err.splitlines() if line.startswith("run ")] == [
        "run 1 of 4: sliding@256",
        "run 2 of 4: sliding@512",
        "run 3 of 4: semantic@256",
        "run 4 of 4: semantic@512",
    ]
    doc = json.loads((tmp_path / "a.json").read_text())
    assert doc["format"] == "finite-memory-eval" and doc["options"] == {
        "policies": ["sliding", "semantic"],
        "budgets": [256, 512],
        "policy_options": {},
        "limit": 1,
    }
    assert set(doc["versions"]) >= {"python", "platform", "finite-memory-core"} and doc["skipped"] == []
    assert len(doc["results"]) == 4
    assert (tmp_path / "a.html").stat().st_mode & 0o644 == 0o644, "a report is readable by others"
    assert len(charts((tmp_path / "a.html").read_text())) == 7  # recall x3, latency x2, continuity, prefix reuse
    b = dict(doc, results=[dict(r, overall=r["overall"] / 2) for r in doc["results"]])
    (tmp_path / "b.json").write_text(json.dumps(b))
    assert main(["eval", "--compare", "a.json", "b.json", "--html", "diff.html"]) == 0
    out = capsys.readouterr()
    assert out.out.startswith("A: a.json\nB: b.json\n") and "wrote diff.html" in out.err
    assert 'class="worse"' in (tmp_path / "diff.html").read_text()


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--json", "no/such/folder/out.json"], "argument --json: folder 'no/such/folder' does not exist"),
        (["--html", "."], "argument --html: '.' is a folder, not a file"),
        (["--json", "file.txt/out.json"], "argument --json: folder 'file.txt' does not exist"),
        (["--html", "/proc/out.html"], "argument --html: cannot write in '/proc'"),
    ],
)
def test_an_unwritable_output_fails_before_the_run(
    flags: list[str], message: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    if flags[1].startswith("/proc") and not Path("/proc").is_dir():
        pytest.skip("needs /proc, a folder nobody can create files in")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "file.txt").write_text("a file, not a folder")
    import finite_memory.cli.eval as command

    monkeypatch.setattr(command, "evaluate", lambda *a, **k: pytest.fail("the run started"))
    assert main(["eval", "--dataset", "synthetic", *flags]) == 2
    assert message in capsys.readouterr().err


def test_an_output_that_fails_at_the_end_is_kept_elsewhere(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import finite_memory._checkpoint as checkpoint

    def full_disk(path: object, data: bytes, mode: int | None = None) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(checkpoint, "write_atomically", full_disk)
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path / "rescue"))
    (tmp_path / "rescue").mkdir()
    assert (
        main(["eval", "--dataset", "synthetic", "--limit", "1", "--quiet", "--json", str(tmp_path / "out.json")]) == 2
    )
    err = capsys.readouterr().err
    assert "argument --json: cannot write" in err and "No space left on device" in err
    rescued = list((tmp_path / "rescue").iterdir())
    assert len(rescued) == 1 and f"the output is in {rescued[0]}" in err
    assert json.loads(rescued[0].read_text())["results"][0]["policy"] == "semantic"


def test_eval_names_the_questions_it_skips(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from finite_memory.eval.synthetic import generate_dataset

    sample = generate_dataset(1)[0]
    asked = len([q for q in sample["qa"] if q.get("category") in (1, 2, 3, 4)])
    sample["qa"] += [
        {"question": "Where is the lost city?", "evidence": ["D99:99"], "category": 4, "answer": "x"},
        {"question": "Who knows?", "evidence": [], "category": 1, "answer": "x"},
    ]
    path = tmp_path / "data.json"
    path.write_text(json.dumps([sample]))
    assert main(["eval", "--dataset", str(path), "--policy", "sliding", "--json", str(tmp_path / "o.json")]) == 0
    out = capsys.readouterr()
    assert "skipping 2 questions that cannot be scored:" in out.err
    assert f"  {sample['sample_id']}: 'Where is the lost city?': its evidence D99:99 names no line" in out.err
    assert f"  {sample['sample_id']}: 'Who knows?': it has no evidence" in out.err
    assert f"(1 conversations, {asked} questions)" in out.out, "the header counts the questions asked"
    doc = json.loads((tmp_path / "o.json").read_text())
    assert [s["question"] for s in doc["skipped"]] == ["Where is the lost city?", "Who knows?"]


def test_progress_counts_only_the_questions_asked() -> None:
    from finite_memory.eval.runner import evaluate, load_dataset

    samples = load_dataset("synthetic", 1)
    samples[0]["qa"].append({"question": "Nowhere?", "evidence": ["D99:1"], "category": 2})
    seen: list[tuple[int, int]] = []
    result = evaluate(samples, "sliding", 256, progress=lambda done, total, item: seen.append((done, total)))
    assert seen[-1] == (result.questions + 1, result.questions + 1), "each question asked, then the chat replay"


def test_compare_errors_name_the_flag(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["eval", "--compare", str(tmp_path / "a.json"), str(tmp_path / "b.json")]) == 2
    assert f"argument --compare: {tmp_path / 'a.json'}: no such file" in capsys.readouterr().err
    assert main(["eval"]) == 2
    assert "argument --dataset: required (or --compare A B)" in capsys.readouterr().err
    assert main(["eval", "--compare", "a", "b", "--json", str(tmp_path / "x.json")]) == 2
    assert "argument --json: not allowed with --compare" in capsys.readouterr().err


def test_a_minimal_document_renders_without_the_charts_it_has_no_figures_for() -> None:
    doc = {"results": [{"policy": "sliding", "budget": 512, "overall": 0.25}]}
    page = render_report(doc)
    titles = re.findall(r'<svg class="chart"[^>]*aria-label="([^"]+)"', page)
    assert titles == ["Evidence recall by context budget"]
    assert "<td>0.250</td>" in page
    assert render_comparison(doc, doc).count("<svg") == 2, "no timing chart without timings"
