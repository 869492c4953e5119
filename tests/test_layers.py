"""Data flows one way: no module of rbl imports from a floor above its own.

The floors, bottom to top, are the README's "Layout". Every import counts: at
module level, inside a function, under ``if TYPE_CHECKING``. A module may import
from its own floor and from any lower one; only the base modules and the command
line share a floor.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

RBL = Path(__file__).resolve().parent.parent / "rbl"

# Bottom to top. A name is a package or a module of rbl; "rbl" itself is the version.
FLOORS: list[tuple[str, ...]] = [
    ("rbl", "rbl.errors", "rbl.addresses", "rbl.intervals", "rbl.yamlfile", "rbl.settings", "rbl.files",
     "rbl.protocol"),
    ("rbl.store",),
    ("rbl.policy",),
    ("rbl.zone",),
    ("rbl.explain",),
    ("rbl.transfer",),
    ("rbl.dns",),
    ("rbl.metrics",),
    ("rbl.delivery",),
    ("rbl.http",),
    ("rbl.pages",),
    ("rbl.primary",),
    ("rbl.cli", "rbl.__main__"),
]


def owner(module: str) -> tuple[int, str]:
    """The floor of a module and the unit it belongs to (its package, or itself)."""
    best = None
    for floor, units in enumerate(FLOORS):
        for unit in units:
            if (module == unit or (unit != "rbl" and module.startswith(unit + "."))) and (best is None or len(unit) > len(best[1])):
                best = (floor, unit)
    if best is None:
        raise LookupError(f"{module} is on no floor: add it to FLOORS in tests/test_layers.py and the README")
    return best


def module_name(path: Path, root: Path = RBL) -> str:
    parts = path.relative_to(root.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path, root: Path = RBL) -> list[tuple[int, str]]:
    """Every rbl module the file imports, with its line: absolute and relative, at any depth."""
    name = module_name(path, root)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module
            if node.module is None or target in ("rbl",):
                # from rbl import tsig: the names may be modules
                found += [(node.lineno, f"{target}.{alias.name}") for alias in node.names]
            else:
                found.append((node.lineno, target))
    return [(line, target) for line, target in found if target == "rbl" or target.startswith("rbl.")]


def upward_imports(root: Path = RBL) -> list[str]:
    problems = []
    for path in sorted(root.rglob("*.py")):
        name = module_name(path, root)
        floor, unit = owner(name)
        for line, target in imports(path, root):
            try:
                target_floor, target_unit = owner(target)
            except LookupError:
                target_floor, target_unit = owner(target.rpartition(".")[0])  # from rbl import __version__
            if target_floor > floor:
                problems.append(f"{path.relative_to(root.parent)}:{line}: {name} (floor {floor}, {unit}) imports "
                                f"{target} from the floor above it ({target_floor}, {target_unit})")
    return problems


def test_no_module_imports_from_a_floor_above():
    problems = upward_imports()
    assert not problems, "imports against the flow of data:\n  " + "\n  ".join(problems)


def test_every_module_is_on_a_floor():
    for path in RBL.rglob("*.py"):
        assert owner(module_name(path))[1].startswith("rbl")


@pytest.mark.parametrize("where, source, expected", [
    ("store/late.py", "def f():\n    from rbl.policy.listing import Expiry\n", "imports rbl.policy.listing from the floor above"),
    ("zone/typed.py", "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from rbl.dns.wire import MAX_QUERY\n",
     "imports rbl.dns.wire from the floor above"),
    ("transfer/relative.py", "from ..http import app\n", "imports rbl.http from the floor above"),
    ("explain_twin.py", "import rbl.transfer\n", None),
])
def test_an_upward_import_is_found(tmp_path, where, source, expected):
    # A copy of the tree with one more module: the check reads files, so the real tree is untouched.
    root = tmp_path / "rbl"
    for path in RBL.rglob("*.py"):
        target = root / path.relative_to(RBL)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(path.read_text())
    (root / where).write_text(source)
    if expected is None:
        with pytest.raises(LookupError, match="is on no floor"):
            upward_imports(root)
        return
    problems = upward_imports(root)
    assert len(problems) == 1 and expected in problems[0] and problems[0].startswith(f"rbl/{where}:"), problems
