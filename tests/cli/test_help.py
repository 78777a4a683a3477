"""`--help` of every command: flags show no value placeholder, value options a meaningful one."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from connector.cli import app

TYPE_PLACEHOLDER = re.compile(r"<[a-z][\w\[\]|, ]*>")  # typer's own: <bool>, <str>, <list[str]>


def command_paths(command: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    """The path of every command and group in the click tree, the root first."""
    yield path
    for name, sub in sorted((getattr(command, "commands", None) or {}).items()):
        yield from command_paths(sub, (*path, name))


PATHS = list(command_paths(typer.main.get_command(app)))


def options_panel(text: str) -> list[str]:
    """The rows of the Options panel of a rendered --help."""
    rows = text.split("─ Options ", 1)[1].split("╰", 1)[0].splitlines()[1:]
    return [row.strip("│ ") for row in rows]


def test_the_tree_is_walked() -> None:
    assert {("sync", "pull"), ("sync", "push"), ("sandbox", "serve"), ("dlq", "retry"),
            ("score", "explain"), ("demo",), ()} <= set(PATHS)


@pytest.mark.parametrize("path", PATHS, ids=lambda p: " ".join(p) or "handshake")
def test_help_shows_no_type_placeholder_for_flags_or_options(path: tuple[str, ...]) -> None:
    result = CliRunner().invoke(app, [*path, "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    text = result.stdout
    assert "<bool>" not in text
    rows = options_panel(text)
    assert any(row.startswith("--help ") for row in rows)
    for row in rows:
        assert not TYPE_PLACEHOLDER.search(row), row


def test_value_options_name_what_they_take() -> None:
    pull = options_panel(CliRunner().invoke(app, ["sync", "pull", "--help"],
                                            env={"COLUMNS": "200"}).stdout)
    assert re.search(r"^--config\s+-c\s+PATH\s", pull[0])
    assert any(re.match(r"--stream\s+STREAM\s", row) for row in pull)
    assert any(re.match(r"--dry-run\s+Read HubSpot", row) for row in pull)
    serve = options_panel(CliRunner().invoke(app, ["sandbox", "serve", "--help"],
                                             env={"COLUMNS": "200"}).stdout)
    assert any(re.match(r"--hubspot-port\s+PORT\b", row) for row in serve)
    assert any(re.match(r"--json\s+Print the URLs", row) for row in serve)
