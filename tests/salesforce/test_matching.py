"""Matching before writing: Contacts, open and converted Leads by email, and records by the
external-id field, in batched SOQL with escaped values, paged by nextRecordsUrl."""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import quote_plus

import pytest

from connector.salesforce import SalesforceClient
from connector.salesforce import settings as ss
from connector.sandbox import Sandbox

from .conftest import make_client

TRICKY = [
    "o'brien@quotes.test",
    "back\\slash@quotes.test",
    'double"quote@quotes.test',
    "it's\\both'@quotes.test",
]


@pytest.fixture
def client(sandbox: Sandbox) -> Iterator[SalesforceClient]:
    with make_client(sandbox) as c:
        yield c


def _load(sandbox: Sandbox, sobject: str, **fields: object) -> str:
    return sandbox.salesforce.state.load_record(sobject, dict(fields))


def test_contacts_open_and_converted_leads_are_told_apart(
    sandbox: Sandbox, client: SalesforceClient
) -> None:
    state = sandbox.salesforce.state
    account = _load(sandbox, "Account", Name="Match Co")
    contact = _load(
        sandbox, "Contact", LastName="Known", Email="Known@Match.test", AccountId=account
    )
    open_lead = _load(
        sandbox,
        "Lead",
        LastName="Open",
        Company="Match Co",
        Email="open@match.test",
        Status="Working - Contacted",
    )
    converted = _load(sandbox, "Lead", LastName="Conv", Company="Conv Co", Email="conv@match.test")
    converted_to = state.convert_lead(converted, create_opportunity=False)["contactId"]
    found = client.match_emails(
        ["known@match.test", "OPEN@match.test", "conv@match.test", "nobody@match.test"]
    )
    [c] = found.contacts_for("KNOWN@match.test")
    assert (c.id, c.account_id, c.owner_id) == (contact, account, state.integration_user_id)
    assert c.email == "Known@Match.test"
    [lead] = found.open_leads_for("open@match.test")
    assert lead.id == open_lead and not lead.is_converted
    assert lead.status == "Working - Contacted"
    # conversion made a Contact with the same email; the converted Lead says where it went
    [conv] = found.converted_leads_for("conv@match.test")
    assert conv.id == converted and conv.is_converted
    assert conv.converted_contact_id == converted_to
    assert [x.id for x in found.contacts_for("conv@match.test")] == [converted_to]
    assert found.open_leads_for("conv@match.test") == []
    assert not found.contacts_for("nobody@match.test")
    assert not found.open_leads_for("nobody@match.test")
    assert client.calls == 2  # one Contact and one Lead query for the whole batch


def test_quotes_and_backslashes_are_escaped(sandbox: Sandbox, client: SalesforceClient) -> None:
    ids = {
        email: _load(sandbox, "Lead", LastName="Q", Company="Q", Email=email) for email in TRICKY
    }
    contact = _load(sandbox, "Contact", LastName="Q", Email="o'brien@contact.test")
    found = client.match_emails([*TRICKY, "o'brien@contact.test", "' OR Email != '"])
    for email, lead_id in ids.items():
        assert [x.id for x in found.open_leads_for(email)] == [lead_id]
    assert [x.id for x in found.contacts_for("o'brien@contact.test")] == [contact]
    # an injection attempt is a plain value that matches nothing
    assert not found.open_leads_for("' OR Email != '")
    assert sum(len(v) for v in found.open_leads.values()) == len(TRICKY)


def test_many_emails_are_chunked_under_the_uri_limit(
    sandbox: Sandbox, client: SalesforceClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ss, "MAX_QUERY_URI_CHARS", 1500)
    emails = [f"chunk{n:03d}@chunking.test" for n in range(60)]
    for email in emails[::3]:
        _load(sandbox, "Lead", LastName="C", Company="C", Email=email)
    sent: list[str] = []
    original = client.sf.query

    def spy(soql: str, *args: object, **kwargs: object) -> object:
        sent.append(soql)
        return original(soql, *args, **kwargs)

    monkeypatch.setattr(client.sf, "query", spy)
    found = client.match_emails(emails)
    assert sorted(found.open_leads) == sorted(emails[::3])
    lead_queries = [q for q in sent if " FROM Lead " in q]
    assert len(lead_queries) > 1 and len(sent) == 2 * len(lead_queries)
    prefix = "/services/data/v62.0/query/?q="
    assert all(len(prefix) + len(quote_plus(q)) <= 1500 for q in sent)
    asked = [e for q in lead_queries for e in emails if f"'{e}'" in q]
    assert sorted(asked) == sorted(emails)  # every email asked exactly once


def test_matches_page_by_next_records_url(sandbox: Sandbox, client: SalesforceClient) -> None:
    many = ss.QUERY_MAX_BATCH + 50
    for n in range(many):
        _load(sandbox, "Lead", LastName=f"P{n}", Company="Paging", Email="paged@paging.test")
    found = client.match_emails(["paged@paging.test"])
    assert len(found.open_leads_for("paged@paging.test")) == many
    assert len({x.id for x in found.open_leads_for("paged@paging.test")}) == many
    assert client.calls_by_kind["query"] == 3  # Contacts, Leads page 1, Leads page 2


def test_blank_and_unstorable_emails_are_not_asked_for(client: SalesforceClient) -> None:
    found = client.match_emails(["", "   ", "x" * 90 + "@long.test"])
    assert client.calls == 0
    assert not found.contacts and not found.open_leads and not found.converted_leads


def test_records_are_found_by_the_external_id_field(
    sandbox: Sandbox, client: SalesforceClient
) -> None:
    lead = _load(sandbox, "Lead", LastName="E", Company="E", Handshake_Id__c="hs-ext-1")
    contact = _load(sandbox, "Contact", LastName="E", Handshake_Id__c="hs-ext-2")
    quoted = _load(sandbox, "Lead", LastName="E", Company="E", Handshake_Id__c="hs-'3")
    found = client.match_external_ids(["hs-ext-1", "hs-ext-2", "hs-'3", "hs-none"])
    assert found.leads["hs-ext-1"].id == lead
    assert found.leads["hs-'3"].id == quoted
    assert found.contacts["hs-ext-2"].id == contact
    assert "hs-none" not in found.leads and "hs-none" not in found.contacts
    assert "hs-ext-2" not in found.leads


def test_lead_statuses_come_from_the_lead_status_object(
    sandbox: Sandbox, client: SalesforceClient
) -> None:
    statuses = client.lead_statuses()
    rows = sorted(sandbox.salesforce.state.lead_statuses(), key=lambda r: r["SortOrder"])
    assert [s.label for s in statuses] == [r["MasterLabel"] for r in rows]
    assert [s.label for s in statuses if s.is_default] == ["Open - Not Contacted"]
    assert [s.label for s in statuses if s.is_converted] == ["Closed - Converted"]
    assert client.lead_statuses() == statuses
    assert client.calls == 1  # read once per run


def test_describe_is_cached_per_client(sandbox: Sandbox, client: SalesforceClient) -> None:
    lead = client.describe("Lead")
    assert client.describe("lead") is lead
    fields = client.fields("Lead")
    assert fields["Handshake_Id__c"]["externalId"] is True
    assert fields["Company"]["length"] == 255
    assert client.calls == 1
    with make_client(sandbox) as fresh:
        fresh.describe("Lead")
        assert fresh.calls == 1  # a new run reads it again


def test_a_thousand_emails_take_few_queries_the_server_accepts(
    sandbox: Sandbox, client: SalesforceClient
) -> None:
    emails = [f"person{n:04d}.surname@example-company.test" for n in range(1000)]
    lead = _load(sandbox, "Lead", LastName="T", Company="T", Email=emails[-1])
    found = client.match_emails(emails)
    assert [x.id for x in found.open_leads_for(emails[-1])] == [lead]
    chunks = client.calls // 2
    assert 2 <= chunks <= 6  # about 12,000 URI characters a query, not one query per email
    assert client.calls == 2 * chunks


def test_open_leads_are_counted_per_owner_in_one_aggregate_query(
    sandbox: Sandbox, client: SalesforceClient
) -> None:
    state = sandbox.salesforce.state
    rep = state.add_user(id=None, username="capacity.rep@sandbox.test", email="capacity.rep@sandbox.test",
                         first_name="Cap", last_name="Rep", territory=None, team=None)
    other = state.add_user(id=None, username="capacity.two@sandbox.test",
                           email="capacity.two@sandbox.test", first_name="Cap", last_name="Two", territory=None, team=None)
    for n in range(3):
        _load(sandbox, "Lead", LastName=f"Open {n}", Company="Cap Co", OwnerId=rep,
              Status="Open - Not Contacted")
    _load(sandbox, "Lead", LastName="Closed", Company="Cap Co", OwnerId=rep,
          Status="Closed - Not Converted")
    _load(sandbox, "Lead", LastName="Other", Company="Cap Co", OwnerId=other,
          Status="Working - Contacted")
    calls = client.calls
    load = client.open_leads_by_owner([rep, other, "005000000000000AAA"],
                                      closed_statuses=["Closed - Not Converted"])
    assert load == {rep: 3, other: 1}
    assert client.calls - calls == 1
    assert client.open_leads_by_owner([]) == {}
