"""Against the sandbox: the default model's MQL set is the generator's sales-ready set; a changed
rule changes it as predicted; the write-back lands in HubSpot, forward only and only changes;
`score explain` and the hand-off summary for a known contact."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from connector.clock import FrozenClock
from connector.config import Config, MappingPaths
from connector.pull import pull
from connector.sandbox import Sandbox
from connector.sandbox import generator as gen
from connector.scoring import Engine
from connector.cli.score import mappings_check, score_explain
from connector.cli.sync import sync_score
from connector.scoring.intelligence import MAX_TEXT_CHARS, render_text, summarize
from connector.scoring.runner import score_contacts
from connector.runtime import run_score_stage
from connector.store import Store
from tests.pull.helpers import context, sandbox_config, sandbox_env, sandbox_toml, unthrottle
from tests.scoring.helpers import DEFAULT_MODEL, model_with

CONTACTS = 2000


@dataclass
class Pulled:
    sb: Sandbox
    config: Config
    store: Store
    toml: Path


@pytest.fixture(scope="module")
def pulled(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pulled]:
    tmp = tmp_path_factory.mktemp("truth")
    with Sandbox(contacts=CONTACTS, seed=7) as sb:
        unthrottle(sb)
        sb.clock.advance(timedelta(hours=1))
        db = tmp / "state.db"
        config = sandbox_config(sb, db)
        config = config.model_copy(update={"mappings": MappingPaths(scoring=str(DEFAULT_MODEL))})
        store = Store(f"sqlite:///{db}")
        store.migrate()
        pull(context(config, store))
        toml = tmp / "handshake.toml"
        shipped = DEFAULT_MODEL.parent
        toml.write_text(sandbox_toml(sb, db) + f'[mappings]\nscoring = "{DEFAULT_MODEL}"\n'
                        f'fields = "{shipped / "fields.toml"}"\n'
                        f'routing = "{shipped / "routing.toml"}"\n')
        yield Pulled(sb, config, store, toml)
        store.close()


def mql_emails(store: Store) -> set[str]:
    ids = [c.hubspot_id for c in store.iter_contacts()]
    scores = store.latest_scores(ids)
    emails = {c.hubspot_id: c.email for c in store.iter_contacts()}
    return {emails[cid] or "" for cid, s in scores.items() if s.is_mql}


def test_default_model_mqls_are_the_ground_truth_and_land_in_hubspot(pulled: Pulled) -> None:
    ds = pulled.sb.dataset
    assert ds is not None
    clock = FrozenClock(ds.generated_at)
    result = run_score_stage(pulled.config, clock=clock)
    assert result.status == "ok"
    truth = {e.lower() for e in ds.ground_truth.sales_ready}
    assert 0.03 * CONTACTS < len(truth) < 0.15 * CONTACTS
    assert mql_emails(pulled.store) == truth
    assert result.counts["mql"] == len(truth)
    assert result.counts["transition.mql"] == len(truth)
    assert result.counts["hubspot.properties.created"] == 5
    updated = result.counts["hubspot.contacts.updated"]
    assert updated == result.counts["scored"]
    assert result.counts["hubspot.requests"] == -(-updated // 100)

    # In HubSpot: the MQLs carry their score, grade and stage.
    ids = pulled.store.contact_ids_by_email(sorted(truth)[:20])
    ctx = context(pulled.config, pulled.store)
    try:
        records = ctx.client.batch_read_contacts(
            list(ids.values()), ["handshake_score", "handshake_fit_grade", "lifecyclestage",
                                 "handshake_mql_date", "handshake_nurture_track"])
    finally:
        ctx.client.close()
    for record in records:
        props = record["properties"]
        assert props["handshake_fit_grade"] == "A"
        assert float(props["handshake_score"]) >= 50
        assert props["lifecyclestage"] == "marketingqualifiedlead"
        assert props["handshake_mql_date"].startswith(ds.generated_at.date().isoformat())
        assert not props.get("handshake_nurture_track")

    # The same scores again: nothing is sent twice.
    clock.advance(timedelta(days=2))
    again = run_score_stage(pulled.config, clock=clock, everyone=True)
    assert again.counts["hubspot.contacts.unchanged"] + again.counts[
        "hubspot.contacts.updated"] == again.counts["scored"]
    assert again.counts["transition.mql"] == 0


def mqls_with(pulled: Pulled, old: str, new: str) -> set[str]:
    ds = pulled.sb.dataset
    assert ds is not None
    run = score_contacts(pulled.store, Engine(model_with(old, new)), ds.generated_at,
                         everyone=True, dry_run=True)
    return {run.contacts[cid].email or "" for cid, r in run.results.items() if r.is_mql}


def test_changing_one_rule_changes_the_mql_set_as_predicted(
    pulled: Pulled, monkeypatch: pytest.MonkeyPatch
) -> None:
    ds = pulled.sb.dataset
    assert ds is not None
    truth = {e.lower() for e in ds.ground_truth.sales_ready}
    # One more competitor domain: the domain of one sales-ready contact.
    domain = min(truth).rsplit("@", 1)[1]
    listed = '"leadbridge.io", "funnelforge.com", "syncwise.com"'
    ours = mqls_with(pulled, listed, f'{listed}, "{domain}"')
    # The generator's documented rule with the same change.
    monkeypatch.setattr(gen, "COMPETITOR_DOMAINS", (*gen.COMPETITOR_DOMAINS, domain))
    acts = gen.contact_activities(ds)
    expected = {c.properties["email"].lower() for c in ds.contacts
                if gen.is_sales_ready(c, acts[c.id], ds.generated_at)}
    assert expected < truth
    assert ours == expected
    assert all(not e.endswith("@" + domain) for e in ours)



def app() -> typer.Typer:
    cli = typer.Typer()
    cli.command("explain")(score_explain)
    cli.command("check")(mappings_check)
    cli.command("score")(sync_score)
    return cli


def test_score_explain_for_a_known_contact(pulled: Pulled) -> None:
    ds = pulled.sb.dataset
    assert ds is not None
    # a sales-ready contact that viewed the pricing or demo page (not every one did: the
    # generator draws a ready contact's signals on their own)
    acts = gen.contact_activities(ds)
    viewed = {c.properties["email"].lower() for c in ds.contacts
              if any(kind == "page_view" and detail.startswith(gen.PAGE_HIGH_INTENT_PREFIXES)
                     for kind, detail, _ in acts.get(c.id, []))}
    email = min(e for e in ds.ground_truth.sales_ready if e.lower() in viewed)
    out = CliRunner().invoke(app(), ["explain", email, "-c", str(pulled.toml),
                                     "--at", ds.generated_at.isoformat()],
                             env={"COLUMNS": "200"})
    assert out.exit_code == 0, out.output
    text = out.output
    contact = pulled.store.get_contact_by_email(email)
    assert contact is not None
    assert text.startswith(f"{contact.properties['firstname']} {contact.properties['lastname']} "
                           f"<{email.lower()}>")
    assert "MQL: yes - grade A with interest" in text
    assert "FIT: " in text and "-> grade A" in text
    assert "Corporate email" in text
    interest_part = text.split("INTEREST: ", 1)[1]
    assert ("Consultation request" in interest_part) or ("Demo request" in interest_part)
    assert "Pricing or demo page" in interest_part
    missing = CliRunner().invoke(app(), ["explain", "nobody@nowhere.test", "-c",
                                         str(pulled.toml)])
    assert missing.exit_code == 1


def test_mappings_check_and_dry_run_commands(pulled: Pulled, tmp_path: Path) -> None:
    ok = CliRunner().invoke(app(), ["check", "-c", str(pulled.toml)])
    assert ok.exit_code == 0, ok.output
    assert "scoring model is valid" in ok.output
    broken = tmp_path / "h.toml"
    bad = Path(__file__).parent / "broken" / "invalid_regex.toml"
    broken.write_text(pulled.toml.read_text().replace(str(DEFAULT_MODEL), str(bad)))
    refused = CliRunner().invoke(app(), ["check", "-c", str(broken)])
    assert refused.exit_code == 2
    assert "interest.rules[0].regex" in refused.output
    env = {**sandbox_env(pulled.sb), "COLUMNS": "200"}
    dry = CliRunner().invoke(app(), ["score", "-c", str(broken), "--dry-run"], env=env)
    assert dry.exit_code == 2
    live = CliRunner().invoke(app(), ["check", "-c", str(pulled.toml), "--live"], env=env)
    assert live.exit_code == 0, live.output


def test_hand_off_summary_of_an_mql(pulled: Pulled) -> None:
    ds = pulled.sb.dataset
    assert ds is not None
    engine = Engine(model_with("cap = 100", "cap = 100"))
    email = sorted(ds.ground_truth.sales_ready)[1]
    contact = pulled.store.get_contact_by_email(email)
    assert contact is not None
    acts = pulled.store.activities_for(contact.hubspot_id)
    result = engine.score(contact, acts, ds.generated_at)
    summary = summarize(contact, acts, result, ds.generated_at)
    assert summary.grade == "A" and result.is_mql
    assert summary.high_intent and summary.high_intent[0]["date"] >= (
        ds.generated_at - timedelta(days=15)).date().isoformat()
    assert summary.pages["total_views"] == sum(1 for a in acts if a.type == "page_view")
    assert summary.source["original_source"] == contact.properties["hs_analytics_source"]
    text = render_text(summary)
    assert len(text) <= MAX_TEXT_CHARS
    order = [text.index(h) for h in ("== Recent high-intent actions ==", "== Why this score ==",
                                     "== Who they are ==", "== Pages viewed ==",
                                     "== Email engagement ==")]
    assert order == sorted(order)
