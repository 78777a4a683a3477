"""A mapping mistake parks the records with who must act; once fixed, `dlq retry` syncs them."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

from connector.demo import MAPPINGS_DIR, sandbox_config
from connector.pull import pull
from connector.sandbox import Sandbox
from connector.runtime import run_push_stage, run_score_stage
from connector.store import Store
from connector.runtime import open_store
from tests.pull.helpers import context, sandbox_env, sandbox_toml, unthrottle

ROOT = Path(__file__).resolve().parents[2]


def test_wrong_field_is_parked_for_an_admin_then_retried_after_the_fix(tmp_path: Path) -> None:
    mappings = tmp_path / "mappings"
    mappings.mkdir()
    for name in ("scoring", "routing"):
        (mappings / f"{name}.toml").write_text((MAPPINGS_DIR / f"{name}.toml").read_text())
    good = (MAPPINGS_DIR / "fields.toml").read_text()
    (mappings / "fields.toml").write_text(good.replace('salesforce = "Title"',
                                                       'salesforce = "Titel"'))
    with Sandbox(contacts=300, seed=42, workdir=tmp_path / "sb") as sb:
        unthrottle(sb)
        sb.clock.advance(timedelta(hours=1))
        db = tmp_path / "state.db"
        cfg = tmp_path / "h.toml"
        cfg.write_text(sandbox_toml(sb, db) + "[mappings]\n" + "".join(
            f'{n} = "{mappings / (n + ".toml")}"\n' for n in ("fields", "scoring", "routing")))
        config = sandbox_config(sb.info(), db).model_copy(update={
            "mappings": sandbox_config(sb.info(), db).mappings.model_copy(update={
                n: str(mappings / f"{n}.toml") for n in ("fields", "scoring", "routing")})})
        store = open_store(config)
        pull(context(config, store))
        run_score_stage(config)
        first = run_push_stage(config)
        parked = [d for d in Store(config.state.database_url).dead_letters(stage="push")]
        assert first.counts["leads.dead_letters"] == len(parked) > 0
        assert all(d.actor == "admin" and "Titel" in d.reason for d in parked)
        ours_before = [r for r in sb.salesforce.state.records("Lead") if r.get("Handshake_Id__c")]

        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "COLUMNS": "200",
               **sandbox_env(sb)}
        listing = subprocess.run([sys.executable, "-m", "connector.cli", "dlq", "list", "-c",
                                  str(cfg)], capture_output=True, text=True, env=env, cwd=ROOT,
                                 timeout=120)
        assert "admin must act" in listing.stdout and "Titel" in listing.stdout

        (mappings / "fields.toml").write_text(good)  # the admin corrects the mapping
        retry = subprocess.run([sys.executable, "-m", "connector.cli", "dlq", "retry", "-c",
                                str(cfg)], capture_output=True, text=True, env=env, cwd=ROOT,
                               timeout=180)
        assert retry.returncode == 0, retry.stderr
        # the contacts HubSpot sent without an email stay parked: their data is still wrong
        unfixed = len(Store(config.state.database_url).dead_letters(stage="pull"))
        assert f"{len(parked)} resolved, {unfixed} still open" in retry.stdout
        ours = [r for r in sb.salesforce.state.records("Lead") if r.get("Handshake_Id__c")]
        assert len(ours) == len(ours_before) + len(parked)
        assert Store(config.state.database_url).dead_letters(stage="push") == []
