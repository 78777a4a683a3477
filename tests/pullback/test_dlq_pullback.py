"""Pull-back dead letters through `handshake dlq`: SLA alert Tasks the org refuses (a validation
rule) are parked under the stage `pullback`; `dlq list --stage pullback` shows them, and once the
rule is gone `dlq retry --stage pullback` sends them through the pull-back and resolves them."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import timedelta
from functools import partial
from pathlib import Path

import pytest
from typer.testing import CliRunner

from connector.cli.main import app
from connector.pull import pull
from connector.runtime import (
    open_store,
    retry_dead_letters,
    run_pullback_stage,
    run_push_stage,
    run_score_stage,
)
from connector.sandbox.salesforce.state import ValidationRule
from tests.pull.helpers import context
from tests.pullback.test_pullback_sandbox import SandboxTime
from tests.push.helpers import sandbox_org

SUBJECT = "SLA: first follow-up overdue"  # the shipped sla.toml's first-touch alert


def test_refused_alerts_are_listed_and_retried_under_pullback(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with sandbox_org(tmp_path, 200) as (sb, config):
        clock = SandboxTime(sb)
        store = open_store(config)
        try:
            pull(replace(context(config, store), clock=clock))
        finally:
            store.close()
        run_score_stage(config, clock=clock)
        assert run_push_stage(config, clock=clock).counts["leads.created"] > 5
        assert run_pullback_stage(config, clock=clock).status == "ok"
        org = sb.salesforce.state  # type: ignore[union-attr]
        org.add_validation_rule(ValidationRule(
            "Task", "No_SLA_Tasks", lambda r: str(r.get("Subject") or "").startswith("SLA:"),
            "SLA Tasks are not allowed"))
        sb.clock.advance(timedelta(hours=25))  # nobody touches a lead: first touches late
        parked = run_pullback_stage(config, clock=clock)
        assert parked.counts["sla.dead_letters"] > 0
        assert parked.counts.get("sla.alerts", 0) == 0

        monkeypatch.setattr("connector.cli.dlq.load_checked_config", lambda *a, **k: config)
        listed = CliRunner().invoke(app, ["dlq", "list", "--stage", "pullback", "--json"])
        assert listed.exit_code == 0, listed.output
        rows = [json.loads(line) for line in listed.output.splitlines()]
        assert rows and {r["stage"] for r in rows} == {"pullback"}
        assert len(rows) == parked.counts["sla.dead_letters"]
        assert all(r["record"].startswith("sla:alert:") for r in rows)
        assert all("SLA Tasks are not allowed" in r["reason"] for r in rows)
        other = CliRunner().invoke(app, ["dlq", "list", "--stage", "push", "--json"])
        assert other.exit_code == 0 and other.output == ""

        org.validation_rules.clear()  # the admin fixed it
        monkeypatch.setattr("connector.runtime.retry_dead_letters",
                            partial(retry_dead_letters, clock=clock))
        retried = CliRunner().invoke(app, ["dlq", "retry", "--stage", "pullback"])
        assert retried.exit_code == 0, retried.output
        n = len(rows)
        assert f"{n} dead letter(s) retried: {n} resolved, 0 still open" in retried.output
        store = open_store(config)
        try:
            assert store.dead_letters(stage="pullback") == []
        finally:
            store.close()
        alerts = [t for t in org.records("Task") if t.get("Subject") == SUBJECT]
        assert len(alerts) == n
        again = CliRunner().invoke(app, ["dlq", "retry", "--stage", "pullback"])
        assert again.exit_code == 0
        assert "no open dead letter of stage pullback" in again.output
