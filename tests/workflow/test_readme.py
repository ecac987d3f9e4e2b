"""The README is true: its API example runs as written, and its layout tables are the tree."""
import fnmatch
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"


def _section(title: str) -> str:
    text = README.read_text()
    assert title in text, f"README.md has no section {title!r}"
    return text.split(title, 1)[1].split("\n#", 1)[0]


def test_api_example_runs():
    api = _section("## API")
    example = re.findall(r"```python\n(.*?)```", api, flags=re.S)[0]
    namespace = {}
    exec(compile(example, str(README), "exec"), namespace)
    pred, gp, lp = namespace["pred"], namespace["gp"], namespace["lp"]
    assert gp.shape == lp.shape == pred.shape
    assert not gp.requires_grad and not lp.requires_grad
    assert pred.grad is not None and pred.grad.abs().sum() > 0
    # LP keeps values inside the box only.
    outside = namespace["box"] == 0
    assert lp[outside].abs().max() == 0


def _table_rows(section: str) -> list:
    return [line for line in section.splitlines() if line.startswith("| `")]


def test_package_table_names_every_module_and_nothing_else():
    """Every module and subpackage of apro/ has its row (a subpackage's modules are named in it), and
    every path the table names exists."""
    rows = _table_rows(_section("### The package, by layer"))
    named_paths = {p for row in rows for p in re.findall(r"`(apro/[^`]*)`", row.split(" | ")[0])}
    for path in named_paths:
        assert (ROOT / path).exists(), f"README names {path}, which does not exist"
    for path in sorted((ROOT / "apro").iterdir()):
        rel = f"apro/{path.name}" + ("/" if path.is_dir() else "")
        if path.name.startswith(("_C", "__pycache__")) or path.suffix not in (".py", "") or path.name == "__init__.py":
            continue
        assert rel in named_paths, f"{rel} has no row in README's package table"
        if path.is_dir() and path.name != "gp_cuda":  # the release's API paths: re-exports only
            row = next(r for r in rows if f"`{rel}`" in r)
            for module in sorted(path.glob("*.py")):
                if module.name != "__init__.py":
                    assert f"`{module.name}`" in row, f"{rel}{module.name} is not named in its README row"


def _ignored(name: str) -> bool:
    """Whether the top-level ``name`` matches a pattern of .gitignore (the simple patterns it uses)."""
    patterns = [ln.strip().strip("/") for ln in (ROOT / ".gitignore").read_text().splitlines()
                if ln.strip() and not ln.startswith("#")]
    return any(fnmatch.fnmatch(name, p) for p in patterns)


def test_layout_table_names_every_top_level_entry_and_nothing_else():
    """Every file and folder at the top of the checkout (but git's, caches and build outputs) has its row,
    and every path a row names exists, or is an output the workflow writes (data/, results/)."""
    rows = _table_rows(_section("## Layout"))
    named = {p.rstrip("/") for row in rows for p in re.findall(r"`([^`]*)`", row.split(" | ")[0])}
    for name in named:
        assert (ROOT / name).exists() or _ignored(name), f"README's layout names {name}, which does not exist"
    for path in sorted(ROOT.iterdir()):
        if path.name in (".git", ".gitignore") or _ignored(path.name):
            continue
        assert path.name in named, f"{path.name} has no row in README's layout table"


def test_readme_stays_short():
    """A newcomer's page: measurements and their method live in docs/."""
    assert len(README.read_text().splitlines()) <= 220


def test_tests_table_names_every_test_folder():
    rows = _table_rows(_section("### The tests, by area"))
    named = {m for row in rows for m in re.findall(r"`(tests/[^`]*/)`", row.split(" | ")[0])}
    actual = {f"tests/{p.name}/" for p in (ROOT / "tests").iterdir() if p.is_dir() and list(p.glob("test_*.py"))}
    assert named == actual
    assert not list((ROOT / "tests").glob("test_*.py")), "every test module lives in its area's folder"


def test_readme_states_the_verdict_rule_of_the_reports():
    """The README's verdict rule is the one the paper table applies (apro.stats.VERDICT_RULE), word for word."""
    from apro import stats

    text = README.read_text()
    assert f"Verdict: {stats.VERDICT_RULE}." in text
    lines = [ln for ln in text.splitlines() if "reproduced when" in ln]
    assert lines and all(stats.VERDICT_RULE in ln for ln in lines), lines


def test_relative_links_of_the_docs_resolve():
    pages = [README, ROOT / "experiments" / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    for page in pages:
        for target in re.findall(r"\]\(([^)\s]+)\)", page.read_text()):
            if "://" in target or target.startswith("#"):
                continue
            path = (page.parent / target.split("#", 1)[0]).resolve()
            assert path.exists(), f"{page.relative_to(ROOT)} links to {target}, which does not exist"
