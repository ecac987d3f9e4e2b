"""apro/layout.py is the one place that spells the workflow's paths: the rules format their patterns from
it, and the package takes its paths from it. Every other spelling of such a path fails here."""
import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
#: a path under one of the workflow's top-level folders, anywhere in a string
PATH = re.compile(r"(?<![\w./-])(results|reports|downloads|weights|data)/[\w{<]")


def _strings(tree):
    """String constants of a module (f-string parts included), less docstrings."""
    docs = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                docs.add(id(first.value))
    parts = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.JoinedStr):  # an f-string, its fields as {}
            parts.update(id(v) for v in node.values)
            yield node.lineno, "".join(v.value if isinstance(v, ast.Constant) else "{}" for v in node.values)
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docs | parts:
            yield node.lineno, node.value


def _python_offenders():
    for path in sorted((ROOT / "apro").rglob("*.py")):
        if path.name == "layout.py":
            continue
        for line, text in _strings(ast.parse(path.read_text(encoding="utf-8"))):
            if PATH.search(text):
                yield f"{path.relative_to(ROOT)}:{line}: {text!r}"


def _workflow_offenders():
    for path in [ROOT / "Snakefile", *sorted((ROOT / "workflow" / "rules").glob("*.smk"))]:
        text = path.read_text(encoding="utf-8")
        text = re.sub(r'"""(.|\n)*?"""', lambda m: "\n" * m.group(0).count("\n"), text)  # rule docstrings
        for n, line in enumerate(text.splitlines(), 1):
            code = line.split("#", 1)[0]
            for s in re.findall(r'"[^"]*"|\'[^\']*\'', code):
                if PATH.search(s):
                    yield f"{path.relative_to(ROOT)}:{n}: {s}"


def test_workflow_paths_are_spelled_only_in_the_layout_module():
    offenders = list(_python_offenders()) + list(_workflow_offenders())
    assert not offenders, "paths to take from apro.layout:\n" + "\n".join(offenders)


def test_the_check_finds_a_spelled_path(tmp_path):
    assert PATH.search("results/{suite}/{experiment}/seed{seed}/metrics.json")
    assert PATH.search("<code>reports/benchmarks/ops.csv</code>")
    assert not PATH.search("experiments/paper/data/voc") and not PATH.search("see the results of")
    tree = ast.parse('"""results/x in a docstring"""\nx = f"results/{s}/metrics.json"\n')
    assert [t for _, t in _strings(tree) if PATH.search(t)] == ["results/{}/metrics.json"]


def test_the_layout_gives_the_paths_the_workflow_writes():
    from apro import layout

    assert layout.done_file("{suite}", "{experiment}", "{seed}") == "results/{suite}/{experiment}/seed{seed}/train/done.json"
    assert layout.metrics_file("demo", "box", 1) == "results/demo/box/seed1/metrics.json"
    assert layout.log_file("train", "smoke", "box") == "results/logs/smoke/box.train.log"
    assert layout.job_benchmark("ops", "build_ops") == "results/benchmarks/ops/build_ops.tsv"
    assert layout.report_files("demo")["md"] == "reports/demo/summary.md"
    assert layout.html_page("demo") == "reports/demo/index.html" and layout.ops_table() == "reports/benchmarks/ops.csv"
    assert layout.metafile("paper", "solov2_r50_voc") == "reports/paper/metafiles/solov2_r50_voc/metafile.yml"
    assert layout.metafiles_dir("{suite}") == "reports/{suite}/metafiles"
