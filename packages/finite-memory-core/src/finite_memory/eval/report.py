"""Evaluation results as a JSON document, and as self-contained HTML pages: one run, or two side by side.

A page needs nothing but itself: no script, no font, no request (its Content-Security-Policy
forbids them all); the charts are inline SVG drawn by :mod:`._svg`. Fields a result may
carry or not (``continuity``, ``prefix_reuse_median``, ``prefix_reuse_mean``, ``options``)
are shown when present.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Callable, Sequence
from html import escape
from typing import Any

from ._svg import Series, bar_chart, line_chart, strip_chart
from .results import (
    check,
    is_number,
    key_label,
    keyed_results,
    result_key,
    result_label,
    run_name,
    union_of_keys,
)
from .runner import CATEGORIES

#: Optional per-result figures, shown (table and chart) when a result has them.
CHAT_FIGURES = {"continuity": "continuity", "prefix_reuse_median": "prefix reuse (median)"}


def render_report(doc: dict[str, Any]) -> str:
    """One run as an HTML page: summary table, charts, and what was run with which versions."""
    check(doc, "report")
    results = doc["results"]
    questions = max((r.get("questions", 0) for r in results), default=0)
    lead = f"{doc.get('conversations', '?')} conversations, {questions} questions per run"
    if doc.get("created"):
        lead += f", created {doc['created']}"
    charts = [
        line_chart(
            "Evidence recall by context budget",
            _by_budget(results, lambda r: r["overall"]),
            x_label="context budget (tokens)",
            y_label="evidence recall",
            y_range=(0.0, 1.0),
        ),
        _category_chart(results),
        _spread_chart(results),
        _latency_chart(results, "context_ms", "Milliseconds per context()"),
        _latency_chart(results, "add_ms", "Milliseconds per add()"),
        *_chat_charts(results),
    ]
    body = [
        f"<header><h1>Evidence recall on {escape(str(doc.get('dataset', '?')))}</h1><p>{escape(lead)}</p></header>",
        '<section><h2>Results</h2><div class="wide">' + _results_table(results) + "</div></section>",
        "<section><h2>Charts</h2>" + "".join(f"<figure>{chart}</figure>" for chart in charts if chart) + "</section>",
        "<section><h2>Run</h2>" + _run_table([doc]) + _skipped(doc) + "</section>",
    ]
    return _page(f"finite-memory eval: {doc.get('dataset', '?')}", body)


def render_comparison(a: dict[str, Any], b: dict[str, Any]) -> str:
    """Two runs side by side (A then B), each difference highlighted: green better, red worse."""
    check(a, "A")
    check(b, "B")
    series = []
    for run, dashed in ((a, False), (b, True)):
        for item in _by_budget(run["results"], lambda r: r["overall"]):
            series.append(Series(f"{item.label} ({'B' if dashed else 'A'})", item.points, dashed=dashed))
    _share_colours(series)
    keys = union_of_keys(a["results"], b["results"])
    common = [k for k in keys if k in keyed_results(a) and k in keyed_results(b)]
    charts = [
        line_chart(
            "Evidence recall by context budget (A solid, B dashed)",
            series,
            x_label="context budget (tokens)",
            y_label="evidence recall",
            y_range=(0.0, 1.0),
        ),
        _pair_bars("Evidence recall, A and B", common, a, b, "overall", "evidence recall", (0.0, 1.0)),
        _pair_bars("Milliseconds per context(), A and B", common, a, b, "context_ms", "ms", None),
    ]
    body = [
        f"<header><h1>A: {escape(run_name(a))} vs B: {escape(run_name(b))}</h1>"
        "<p>Cells show A → B (difference); green is better in B, red is worse.</p></header>",
        '<section><h2>Results</h2><div class="wide">' + _comparison_table_html(keys, a, b) + "</div></section>",
        "<section><h2>Charts</h2>" + "".join(f"<figure>{chart}</figure>" for chart in charts if chart) + "</section>",
        "<section><h2>Runs</h2>" + _run_table([a, b]) + "</section>",
    ]
    return _page(f"finite-memory eval: {run_name(a)} vs {run_name(b)}", body)


def comparison_table(a: dict[str, Any], b: dict[str, Any]) -> str:
    """The comparison as a text table, one row per policy and budget found in either run."""
    rows = [["policy", "budget", "recall A", "recall B", "change", "ms/ctx A", "ms/ctx B"]]
    ka, kb = keyed_results(a), keyed_results(b)
    for key in union_of_keys(a["results"], b["results"]):
        ra, rb = ka.get(key), kb.get(key)
        change = f"{rb['overall'] - ra['overall']:+.3f}" if ra and rb else "only in " + ("A" if ra else "B")
        rows.append(
            [
                key_label(key, budget=False),
                str(key[1]),
                f"{ra['overall']:.3f}" if ra else "-",
                f"{rb['overall']:.3f}" if rb else "-",
                change,
                f"{ra['context_ms']:.2f}" if ra and "context_ms" in ra else "-",
                f"{rb['context_ms']:.2f}" if rb and "context_ms" in rb else "-",
            ]
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = [f"A: {run_name(a)}", f"B: {run_name(b)}"]
    lines.extend("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in rows)
    return "\n".join(lines)


# --- pieces of the pages -------------------------------------------------------------------------------------


def _by_budget(results: Sequence[dict[str, Any]], value: Callable[[dict[str, Any]], float]) -> list[Series]:
    """One series per policy (and options), its points ``(budget, value)``."""
    lines: dict[str, Series] = {}
    for r in results:
        label = key_label(result_key(r), budget=False)
        lines.setdefault(label, Series(label)).points.append((float(r["budget"]), float(value(r))))
    return list(lines.values())


def _share_colours(series: list[Series]) -> None:
    """A's and B's line of the same policy get the same colour."""
    from ._svg import PALETTE

    by_label: dict[str, str] = {}
    for item in series:
        base = item.label.rsplit(" (", 1)[0]
        item.color = by_label.setdefault(base, PALETTE[len(by_label) % len(PALETTE)])


def _spread_chart(results: Sequence[dict[str, Any]]) -> str:
    columns = [(result_label(r), sorted(r.get("by_conversation", {}).items())) for r in results]
    if not any(values for _, values in columns):
        return ""  # a document without per-conversation figures: no chart rather than an empty one
    return strip_chart("Recall per conversation (spread)", columns, y_label="evidence recall")


def _category_chart(results: Sequence[dict[str, Any]]) -> str:
    names = [name for name in CATEGORIES.values() if any(name in r.get("by_category", {}) for r in results)]
    if not names:
        return ""
    series = [
        Series(
            result_label(r),
            [(float(i), r["by_category"][name]) for i, name in enumerate(names) if name in r["by_category"]],
        )
        for r in results
    ]
    return bar_chart("Evidence recall per question category", names, series, y_label="evidence recall", y_range=(0, 1))


def _latency_chart(results: Sequence[dict[str, Any]], field: str, title: str) -> str:
    timed = [r for r in results if field in r]
    if not timed:
        return ""
    return line_chart(title, _by_budget(timed, lambda r: r[field]), x_label="context budget (tokens)", y_label="ms")


def _chat_charts(results: Sequence[dict[str, Any]]) -> list[str]:
    """Continuity and prefix reuse by budget, for results that measured them."""
    charts = []
    if any("continuity" in r for r in results):
        charts.append(
            line_chart(
                "Continuity (share of turns whose last exchanges are in the context)",
                _by_budget([r for r in results if "continuity" in r], lambda r: r["continuity"]),
                x_label="context budget (tokens)",
                y_label="continuity",
                y_range=(0.0, 1.0),
            )
        )
    reuse = [r for r in results if "prefix_reuse_median" in r]
    if reuse:
        series = _by_budget(reuse, lambda r: r["prefix_reuse_median"])
        for item in series:
            item.label += " (median)"
        means = _by_budget([r for r in reuse if "prefix_reuse_mean" in r], lambda r: r["prefix_reuse_mean"])
        for item in means:
            item.label += " (mean)"
            item.dashed = True
        _share_colours([*series, *means])
        charts.append(
            line_chart(
                "Prefix reuse (share of a context kept from the previous turn's)",
                [*series, *means],
                x_label="context budget (tokens)",
                y_label="prefix reuse",
                y_range=(0.0, 1.0),
            )
        )
    return charts


def _pair_bars(
    title: str,
    keys: Sequence[tuple[str, int, str]],
    a: dict[str, Any],
    b: dict[str, Any],
    field: str,
    y_label: str,
    y_range: tuple[float, float] | None,
) -> str:
    groups = [key_label(k) for k in keys]
    series = []
    for run, name in ((a, "A"), (b, "B")):
        keyed = keyed_results(run)
        points = [(float(i), float(keyed[k][field])) for i, k in enumerate(keys) if field in keyed[k]]
        series.append(Series(f"{name}: {run_name(run)}", points))
    if not any(item.points for item in series):
        return ""
    return bar_chart(title, groups, series, y_label=y_label, y_range=y_range)


def _results_table(results: Sequence[dict[str, Any]]) -> str:
    categories = [name for name in CATEGORIES.values() if any(name in r.get("by_category", {}) for r in results)]
    extra = [key for key in (*CHAT_FIGURES, "prefix_reuse_mean") if any(key in r for r in results)]
    heads = ["policy", "budget", "recall", *categories, "conversations min / median / max", "ms/add", "ms/context"]
    heads += [key.replace("_", " ") for key in extra]
    rows = []
    for r in results:
        cells = [escape(key_label(result_key(r), budget=False)), f"{r['budget']:,}", _num(r.get("overall"))]
        cells += [_num(r.get("by_category", {}).get(name)) for name in categories]
        spread = [r.get(f"conversation_{k}") for k in ("min", "median", "max")]
        cells.append(" / ".join(_num(v) for v in spread))
        cells += [_num(r.get("add_ms")), _num(r.get("context_ms"), 2)]
        cells += [_num(r.get(key)) for key in extra]
        rows.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    head = "".join(f"<th>{escape(h)}</th>" for h in heads)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


#: Figures of the comparison table: (field, heading, higher is better, decimals).
_COMPARED: tuple[tuple[str, str, bool, int], ...] = (
    ("overall", "recall", True, 3),
    *((f"by_category.{name}", name, True, 3) for name in CATEGORIES.values()),
    ("conversation_median", "median conversation", True, 3),
    ("continuity", "continuity", True, 3),
    ("prefix_reuse_median", "prefix reuse (median)", True, 3),
    ("add_ms", "ms/add", False, 3),
    ("context_ms", "ms/context", False, 2),
)


def _field(result: dict[str, Any] | None, name: str) -> float | None:
    if result is None:
        return None
    head, _, tail = name.partition(".")
    value: Any = result.get(head)
    if tail:
        value = value.get(tail) if isinstance(value, dict) else None
    return float(value) if is_number(value) else None


def _comparison_table_html(keys: Sequence[tuple[str, int, str]], a: dict[str, Any], b: dict[str, Any]) -> str:
    ka, kb = keyed_results(a), keyed_results(b)
    shown = [c for c in _COMPARED if any(_field(r, c[0]) is not None for r in (*ka.values(), *kb.values()))]
    heads = "".join(f"<th>{escape(h)}</th>" for h in ("policy", "budget", *(c[1] for c in shown)))
    rows = []
    for key in keys:
        ra, rb = ka.get(key), kb.get(key)
        cells = [f"<td>{escape(key_label(key, budget=False))}</td><td>{key[1]:,}</td>"]
        for field, _, higher_better, decimals in shown:
            cells.append(_compared_cell(_field(ra, field), _field(rb, field), higher_better, decimals, field))
        status = "" if ra and rb else f' class="only" title="only in {"A" if ra else "B"}"'
        rows.append(f"<tr{status}>{''.join(cells)}</tr>")
    return f"<table><thead><tr>{heads}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def _compared_cell(va: float | None, vb: float | None, higher_better: bool, decimals: int, field: str) -> str:
    if va is None or vb is None:
        return f"<td>{_num(va, decimals)} → {_num(vb, decimals)}</td>"
    change = vb - va
    timing = field.endswith("_ms")
    # Timings are noisy: a change under 10% is not a difference. Shares differ once they differ at 3 decimals.
    differs = abs(change) > 0.1 * abs(va) if timing else round(abs(change), 3) >= 0.001
    verdict = ("better" if (change > 0) == higher_better else "worse") if differs else "same"
    text = f"{_num(va, decimals)} → {_num(vb, decimals)} ({change:+.{decimals}f})"
    return f'<td class="{verdict}">{text}</td>'


def _run_table(docs: Sequence[dict[str, Any]]) -> str:
    """What was run: dataset, options, versions (one column per run; differing rows marked)."""
    rows: dict[str, list[str]] = {}
    for index, doc in enumerate(docs):
        facts = {
            "file": doc.get("source"),
            "dataset": doc.get("dataset"),
            "conversations": doc.get("conversations"),
            "created": doc.get("created"),
            "skipped questions": len(doc.get("skipped") or []),
            **{f"option {k}": v for k, v in (doc.get("options") or {}).items()},
            **{f"version of {k}": v for k, v in (doc.get("versions") or {}).items()},
        }
        for label, value in facts.items():
            if value is not None:
                rows.setdefault(label, ["-"] * len(docs))[index] = (
                    value if isinstance(value, str) else json.dumps(value)
                )
    heads = "<th></th>" + ("<th>A</th><th>B</th>" if len(docs) == 2 else "<th>value</th>")
    body = []
    for label, values in rows.items():
        mark = ' class="differs"' if len(set(values)) > 1 else ""
        body.append(f"<tr{mark}><th>{escape(label)}</th>" + "".join(f"<td>{escape(v)}</td>" for v in values) + "</tr>")
    return f'<table class="run"><thead><tr>{heads}</tr></thead><tbody>{"".join(body)}</tbody></table>'


def _skipped(doc: dict[str, Any]) -> str:
    skipped = [s for s in doc.get("skipped") or [] if isinstance(s, dict)]
    if not skipped:
        return ""
    items = "".join(
        "<li>" + ": ".join(escape(str(s.get(key))) for key in ("conversation", "question", "reason")) + "</li>"
        for s in skipped
    )
    return f"<h3>Skipped questions ({len(skipped)})</h3><ul>{items}</ul>"


STYLE = """
body { font: 15px/1.45 system-ui, sans-serif; margin: 2rem auto; max-width: 1100px; padding: 0 1rem; color: #222; }
h1 { font-size: 1.5rem; margin-bottom: .2rem; } h2 { font-size: 1.2rem; margin-top: 2rem; }
header p { color: #555; margin-top: 0; }
table { border-collapse: collapse; margin: .5rem 0; font-variant-numeric: tabular-nums; }
th, td { border-bottom: 1px solid #ddd; padding: .25rem .6rem; text-align: right; white-space: nowrap; }
th:first-child, td:first-child, table.run td, table.run th { text-align: left; }
thead th { background: #f4f4f4; }
td.better { background: #d9f2dd; } td.worse { background: #f8d7d7; }
tr.only td { color: #777; font-style: italic; } tr.differs { background: #fff4cc; }
figure { margin: 1.5rem 0; } .wide { overflow-x: auto; }
svg.chart text { font: 12px system-ui, sans-serif; fill: #222; }
svg.chart text.title { font-size: 14px; font-weight: 600; } svg.chart text.label { fill: #555; }
"""


def _page(title: str, body: Sequence[str]) -> str:
    digest = base64.b64encode(hashlib.sha256(STYLE.encode()).digest()).decode()
    policy = f"default-src 'none'; style-src 'sha256-{digest}'; img-src data:; form-action 'none'; base-uri 'none'"
    return (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{policy}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)}</title><style>{STYLE}</style></head>\n<body>\n"
        + "\n".join(body)
        + "\n</body></html>\n"
    )


def _num(value: Any, decimals: int = 3) -> str:
    return f"{value:,.{decimals}f}" if is_number(value) else "-"
