"""A typo in a fields.toml Salesforce field: the push parks the Leads it spoils for an admin
and exits 3 (`degraded`) with the reason counts and the mapping problem named; `--dry-run`
names the same problem and exits 3 too. Through the CLI, against the sandbox."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

from connector.config import load_config
from connector.demo import MAPPINGS_DIR
from connector.pull import pull
from connector.runtime import open_store, run_score_stage
from connector.sandbox import Sandbox
from connector.sandbox.hubspot.errors import HubSpotApiError
from connector.store import Store
from tests.pull.helpers import context, sandbox_env, sandbox_toml, unthrottle

ROOT = Path(__file__).resolve().parents[2]
TYPO = '\n[[fields]]\nsalesforce = "MobilPhone"\nhubspot = "mobilephone"\n'


def test_a_field_typo_makes_the_push_degraded_and_the_dry_run_says_so(tmp_path: Path) -> None:
    with Sandbox(contacts=300, seed=11, workdir=tmp_path / "sb") as sb:
        unthrottle(sb)
        sb.clock.advance(timedelta(hours=1))
        mappings = tmp_path / "mappings"
        mappings.mkdir()
        for name in ("scoring", "routing"):
            (mappings / f"{name}.toml").write_text((MAPPINGS_DIR / f"{name}.toml").read_text())
        (mappings / "fields.toml").write_text((MAPPINGS_DIR / "fields.toml").read_text() + TYPO)
        path = tmp_path / "handshake.toml"
        path.write_text(sandbox_toml(sb, tmp_path / "state.db") + "[mappings]\n" + "".join(
            f'{n} = "{mappings / (n + ".toml")}"\n' for n in ("fields", "scoring", "routing")))
        env = sandbox_env(sb)
        config = load_config(path, env)
        hubspot = sb.hubspot.state  # type: ignore[union-attr]
        for contact_id in list(hubspot.contacts):  # every live contact has a mobile number now
            with contextlib.suppress(HubSpotApiError):  # archived or merged away
                hubspot.update_contact(contact_id, {"mobilephone": "+1 415 555 0100"})
        store = open_store(config)
        pull(context(config, store))
        store.close()
        run_score_stage(config)

        def push(*flags: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run(
                [sys.executable, "-m", "connector.cli", "sync", "push", *flags, "-c", str(path)],
                cwd=ROOT, env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **env,
                               "COLUMNS": "200"},
                capture_output=True, text=True, timeout=300, check=False)

        dry = push("--dry-run")
        assert dry.returncode == 3, dry.stderr
        assert "fields.toml" in dry.stderr and "MobilPhone" in dry.stderr
        assert "did you mean 'MobilePhone'" in dry.stderr
        assert sb.salesforce.state.records("Task") == []  # type: ignore[union-attr]

        real = push()
        assert real.returncode == 3, real.stderr
        assert "parked for an admin" in real.stderr and "dlq list" in real.stderr
        assert "Traceback" not in real.stderr
        emails = {c.email for c in Store(config.state.database_url).iter_contacts() if c.email}
        assert not any(e in real.stdout + real.stderr for e in emails)  # no record data
        store = Store(config.state.database_url)
        runs = {r.status for r in store.runs(stage="push")}
        parked = store.dead_letters(stage="push")
        store.close()
        assert runs == {"degraded"}
        assert parked and all(d.actor == "admin" for d in parked)
