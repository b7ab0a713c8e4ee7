"""The command line's layers point one way (STYLE.md): cli → commands → use cases.

Read with :mod:`ast`: no command module imports inside a function (an import that must hide
to avoid a cycle is a sign the layers are wrong; that nothing below the interfaces imports the
command line is import-linter's `layers` contract).  And the global options may stand after the
command (DESIGN §7).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from ptm_sync.interfaces.cli.main import build_parser

ROOT = Path(__file__).resolve().parents[2]
COMMANDS = ROOT / "ptm_sync" / "interfaces" / "cli" / "commands"

#: Imports allowed inside a function, with the reason (said again in the code).
LAZY = {
    ("ptm_sync/interfaces/cli/commands/demo.py", module): "the demo needs the optional `demo` extra"
    for module in (
        "ptm_sync.demo.story",
        "ptm_sync.interfaces.cli.main",
        "ptm_sync.interfaces.daemon",
    )
}


def _imports(tree: ast.Module) -> list[tuple[ast.stmt, str, bool]]:
    """(node, module, at module level) for every import statement."""
    top = {id(node) for node in tree.body}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node, alias.name, id(node) in top) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.append((node, node.module, id(node) in top))
    return found


def _lazy_imports(path: Path) -> list[str]:
    relative = path.relative_to(ROOT).as_posix()
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return [
        f"{relative}:{node.lineno} {module}"
        for node, module, at_top in _imports(tree)
        if not at_top and (relative, module) not in LAZY
    ]


def test_command_modules_import_at_module_level() -> None:
    offenders = [line for path in sorted(COMMANDS.glob("*.py")) for line in _lazy_imports(path)]
    assert offenders == []


def test_the_check_sees_an_import_inside_a_function() -> None:
    """The scan above can fail."""
    source = "import os\n\ndef f():\n    from ptm_sync.app.channels.replies import process\n"
    assert [(m, top) for _, m, top in _imports(ast.parse(source))] == [
        ("os", True),
        ("ptm_sync.app.channels.replies", False),
    ]


@pytest.mark.parametrize(
    "argv",
    [
        ["--config", "x.toml", "-v", "waitlist"],
        ["waitlist", "--config", "x.toml", "-v"],
        ["quarantine", "show", "3", "--config", "x.toml", "-v"],
        ["cancel", "--teacher", "t@s.org", "--config", "x.toml", "--date", "2027-04-12", "-v"],
    ],
)
def test_global_options_may_stand_before_or_after_the_command(argv: list[str]) -> None:
    args = build_parser().parse_args(argv)
    assert (args.config, args.verbose) == ("x.toml", 1)


def test_a_global_option_before_the_command_is_kept() -> None:
    args = build_parser().parse_args(["--config", "x.toml", "meetings", "show", "4"])
    assert (args.config, args.verbose, args.id) == ("x.toml", 0, 4)
