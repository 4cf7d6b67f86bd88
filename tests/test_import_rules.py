"""The layout's rules, read from the source (AST), so that they stay true:

- features/ (pure functions) imports neither jobs/ nor models/, and models/ does not import jobs/;
- jobs/plumbing/ imports nothing else of jobs/: the stages, data makers and benchmarks build on it;
- no import cycle between modules of jobs/, features/ and models/, imports inside functions included;
- every project module that the code imports, every `python -m` command and `.py` path, and every
  dotted name such as `jobs.plumbing.config.decode_limits` that the Makefile, the README,
  docs/benchmarks.md, the DAGs, the tests or the code's strings mention exists, so a move leaves no
  stale path behind.
"""

from __future__ import annotations

import ast
import re
from functools import cache
from pathlib import Path

import pytest

from tests.conftest import PROJECT_ROOT

PACKAGES = ("jobs", "features", "models")
LAYERS = ("features", "models", "jobs")  # each may import only the ones before it (and itself)


def _module_name(path: Path) -> str:
    name = ".".join(path.relative_to(PROJECT_ROOT).with_suffix("").parts)
    return name.removesuffix(".__init__")


@cache
def _modules() -> dict[str, Path]:
    """Every Python module of the repository's code and tests, by dotted name."""
    paths = [p for top in (*PACKAGES, "dags", "tests") for p in (PROJECT_ROOT / top).rglob("*.py")]
    return {_module_name(p): p for p in paths}


@cache
def _tree(name: str) -> ast.Module:
    return ast.parse(_modules()[name].read_text(), filename=str(_modules()[name]))


def _imports_in(tree: ast.Module, modules) -> list[tuple[int, str]]:
    """(line, imported module) for every import of a project module, wherever it sits in the tree
    (inside functions and `if TYPE_CHECKING:` too). `from pkg import mod` counts as importing
    `pkg.mod` when that is one of `modules`."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            for alias in node.names:
                full = f"{node.module}.{alias.name}"
                found.append((node.lineno, full if full in modules else node.module))
    return [(line, target) for line, target in found if target.split(".")[0] in PACKAGES]


def _imports(name: str) -> list[tuple[int, str]]:
    return _imports_in(_tree(name), _modules())


def _cycles(graph: dict[str, list[str]]) -> list[str]:
    """Each import cycle found by a depth-first walk, as `a -> b -> a`."""
    cycles, state = [], {}

    def visit(node: str, path: list[str]) -> None:
        state[node] = "open"
        for nxt in graph.get(node, []):
            if state.get(nxt) == "open":
                cycles.append(" -> ".join([*path[path.index(nxt):], node, nxt] if nxt in path else [node, nxt]))
            elif nxt not in state:
                visit(nxt, [*path, node])
        state[node] = "done"

    for name in sorted(graph):
        if name not in state:
            visit(name, [])
    return cycles


def _code_modules() -> list[str]:
    return sorted(m for m in _modules() if m.split(".")[0] in PACKAGES)


def test_each_layer_imports_only_the_layers_below_it():
    offenders = []
    for name in _code_modules():
        allowed = LAYERS[:LAYERS.index(name.split(".")[0]) + 1]
        offenders += [f"{_modules()[name].relative_to(PROJECT_ROOT)}:{line} imports {target}"
                      for line, target in _imports(name) if target.split(".")[0] not in allowed]
    assert not offenders, "features/ must not import jobs/ or models/, models/ must not import jobs/:\n" + \
        "\n".join(offenders)


def test_jobs_plumbing_imports_nothing_else_of_jobs():
    offenders = [f"{_modules()[name].relative_to(PROJECT_ROOT)}:{line} imports {target}"
                 for name in _code_modules() if name.startswith("jobs.plumbing")
                 for line, target in _imports(name)
                 if target.startswith("jobs") and not target.startswith("jobs.plumbing")]
    assert not offenders, "\n".join(offenders)


def test_no_import_cycles():
    graph = {name: sorted({t for _, t in _imports(name) if t in _modules() and t != name})
             for name in _code_modules()}
    assert not _cycles(graph), "\n".join(_cycles(graph))


def test_every_project_import_names_an_existing_module():
    stale = [f"{_modules()[name].relative_to(PROJECT_ROOT)}:{line} imports {target}"
             for name in sorted(_modules()) for line, target in _imports(name) if target not in _modules()]
    assert not stale, "\n".join(stale)


def test_the_checks_see_lazy_imports_and_cycles():
    """The evaluation <-> topn cycle went through an import inside a function; such imports count."""
    source = ("from __future__ import annotations\nimport numpy\nfrom typing import TYPE_CHECKING\n"
              "if TYPE_CHECKING:\n    from models.training import IndexedInteractions\n"
              "def evaluate():\n    from models.topn import select_top\n"
              "def config():\n    from jobs.plumbing import config\n")
    assert _imports_in(ast.parse(source), {"jobs.plumbing.config"}) == [
        (5, "models.training"), (7, "models.topn"), (9, "jobs.plumbing.config")]
    assert _cycles({"models.evaluation": ["models.topn", "models.training"], "models.topn": ["models.evaluation"],
                    "models.training": []}) == ["models.evaluation -> models.topn -> models.evaluation"]
    assert _cycles({"a": ["b"], "b": ["c"], "c": []}) == []


# ---- names that other files mention ------------------------------------------------------------

def _defined_names(name: str) -> set[str]:
    names = set()
    for node in _tree(name).body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names |= {n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name)}
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names |= {(alias.asname or alias.name).split(".")[0] for alias in node.names}
    return names


def _resolves(dotted: str) -> bool:
    """A module, or a module and a name defined at its top (what follows that name is not checked)."""
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        module = ".".join(parts[:cut])
        if module in _modules():
            return cut == len(parts) or parts[cut] in _defined_names(module)
    return False


def _mentioning_texts() -> list[tuple[str, str, str]]:
    """(file, text, prose) of the Makefile, README, docs, CI script, SQL and every Python module. Of a
    Python module, prose is its strings (docstrings, messages) and comments, not its code."""
    texts = []
    for rel in ("Makefile", "README.md", "docs/benchmarks.md", ".ci/run", *(str(p.relative_to(PROJECT_ROOT))
                                                     for p in sorted((PROJECT_ROOT / "sql").glob("*.sql")))):
        if (PROJECT_ROOT / rel).is_file():
            text = (PROJECT_ROOT / rel).read_text()
            texts.append((rel, text, text))
    for name, path in sorted(_modules().items()):
        source = path.read_text()
        strings = [n.value for n in ast.walk(_tree(name)) if isinstance(n, ast.Constant) and isinstance(n.value, str)]
        comments = [line.split("#", 1)[1] for line in source.splitlines() if "#" in line]
        texts.append((str(path.relative_to(PROJECT_ROOT)), source, "\n".join(strings + comments)))
    return texts


COMMAND = re.compile(r"-m\s+([\w.<>{}]+)|\"-m\",\s*f?\"([^\"]+)\"")
PY_PATH = re.compile(r"(?<![\w./-])((?:jobs|features|models|dags|tests|sql)/[\w/]*\w\.(?:py|sql))\b")
DOTTED = re.compile(r"(?<![\w./-])((?:jobs|features|models)(?:\.[A-Za-z_]\w*)+)(?![<{\w])")


def test_every_python_m_command_mentioned_is_a_runnable_module():
    stale = []
    for where, text, _ in _mentioning_texts():
        for match in COMMAND.finditer(text):
            module = (match.group(1) or match.group(2)).rstrip(".")
            if any(c in module for c in "<>{}") or module.split(".")[0] not in PACKAGES:
                continue  # a template (`jobs.<stage>`, the DAG's jobs.{task_id}) or another tool (pytest)
            path = _modules().get(module)
            if path is None or '__name__ == "__main__"' not in path.read_text():
                stale.append(f"{where}: python -m {module}")
    assert not stale, "\n".join(stale)


def test_every_path_and_dotted_name_mentioned_exists():
    stale = []
    for where, _, prose in _mentioning_texts():
        stale += [f"{where}: {p}" for p in PY_PATH.findall(prose) if not (PROJECT_ROOT / p).is_file()]
        stale += [f"{where}: {d}" for d in DOTTED.findall(prose) if not _resolves(d)]
    assert not stale, "\n".join(sorted(set(stale)))


@pytest.mark.parametrize("package", ["jobs.plumbing", "jobs.datasets", "jobs.bench"])
def test_each_subpackage_of_jobs_says_in_two_lines_what_lives_there(package):
    doc = ast.get_docstring(_tree(package))
    assert doc and len(doc.strip().splitlines()) <= 2
