"""The hand-off end to end against the sandbox (`handshake demo`'s cycle)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from connector.demo import run_demo

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> dict:
    return run_demo(contacts=600, seed=42, workdir=tmp_path_factory.mktemp("demo"))


def test_every_mql_reaches_salesforce_once(demo: dict) -> None:
    assert demo["stages"] == {"pull": "ok", "score": "ok", "push": "ok"}
    assert demo["mqls"] == demo["sales_ready_in_ground_truth"] > 0
    handed = demo["leads_created"] + demo["leads_updated"] + demo["linked_to_existing"]
    assert handed == demo["mqls"]
    assert demo["tasks_created"] >= demo["mqls"]  # a hand-off Task each, plus activity digests
    assert demo["checks"] == []


def test_demo_with_5000_contacts_hands_off_exactly_the_ground_truth(tmp_path: Path) -> None:
    """Issue #6's acceptance: Leads = the ground truth's MQLs, no two Leads share an email, no
    Lead for a Contact's email, owners as routing gives, hand-off Tasks = handed-off records,
    activity Tasks = stored activities (each checked by `handoff_differences`)."""
    summary = run_demo(contacts=5000, seed=7, workdir=tmp_path)
    assert summary["stages"] == {"pull": "ok", "score": "ok", "push": "ok"}
    assert summary["mqls"] == summary["sales_ready_in_ground_truth"] > 250
    assert summary["checks"] == []


def test_demo_json_command(tmp_path: Path) -> None:
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(tmp_path)}
    result = subprocess.run([sys.executable, "-m", "connector.cli", "demo", "--contacts", "200",
                             "--json"], cwd=tmp_path, env=env, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    for key in ("contacts", "activities", "mqls", "leads_created", "leads_updated",
                "tasks_created", "dead_letters", "api_calls", "minimum_calls"):
        assert key in summary
    assert set(summary["api_calls"]) == set(summary["minimum_calls"]) == {"hubspot", "salesforce"}
    assert summary["contacts"] > 150
