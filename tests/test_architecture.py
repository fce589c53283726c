"""The layout's rules (README "Architecture"), read off the source with `ast`:

- `webhook` imports `signer` only through its public API (`from signer import ...`, names in
  `signer.__all__`), never a module inside it; `signer` never imports `webhook`, and its
  modules never import from `signer` itself (whose `__init__` re-exports from them);
- no import circles between the project's modules;
- every package is shipped by the pyproject's `packages.find`.

Imports anywhere in a module count: at the top, inside functions, under `TYPE_CHECKING`.
"""

from __future__ import annotations

import ast
import importlib
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

import signer

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("signer", "webhook")


@dataclass(frozen=True)
class Import:
    path: Path
    line: int
    module: str  # the absolute module named by the statement
    names: tuple[str, ...]  # for `from module import names`; () for `import module`

    def __str__(self) -> str:
        where = f"{self.path.relative_to(ROOT)}:{self.line}"
        return f"{where}: from {self.module} import {', '.join(self.names)}" if self.names else f"{where}: import {self.module}"


def module_name(path: Path, base: Path) -> str:
    parts = list(path.relative_to(base).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(path: Path, name: str) -> list[Import]:
    """Every import statement in the file, relative ones made absolute."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            found += [Import(path, node.lineno, alias.name, ()) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                module = ".".join(base + ([module] if module else []))
            found.append(Import(path, node.lineno, module, tuple(alias.name for alias in node.names)))
    return found


def project_modules() -> dict[str, Path]:
    """The importable modules: the two packages, and the test and bench modules as pytest and
    the bench scripts import them (`tests/` on the path)."""
    modules = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            modules[module_name(path, ROOT)] = path
    for path in sorted((ROOT / "tests").rglob("*.py")):
        if "node_modules" not in path.parts:
            modules[module_name(path, ROOT / "tests")] = path
    for path in sorted((ROOT / "bench").glob("*.py")):
        modules[module_name(path, ROOT / "bench")] = path
    return modules


def test_webhook_imports_signer_only_through_its_public_api():
    public = set(signer.__all__)
    wrong = []
    for path in sorted((ROOT / "webhook").rglob("*.py")):
        name = module_name(path, ROOT)
        for statement in imports_of(path, name):
            if statement.module == "signer" and statement.names:
                if any(n not in public for n in statement.names):
                    wrong.append(f"{statement}  ({', '.join(n for n in statement.names if n not in public)} not in signer.__all__)")
            elif statement.module.startswith("signer."):
                wrong.append(f"{statement}  (a module inside signer)")
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):  # `import signer` then `signer.internal...`
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "signer" and node.attr not in public:
                wrong.append(f"{path.relative_to(ROOT)}:{node.lineno}: signer.{node.attr}  (not in signer.__all__)")
    assert wrong == [], "webhook must import signer through its public API (`from signer import ...`; add a name to signer/__init__.py " \
                        "if the webhook needs it):\n" + "\n".join(wrong)


def test_signer_imports_neither_webhook_nor_its_own_public_api():
    modules = project_modules()
    wrong = []
    for path in sorted((ROOT / "signer").rglob("*.py")):
        name = module_name(path, ROOT)
        for statement in imports_of(path, name):
            if statement.module == "webhook" or statement.module.startswith("webhook."):
                wrong.append(f"{statement}  (signer is the library, webhook its user, never the other way round)")
            elif statement.module == "signer" and name != "signer":
                names = [n for n in statement.names if f"signer.{n}" not in modules]
                if names:
                    wrong.append(f"{statement}  (import {', '.join(names)} from the module that defines it: signer/__init__.py "
                                 "re-exports from the modules inside signer, so their importing from it makes a circle)")
    assert wrong == [], "\n".join(wrong)


def test_the_public_api_names_exist():
    assert len(signer.__all__) == len(set(signer.__all__)), "a name is listed twice in signer.__all__"
    missing = [name for name in signer.__all__ if not hasattr(signer, name)]
    assert missing == [], f"signer.__all__ lists names signer/__init__.py does not define: {missing}"


def test_the_lazy_public_api_is_what_its_type_checking_imports_say():
    """`signer` imports a name when first used (`_EXPORTS`); the `TYPE_CHECKING` block names the
    same things for type checkers. The two lists must agree, and each name must be the object
    its module defines."""
    tree = ast.parse((ROOT / "signer" / "__init__.py").read_text(encoding="utf-8"))
    guarded = next(node for node in tree.body if isinstance(node, ast.If) and getattr(node.test, "id", "") == "TYPE_CHECKING")
    declared = {}
    for statement in guarded.body:
        assert isinstance(statement, ast.ImportFrom), ast.dump(statement)
        for alias in statement.names:
            module, attribute = (f"{statement.module}.{alias.name}", None) if statement.module == "signer.formats" else (statement.module, alias.name)
            declared[alias.asname or alias.name] = (module, attribute)
    assert declared == signer._EXPORTS
    assert set(declared) == set(signer.__all__)
    for name, (module, attribute) in declared.items():
        defined = importlib.import_module(module)
        assert getattr(signer, name) is (defined if attribute is None else getattr(defined, attribute)), name


HEAVY = ("httpx", "cryptography", "sigstore", "model_signing", "fastapi", "kubernetes", "regopy", "structlog", "fpdf", "dask")


def _loaded_after(program: str) -> list[str]:
    shown = subprocess.run([sys.executable, "-c", program + "\nimport sys\nprint('\\nLOADED', *sorted({m.split('.')[0] for m in sys.modules}))"],
                           capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert shown.returncode == 0, shown.stderr
    loaded = shown.stdout.rpartition("\nLOADED ")[2].split()  # after what the program printed (--help names sigstore)
    return [name for name in loaded if name in HEAVY]


def test_starting_the_command_line_loads_no_heavy_library():
    """Cold start: `import signer`, building the whole parser, `--version` and `--help` load none
    of the big libraries; each command imports what it needs when it runs (lazy handlers)."""
    assert _loaded_after("import signer") == []
    assert _loaded_after("from webhook.cli import build_parser\nbuild_parser()") == []
    for flag in ("--version", "--help"):
        assert _loaded_after(f"from webhook.cli import main\ntry:\n    main([{flag!r}])\nexcept SystemExit:\n    pass") == [], flag


def import_graph(modules: dict[str, Path]) -> dict[str, set[str]]:
    """module -> the project modules it imports. `from package import name` is an edge to the
    module `package.name` when there is one, else to `package`. Running a package's
    `__init__` before its modules is not an edge: it only closes a circle if a module imports
    names from its own package's `__init__`, and that import is an edge."""
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        edges = set()
        for statement in imports_of(path, name):
            targets = [f"{statement.module}.{n}" for n in statement.names if f"{statement.module}.{n}" in modules]
            if len(targets) < len(statement.names) or not statement.names:
                targets.append(statement.module)
            edges.update(t for t in targets if t in modules and t != name)
        graph[name] = edges
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import circle as [a, b, ..., a], or None (iterative depth-first search)."""
    state: dict[str, int] = {}  # 1 on the current path, 2 done
    for start in sorted(graph):
        if start in state:
            continue
        path = [start]
        stack = [iter(sorted(graph[start]))]
        state[start] = 1
        while stack:
            step = next(stack[-1], None)
            if step is None:
                state[path.pop()] = 2
                stack.pop()
            elif state.get(step) == 1:
                return path[path.index(step):] + [step]
            elif step not in state:
                state[step] = 1
                path.append(step)
                stack.append(iter(sorted(graph[step])))
    return None


def test_no_import_cycles():
    graph = import_graph(project_modules())
    assert graph["webhook.cli"] and graph["signer"], "the import graph came out empty: the reader is broken"
    cycle = find_cycle(graph)
    assert cycle is None, "import circle: " + " -> ".join(cycle or []) + \
        " (move what both need into a module of its own, or hand one side in as a parameter)"


def test_the_cycle_finder_finds_a_circle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set(), "c": {"a", "b"}}) is None


def test_every_package_is_shipped():
    from setuptools import find_packages

    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    include = config["tool"]["setuptools"]["packages"]["find"]["include"]
    shipped = set(find_packages(where=str(ROOT), include=include))
    packages = {module_name(path, ROOT) for package in PACKAGES for path in (ROOT / package).rglob("__init__.py")}
    assert packages - shipped == set(), f"packages left out of the distribution: {sorted(packages - shipped)}"
    for directory in {path.parent for package in PACKAGES for path in (ROOT / package).rglob("*.py")}:
        assert (directory / "__init__.py").is_file(), f"{directory.relative_to(ROOT)} has modules but no __init__.py (not shipped)"
    module, _, function = config["project"]["scripts"]["modelsign"].partition(":")
    assert callable(getattr(importlib.import_module(module), function)), "the `modelsign` console script names no function"
