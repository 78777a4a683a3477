"""`handshake dlq list|retry` on a store with dead letters: the stage shows as written, unknown
stages and ids are refused (exit 2) with what to do, a resolved id says so."""

from __future__ import annotations

import inspect
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from connector.cli import app
from connector.cli.dlq import STAGES
from connector.errors import Actor, ExitCode
from connector.store import Store
from tests.cli.test_config_check import GOOD_ENV

ENV = {**GOOD_ENV, "COLUMNS": "200"}


@pytest.fixture
def config(tmp_path: Path) -> Iterator[Path]:
    """A config whose state store holds an open pull letter, an open push letter and a resolved
    push letter (ids 1, 2, 3)."""
    db = tmp_path / "state.db"
    store = Store(f"sqlite:///{db}")
    store.migrate()
    store.dead_letter(stage="pull", system="hubspot", record_key="contacts:42",
                      reason="no email address [see HubSpot]", actor=Actor.DATA,
                      error_code="missing_email")
    store.dead_letter(stage="push", system="salesforce", record_key="[bold]77[/]",
                      reason="No such column 'Titel' on Lead", actor=Actor.ADMIN,
                      error_code="INVALID_FIELD")
    store.dead_letter(stage="push", system="salesforce", record_key="78",
                      reason="Lead locked", actor=Actor.WAIT)
    store.resolve_dead_letters(stage="push", record_keys=["78"])
    store.close()
    path = tmp_path / "handshake.toml"
    path.write_text(f"""
[hubspot]
base_url = "http://127.0.0.1:9"
[salesforce]
instance_url = "https://127.0.0.1:9"
login_url = "https://127.0.0.1:9"
[state]
database_url = "sqlite:///{db}"
""")
    yield path


def dlq(config: Path, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, ["dlq", *args, "-c", str(config)], env=ENV)
    return result.exit_code, result.stdout, result.stderr


def test_list_shows_the_stage_record_and_reason_as_stored(config: Path) -> None:
    code, out, _ = dlq(config, "list")
    assert code == 0, out
    lines = out.splitlines()
    assert lines[0].startswith("#1 [pull] contacts:42 — data must act: "
                               "no email address [see HubSpot] (code missing_email")
    assert lines[1].startswith("#2 [push] [bold]77[/] — admin must act: No such column 'Titel'")
    assert lines[-1] == "2 open dead letter(s)"


def test_list_by_a_known_stage(config: Path) -> None:
    code, out, _ = dlq(config, "list", "--stage", "push")
    assert code == 0
    assert "[push]" in out and "[pull]" not in out and "1 open dead letter(s)" in out
    code, out, _ = dlq(config, "list", "--stage", "score")
    assert (code, out.strip()) == (0, "0 open dead letter(s)")


def test_list_refuses_an_unknown_stage_naming_the_known_ones(config: Path) -> None:
    code, out, errors = dlq(config, "list", "--stage", "nosuchstage")
    assert code == ExitCode.CONFIG
    assert out == ""
    assert "'nosuchstage'" in errors and "known stages: pull, score, push" in errors


def test_retry_refuses_an_unknown_stage(config: Path) -> None:
    code, out, errors = dlq(config, "retry", "--stage", "nosuchstage")
    assert code == ExitCode.CONFIG
    assert out == ""
    assert "known stages: pull, score, push, pullback" in errors


def test_retry_refuses_an_unknown_id_and_says_how_to_list_them(config: Path) -> None:
    code, out, errors = dlq(config, "retry", "--id", "9999")
    assert code == ExitCode.CONFIG
    assert out == ""
    assert "#9999" in errors and "`handshake dlq list`" in errors
    # one unknown id among known ones refuses the whole command before anything is retried
    code, _, errors = dlq(config, "retry", "--id", "1", "--id", "9999")
    assert code == ExitCode.CONFIG and "#9999" in errors and "#1" not in errors


def test_retry_of_a_resolved_id_says_so_and_retries_nothing(config: Path) -> None:
    code, out, errors = dlq(config, "retry", "--id", "3")
    assert code == 0
    assert "dead letter #3 is already resolved on " in errors
    assert "retried" not in out
    letters = Store(f"sqlite:///{config.parent / 'state.db'}")
    try:
        assert [d.id for d in letters.dead_letters()] == [1, 2]
    finally:
        letters.close()


def test_the_known_stages_are_those_that_park_records() -> None:
    from connector.hubspot.write import HubSpotWriter
    from connector.pull import base as pull_base
    from connector.pullback import context as pullback
    from connector.push import context

    named = {pull_base.STAGE, context.STAGE, pullback.STAGE,
             inspect.signature(HubSpotWriter.push).parameters["stage"].default}
    assert named == set(STAGES)
