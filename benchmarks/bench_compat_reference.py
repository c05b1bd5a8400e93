"""The reference project's own public-API tests, run offline against ``finite_memory.compat`` and the reference.

The reference (``dawsonblock/Finite_Memory_AI``) is not vendored: point this script at a
checkout with ``--reference PATH`` or ``$FINITE_MEMORY_REFERENCE``. Its ``tests/`` are
copied to a temporary folder and run twice with pytest, side by side:

- ``reference``: its own ``finite_memory_llm`` package (under Python < 3.12 one f-string
  of its demo function, a syntax error there, is rewritten in the temporary copy);
- ``compat``: ``finite_memory.compat.install_alias()`` makes ``finite_memory_llm`` name
  our compat layer.

A tiny random-weight model built here, with no chat template, is saved as ``./gpt2`` in
that folder, so ``HuggingFaceBackend("gpt2")`` loads it instead of downloading gpt2.
A test counts as public-API unless it touches a private name (``llm._evict_sliding``...)
or imports a module other than ``finite_memory_llm`` and ``finite_memory_llm.core``.
The figure is how many of the public-API tests passing on the reference pass on compat.
"""

from __future__ import annotations

import argparse
import ast
import os
import shutil
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from pathlib import Path

from _bench import verdict

#: The issue's target: at least 50 of the 57 public-API tests that pass on the reference.
TARGET_SHARE = 50 / 57
PACKAGE = "finite_memory_llm"
PUBLIC_MODULES = {PACKAGE, f"{PACKAGE}.core"}
ALIAS = "import finite_memory.compat\nfinite_memory.compat.install_alias()\n"


def private_reason(node: ast.AST) -> str | None:
    """Why the code under ``node`` is not public-API only, or None when it is."""
    for child in ast.walk(node):
        if isinstance(child, ast.Attribute) and child.attr.startswith("_") and not child.attr.startswith("__"):
            return f"private name .{child.attr}"
        if isinstance(child, ast.ImportFrom) and child.module:
            if child.module.startswith(PACKAGE) and child.module not in PUBLIC_MODULES:
                return f"imports {child.module}"
            top = child.module.split(".")[0]
            if top != PACKAGE and top not in sys.stdlib_module_names and top not in ("pytest", "torch", "numpy"):
                return f"imports {child.module}"
        if isinstance(child, ast.Import):
            for alias in child.names:
                if alias.name.startswith(PACKAGE) and alias.name not in PUBLIC_MODULES:
                    return f"imports {alias.name}"
                if alias.name == "accuracy_harness":
                    return "imports the reference's benchmarks"
        if isinstance(child, ast.Constant) and isinstance(child.value, str) and f"{PACKAGE}." in child.value:
            module = child.value.split(f"{PACKAGE}.")[1].split()[0].split(";")[0]
            if f"{PACKAGE}.{module}" not in PUBLIC_MODULES:
                return f"runs {PACKAGE}.{module}"
    return None


def classify(tests_dir: Path) -> dict[str, str | None]:
    """Every test's pytest id, and why it is not public-API (None when it is)."""
    verdicts: dict[str, str | None] = {}
    for path in sorted(tests_dir.glob("test_*.py")):
        module = ast.parse(path.read_text())
        top_level = [n for n in module.body if isinstance(n, (ast.Import, ast.ImportFrom))]
        module_reason = next((r for r in map(private_reason, top_level) if r), None)
        for node in module.body:
            functions = [(None, node)] if isinstance(node, ast.FunctionDef) else []
            if isinstance(node, ast.ClassDef):
                kinds = (ast.FunctionDef, ast.AsyncFunctionDef)
                functions = [(node.name, n) for n in node.body if isinstance(n, kinds)]
            for cls, function in functions:
                if not function.name.startswith("test_"):
                    continue
                test_id = "::".join(part for part in (f"tests/{path.name}", cls, function.name) if part)
                verdicts[test_id] = module_reason or private_reason(function)
    return verdicts


def stand_in_model(folder: Path) -> None:
    """A tiny random model in ``folder``, without a chat template, like gpt2."""
    from finite_memory_hf.testing import build_tiny_model

    build_tiny_model(folder)
    (folder / "chat_template.jinja").unlink(missing_ok=True)


def run(workdir: Path, side: str, reference: Path) -> dict[str, tuple[str, str]]:
    """Run the copied tests against one side; each test's outcome and first message line."""
    shutil.rmtree(workdir / PACKAGE, ignore_errors=True)
    if side == "compat":
        (workdir / "conftest.py").write_text(ALIAS)
    else:
        (workdir / "conftest.py").write_text("")
        shutil.copytree(reference / PACKAGE, workdir / PACKAGE)
        if sys.version_info < (3, 12):  # the reference's demo function uses a 3.12-only f-string
            core = workdir / PACKAGE / "core.py"
            core.write_text(core.read_text().replace("replace('\\\\n',' ')}", "replace(chr(10),' ')}"))
    report = workdir / f"{side}.xml"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    env["OMP_NUM_THREADS"] = "1"  # both sides alike: on a shared machine idle torch threads spin and skew timings
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-o", "addopts="]
    command += ["--continue-on-collection-errors", "tests"]
    subprocess.run([*command, f"--junitxml={report}"], cwd=workdir, env=env, capture_output=True, timeout=1800)
    outcomes: dict[str, tuple[str, str]] = {}
    for case in ET.parse(report).iter("testcase"):
        path = case.get("classname", "").replace(".", "/").split("/")
        file_part = next((i for i, p in enumerate(path) if p.startswith("test_")), None)
        if file_part is None:  # a module that failed to import: its tests stay missing
            continue
        test_id = "::".join([f"{'/'.join(path[: file_part + 1])}.py", *path[file_part + 1 :], case.get("name", "")])
        outcome, message = "passed", ""
        for tag in ("failure", "error", "skipped"):
            found = case.find(tag)
            if found is not None:
                outcome, message = tag, (found.get("message") or "").split("\n")[0][:160]
                break
        outcomes[test_id] = (outcome, message)
    return outcomes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reference", default=os.environ.get("FINITE_MEMORY_REFERENCE"))
    parser.add_argument("--list", action="store_true", help="print every public-API test and its outcomes")
    args = parser.parse_args()
    print("compat layer against the reference's own public-API tests")
    if not args.reference or not (Path(args.reference) / "tests").is_dir():
        print("  NOT MEASURED: give --reference PATH (or FINITE_MEMORY_REFERENCE) to a checkout of the reference")
        return
    reference = Path(args.reference).resolve()
    with tempfile.TemporaryDirectory(prefix="fm-compat-") as temp:
        workdir = Path(temp)
        shutil.copytree(reference / "tests", workdir / "tests")
        stand_in_model(workdir / "gpt2")
        verdicts = classify(workdir / "tests")
        results = {side: run(workdir, side, reference) for side in ("reference", "compat")}
    public = [t for t, reason in verdicts.items() if reason is None]
    baseline = [t for t in public if results["reference"].get(t, ("missing", ""))[0] == "passed"]
    passing = [t for t in baseline if results["compat"].get(t, ("missing", ""))[0] == "passed"]
    print(f"  reference tests: {len(verdicts)}; public-API: {len(public)}; passing on the reference: {len(baseline)}")
    for side in ("reference", "compat"):
        outcome_counts: dict[str, int] = {}
        for test in public:
            outcome = results[side].get(test, ("missing", ""))[0]
            outcome_counts[outcome] = outcome_counts.get(outcome, 0) + 1
        print(f"  {side:9} on the public-API tests: {dict(sorted(outcome_counts.items()))}")
    share = len(passing) / len(baseline) if baseline else 0.0
    target = f"target >= {TARGET_SHARE:.0%} (50 of 57)"
    print(f"  compat passes {len(passing)} of {len(baseline)} ({share:.0%}); {target} {verdict(share >= TARGET_SHARE)}")
    for test in baseline:
        outcome, message = results["compat"].get(test, ("missing", ""))
        if outcome != "passed":
            print(f"    {outcome:7} {test}: {message}")
    if args.list:
        for test, reason in verdicts.items():
            ref, ours = results["reference"].get(test, ("-", ""))[0], results["compat"].get(test, ("-", ""))[0]
            print(f"    {ref:7} {ours:7} {test}{f'  [not public: {reason}]' if reason else ''}")


if __name__ == "__main__":
    main()
