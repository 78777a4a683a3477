"""`handshake status --json`, `/metrics` and `handshake mappings preview` on a store prepared by
real stage runs against the in-process sandbox (pull, score, push, pull-back, one failed run),
with a fake daemon instance record and leader lease: every figure is checked against what the
store holds, and the metrics' counters against the run records."""

from __future__ import annotations

import json
import shutil
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families
from typer.testing import CliRunner

from connector.cli import app
from connector.config import Config, load_config
from connector.daemon.mappings import MappingWatcher
from connector.daemon.metrics import render_metrics
from connector.demo import MAPPINGS_DIR
from connector.errors import Actor
from connector.logs import setup_logging
from connector.runtime import (
    open_store,
    run_pull_stage,
    run_pullback_stage,
    run_push_stage,
    run_score_stage,
    stage_run,
)
from connector.runtime.lease import instance_name
from connector.runtime.preview import preview_mappings
from connector.runtime.status import INSTANCE_PREFIX, bookmark_time
from connector.sandbox import Sandbox
from connector.store import Store
from tests.pull.helpers import sandbox_env, sandbox_toml, unthrottle

LEADER = "host-a:101:4026531836"
GONE = "host-b:202:4026531836"
FILES = ("fields", "scoring", "routing", "sla")


@dataclass
class World:
    sb: Sandbox
    config: Config
    path: Path  # the config file
    env: dict[str, str]
    folder: Path
    next_pull: str


def write_config(sb: Sandbox, folder: Path, db: Path, mappings: Path) -> Path:
    path = folder / "handshake.toml"
    path.write_text(sandbox_toml(sb, db) + "[mappings]\n" + "".join(f'{n} = "{mappings / (n + ".toml")}"\n' for n in FILES))
    return path


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    folder = tmp_path_factory.mktemp("status")
    mappings = folder / "mappings"
    mappings.mkdir()
    for name in FILES:
        shutil.copy(MAPPINGS_DIR / f"{name}.toml", mappings / f"{name}.toml")
    with Sandbox(contacts=200, seed=11, workdir=folder / "sb") as sb:
        unthrottle(sb)
        sb.clock.advance(timedelta(hours=1))
        env = sandbox_env(sb)
        path = write_config(sb, folder, folder / "state.db", mappings)
        config = load_config(path, env)
        for stage in (run_pull_stage, run_score_stage, run_push_stage, run_pullback_stage):
            assert stage(config).status in ("ok", "degraded")
        with pytest.raises(RuntimeError), stage_run(config, "sla"):
            raise RuntimeError("the SLA check broke")  # a real failed run, recorded
        store = open_store(config)
        try:
            store.dead_letter(stage="push", system="salesforce", record_key="9999",
                              reason="No such column 'Titel' on Lead", actor=Actor.ADMIN,
                              error_code="INVALID_FIELD")
            now = datetime.now(UTC)
            next_pull = (now + timedelta(seconds=40)).isoformat()
            store.set_bookmark(INSTANCE_PREFIX + LEADER, json.dumps({
                "instance": LEADER, "role": "leader", "started_at": now.isoformat(),
                "seen_at": now.isoformat(), "listen": "127.0.0.1:8787",
                "next_runs": {"pull": next_pull},
                "last_cycle": {"at": now.isoformat(), "ok": True, "error": None},
                "mappings": {"ok": True, "errors": [], "checked_at": now.isoformat()}}))
            seen = (now - timedelta(minutes=10)).isoformat()
            store.set_bookmark(INSTANCE_PREFIX + GONE, json.dumps({
                "instance": GONE, "role": "standby", "started_at": seen, "seen_at": seen,
                "listen": "127.0.0.1:8788", "next_runs": {}, "last_cycle": None,
                "mappings": None}))
            assert store.take_lease("leader", LEADER, ttl_seconds=3600) is not None
        finally:
            store.close()
        yield World(sb, config, path, env, folder, next_pull)


def cli(world: World, *args: str, config: Path | None = None) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, [*args, "-c", str(config or world.path)],
                                env={**world.env, "COLUMNS": "200"})
    setup_logging()  # the command logged to the runner's stream, closed now
    return result.exit_code, result.stdout, result.stderr


def calls_of(counts: dict[str, Any], system: str) -> int:
    """Calls a run recorded for `system`: its `<system>.calls` total, or its `.requests`."""
    if f"{system}.calls" in counts:
        return int(counts[f"{system}.calls"])
    return sum(int(v) for k, v in counts.items()
               if k.startswith(f"{system}.") and k.endswith("requests"))


def test_status_json_equals_what_the_store_holds(world: World) -> None:
    code, out, err = cli(world, "status", "--json")
    assert code == 0, err
    found = json.loads(out)
    store = Store(world.config.state.database_url)
    try:
        runs = store.runs_since()
        letters = store.dead_letters()
        bookmarks = store.bookmarks()
        governor = json.loads(bookmarks["salesforce.governor"])
    finally:
        store.close()
    at = datetime.fromisoformat(found["generated_at"])

    # stages: the newest run of each, its result and counts; the failed one with its error
    newest: dict[str, Any] = {}
    for run in runs:
        newest[run.stage] = run
    for stage, run in newest.items():
        shown = found["stages"][stage]["last_run"]
        assert (shown["id"], shown["status"], shown["counts"]) == (run.id, run.status, run.counts)
    assert found["stages"]["sla"]["last_run"]["status"] == "failed"
    assert "the SLA check broke" in found["stages"]["sla"]["last_run"]["error"]
    assert found["stages"]["sla"]["last_success_at"] is None
    assert found["stages"]["pull"]["last_success_at"] == newest["pull"].finished_at.isoformat()
    # next run: the leader's record for the pull, [schedule] after the last run for the score
    assert (found["stages"]["pull"]["next_run"], found["stages"]["pull"]["next_run_source"]) \
        == (world.next_pull, "daemon")
    score = newest["score"]
    expected = score.started_at + timedelta(minutes=world.config.schedule.score_interval_minutes)
    assert (found["stages"]["score"]["next_run"], found["stages"]["score"]["next_run_source"]) \
        == (expected.isoformat(), "schedule")

    # daemons: the leader holds the lease; the standby not seen for 10 minutes is gone
    states = {i["instance"]: (i["state"], i["leader"]) for i in found["daemons"]["instances"]}
    assert states == {LEADER: ("leader", True), GONE: ("gone", False)}
    assert found["daemons"]["leader"]["holder"] == LEADER and found["daemons"]["leader"]["held"]

    # dead letters by reason and by who must act
    assert found["dead_letters"]["open"] == len(letters) >= 2
    assert found["dead_letters"]["by_actor"] == dict(Counter(d.actor for d in letters))
    assert found["dead_letters"]["by_reason"] == dict(
        Counter(f"{d.stage}:{d.error_code or 'unspecified'}" for d in letters))
    assert found["dead_letters"]["by_reason"]["push:INVALID_FIELD"] == 1

    # bookmarks: every single stream, its time and its lag at the generation time
    streams = found["bookmarks"]["streams"]
    singles = {k for k in bookmarks if "/" not in k and not k.startswith(
        (INSTANCE_PREFIX, "salesforce.governor", "mappings.health"))}
    assert set(streams) == singles
    modified = datetime.fromisoformat(bookmarks["contacts.modified"])
    assert streams["contacts.modified"]["time"] == modified.isoformat()
    assert streams["contacts.modified"]["lag_seconds"] == pytest.approx(
        (at - modified).total_seconds(), abs=0.001)
    # page views are read portal-wide: one stream with its window's end as its time
    assert streams["page_views"]["time"] == bookmark_time(bookmarks["page_views"]).isoformat()
    # the per-record bookmarks (one per marketing event) show as a group
    events = [bookmark_time(v) for k, v in bookmarks.items() if k.startswith("webinars/")]
    group = found["bookmarks"]["groups"]["webinars/*"]
    assert group["count"] == len(events) > 0
    assert group["newest"] == max(v for v in events if v is not None).isoformat()

    # API usage: HubSpot's calls today from the runs, Salesforce's from the governor
    hubspot = found["api_usage"]["hubspot"]
    assert hubspot["used"] == sum(calls_of(r.counts, "hubspot") for r in runs) > 0
    assert hubspot["cap"] == int(625_000 * world.config.hubspot.rate_limit_share)
    salesforce = found["api_usage"]["salesforce"]
    assert salesforce["source"] == "governor"
    assert salesforce["used"] == len(governor["calls"]) \
        == sum(calls_of(r.counts, "salesforce") for r in runs) > 0
    assert salesforce["cap"] == int(governor["allowed"]
                                    * world.config.salesforce.daily_allocation_share)

    # mapping files, SLA, webhook queue
    assert found["mappings"]["ok"] and set(found["mappings"]["files"]) == set(FILES)
    assert found["sla"]["open_breaches"] == 0
    depth = getattr(Store, "webhook_queue_depth", None)
    assert found["webhooks"]["queue_depth"] is (None if depth is None else
                                                found["webhooks"]["queue_depth"])


def test_status_table_and_no_remote_system_needed(world: World,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """With HubSpot and Salesforce unreachable, status still reads everything from the
    store."""
    from connector.cli import _app

    monkeypatch.setattr(_app.out, "width", 200)  # the console took its width at import
    db = world.config.state.database_url.removeprefix("sqlite:///")
    offline = world.folder / "offline.toml"
    offline.write_text(f"""
[hubspot]
base_url = "http://127.0.0.1:9"
[salesforce]
instance_url = "https://127.0.0.1:9"
[state]
database_url = "sqlite:///{db}"
[mappings]
""" + "".join(f'{n} = "{world.folder / "mappings" / (n + ".toml")}"\n' for n in FILES))
    code, out, err = cli(world, "status", config=offline)
    assert code == 0, err
    for text in ("Stages", "pull", "pullback", "failed: RuntimeError", LEADER, "gone",
                 "push:INVALID_FIELD", "API usage", "Webhook queue"):
        assert text in out, text


def families(body: bytes) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    out: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for family in text_string_to_metric_families(body.decode()):
        for sample in family.samples:
            out.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
    return out


def test_metrics_parse_and_counters_equal_the_run_records(world: World) -> None:
    store = Store(world.config.state.database_url)
    try:
        body, content_type = render_metrics(world.config, store)
        runs = store.runs_since()
        letters = store.dead_letters()
    finally:
        store.close()
    assert content_type.startswith("text/plain")
    found = families(body)
    assert found["handshake_runs_total"] == {
        (("stage", s), ("status", st)): float(n)
        for (s, st), n in Counter((r.stage, r.status) for r in runs).items()}
    records: Counter[tuple[str, str]] = Counter()
    for r in runs:
        for key, value in r.counts.items():
            records[(r.stage, key)] += value
    assert found["handshake_records_total"] == {
        (("count", k), ("stage", s)): float(n) for (s, k), n in records.items()}
    for system in ("hubspot", "salesforce"):
        for stage in {r.stage for r in runs}:
            assert found["handshake_api_calls_total"][(("stage", stage), ("system", system))] \
                == sum(calls_of(r.counts, system) for r in runs if r.stage == stage)
    assert found["handshake_stage_errors_total"][(("stage", "sla"),)] == 1
    assert found["handshake_stage_errors_total"][(("stage", "pull"),)] == 0
    assert sum(found["handshake_dead_letters"].values()) == len(letters)
    assert found["handshake_dead_letters"][(("reason", "INVALID_FIELD"), ("stage", "push"))] == 1
    assert found["handshake_api_usage"][(("system", "salesforce"),)] == sum(
        calls_of(r.counts, "salesforce") for r in runs)
    # this process is not the leader (the fake leader is another host)
    assert found["handshake_leader"] == {(("instance", instance_name()),): 0.0}
    assert found["handshake_daemon_instances"] == {(("state", "gone"),): 1.0,
                                                   (("state", "leader"),): 1.0}
    assert found["handshake_mappings_ok"] == {(): 1.0}
    pull_done = [r for r in runs if r.stage == "pull" and r.status == "ok"][-1]
    assert found["handshake_last_success_timestamp_seconds"][(("stage", "pull"),)] \
        == pytest.approx(pull_done.finished_at.timestamp())
    assert (("stream", "contacts.modified"),) in found["handshake_bookmark_lag_seconds"]
    assert (("stream", "page_views"),) in found["handshake_bookmark_lag_seconds"]
    assert (("stream", "webinars/*"),) in found["handshake_bookmark_lag_seconds"]


def test_preview_command(world: World) -> None:
    code, out, err = cli(world, "mappings", "preview", "--sample", "2", "--json")
    assert code == 0, err
    assert [r["hubspot_id"] for r in json.loads(out)["records"]] == [
        r["hubspot_id"] for r in preview_mappings(world.config, sample=2)["records"]]
    code, out, err = cli(world, "mappings", "preview", "--sample", "2")
    assert code == 0, err
    assert "Would write" in out and "Salesforce now" in out and "Email" in out


def test_preview_shows_would_write_next_to_salesforce(world: World) -> None:
    found = preview_mappings(world.config, sample=3)
    leads = {r["Id"]: r for r in world.sb.salesforce.state.records("Lead")}  # type: ignore[union-attr]
    assert len(found["records"]) == 3
    store = Store(world.config.state.database_url)
    try:
        for record in found["records"]:
            contact = store.get_contact(record["hubspot_id"])
            assert contact is not None
            assert record["action"] == "update"  # the push created them: open Leads now
            lead = leads[record["sf_id"]]
            assert lead["Handshake_Id__c"] == record["hubspot_id"]
            rows = {f["field"]: f for f in record["fields"]}
            assert rows["Email"]["would_write"] == (contact.email or "").lower()
            for row in rows.values():
                assert row["salesforce"] == lead.get(row["field"]), row["field"]
            for row in rows.values():
                assert row["same"] == (not row["writes"] or row["would_write"] == row["salesforce"])
            assert rows["Email"]["same"]
    finally:
        store.close()


def test_live_edit_refused_then_taken_by_the_next_push(world: World, tmp_path: Path,
                                                      caplog: pytest.LogCaptureFixture) -> None:
    """An invalid fields.toml edit is refused (logged with file and key, in the health and
    the bookmark) and the push goes on with the previous mapping; a valid edit is used by the
    next push, and the preview shows it against Salesforce before."""
    source = tmp_path / "mappings"
    source.mkdir()
    for name in FILES:
        shutil.copy(MAPPINGS_DIR / f"{name}.toml", source / f"{name}.toml")
    config = load_config(write_config(world.sb, tmp_path,
                                      Path(world.config.state.database_url
                                           .removeprefix("sqlite:///")), source), world.env)
    store = open_store(config)
    watcher = MappingWatcher(config, store=store, folder=tmp_path / "running")
    try:
        assert watcher.health.ok
        fields = source / "fields.toml"
        text = fields.read_text()
        fields.write_text(text.replace('hubspot = "jobtitle"',
                                       'hubspot = "jobtitle"\ncase = "sideways"'))
        assert watcher.check() is False
        assert not watcher.health.ok
        assert any(str(fields) in e and "fields[3].case" in e for e in watcher.health.errors)
        assert any(r.levelname == "ERROR" and str(fields) in r.getMessage()
                   for r in caplog.records)
        saved = json.loads(store.get_bookmark("mappings.health") or "{}")
        assert saved["ok"] is False and saved["errors"] == watcher.health.errors
        running = watcher.config.mapping_path("fields").read_text()
        assert running == text  # the last good version
        titles = {r["Id"]: r.get("Title") for r in world.sb.salesforce.state.records("Lead")}  # type: ignore[union-attr]
        assert run_push_stage(watcher.config).status in ("ok", "degraded")
        assert {r["Id"]: r.get("Title")
                for r in world.sb.salesforce.state.records("Lead")} == titles  # type: ignore[union-attr]

        fields.write_text(text.replace('hubspot = "jobtitle"',
                                       'hubspot = "jobtitle"\ncase = "upper"'))
        assert watcher.check() is True and watcher.health.ok
        preview = preview_mappings(watcher.config, sample=5)
        changed = [f for r in preview["records"] for f in r["fields"]
                   if f["field"] == "Title" and f["salesforce"]]
        assert changed and all(f["would_write"] == f["salesforce"].upper() for f in changed)
        assert any(not f["same"] for f in changed)
        assert run_push_stage(watcher.config).status in ("ok", "degraded")
        after = {r["Id"]: r.get("Title") for r in world.sb.salesforce.state.records("Lead")}  # type: ignore[union-attr]
        for record in preview["records"]:
            title = after[record["sf_id"]]
            assert title is None or title == title.upper()
    finally:
        watcher.close()
        store.close()
