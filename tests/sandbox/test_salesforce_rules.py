"""The org's rules: per-record validation, duplicate and assignment rules, allOrNone
rollbacks, lead conversion, and indexed writes (no scan of all records per record)."""

from __future__ import annotations

import re
import time
from typing import Any

import pytest

from connector.sandbox.base import SandboxClock
from connector.sandbox.salesforce import RecordError, SalesforceState
from connector.sandbox.salesforce.ids import to_18
from connector.sandbox.salesforce.state import ValidationRule

from .sf_fixtures import (
    CONTACT_ID,
    LEAD_ID,
    START,
    USER_APAC,
    USER_EMEA,
    USER_NA,
    USER_NA2,
    SFEnv,
    sf_env,
    sf_tls,
)

__all__ = ["sf_env", "sf_tls"]


def _create(
    env: SFEnv,
    *records: dict[str, Any],
    headers: dict[str, str] | None = None,
    all_or_none: bool = False,
) -> list[dict[str, Any]]:
    answer = env.call(
        "POST",
        "/composite/sobjects",
        headers=headers or {},
        json={"allOrNone": all_or_none, "records": list(records)},
    )
    assert answer.status_code == 200, answer.text
    return list(answer.json())


def _lead(**fields: Any) -> dict[str, Any]:
    return {"attributes": {"type": "Lead"}, "LastName": "Lee", "Company": "Co", **fields}


def _codes(result: dict[str, Any]) -> list[str]:
    return [e["statusCode"] for e in result["errors"]]


def test_per_record_validation_codes(sf_env: SFEnv) -> None:
    missing_who = to_18("00Q5g0000000zzz")
    results = _create(
        sf_env,
        _lead(Company="x" * 256),
        _lead(Email="not-an-email"),
        _lead(Status="Hot Prospect"),
        _lead(Purchase_Timeframe__c="ASAP"),
        _lead(IsDeleted=True),
        {"attributes": {"type": "Task"}, "Subject": "Call", "WhoId": "garbage"},
        {"attributes": {"type": "Task"}, "Subject": "Call", "WhoId": missing_who},
        {"attributes": {"type": "Task"}, "Subject": "Call", "WhoId": CONTACT_ID},
        _lead(Reason_Not_Converted__c="Because"),
    )
    assert results[0]["errors"] == [
        {
            "statusCode": "STRING_TOO_LONG",
            "message": f"Company: data value too large: {'x' * 200} (max length=255)",
            "fields": ["Company"],
        }
    ]
    assert results[1]["errors"] == [
        {
            "statusCode": "INVALID_EMAIL_ADDRESS",
            "message": "Email: invalid email address: not-an-email",
            "fields": ["Email"],
        }
    ]
    assert results[2]["errors"] == [
        {
            "statusCode": "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
            "message": "Status: bad value for restricted picklist field: Hot Prospect",
            "fields": ["Status"],
        }
    ]
    assert results[3]["errors"] == [
        {
            "statusCode": "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
            "message": "Purchase Timeframe: bad value for restricted picklist field: ASAP",
            "fields": ["Purchase_Timeframe__c"],
        }
    ]
    assert _codes(results[4]) == ["INVALID_FIELD_FOR_INSERT_UPDATE"]
    assert results[4]["errors"][0]["fields"] == ["IsDeleted"]
    assert results[5]["errors"] == [
        {
            "statusCode": "MALFORMED_ID",
            "message": "Contact/Lead ID: id value of incorrect type: garbage",
            "fields": ["WhoId"],
        }
    ]
    assert _codes(results[6]) == ["INVALID_CROSS_REFERENCE_KEY"]
    assert results[7]["success"] is True
    assert _codes(results[8]) == ["INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST"]


def test_an_unknown_column_refuses_the_whole_collection_call(sf_env: SFEnv) -> None:
    before = sf_env.sandbox.state.counts()
    for method, path, records in (
        ("POST", "/composite/sobjects", [_lead(), _lead(Favourite_Colour__c="blue")]),
        ("PATCH", "/composite/sobjects/Lead/Handshake_Id__c",
         [_lead(Handshake_Id__c="u-1"), _lead(Handshake_Id__c="u-2", Favourite_Colour__c="x")]),
    ):
        answer = sf_env.call(method, path, json={"records": records})
        assert answer.status_code == 400
        assert answer.json() == [
            {
                "message": "No such column 'Favourite_Colour__c' on sobject of type Lead",
                "errorCode": "INVALID_FIELD",
            }
        ]
    assert sf_env.sandbox.state.counts() == before  # not even the good record was saved


def test_a_date_field_takes_iso_dates_and_refuses_text_for_the_whole_call(
    sf_env: SFEnv,
) -> None:
    saved = _create(sf_env, _lead(Webinar_Date__c="2026-03-03"))[0]
    assert sf_env.sandbox.state.get("Lead", saved["id"])["Webinar_Date__c"] == "2026-03-03"
    answer = sf_env.call(
        "POST",
        "/composite/sobjects",
        json={"records": [_lead(), _lead(Webinar_Date__c="3rd of March")]},
    )
    assert answer.status_code == 400 and answer.json()[0]["errorCode"] == "JSON_PARSER_ERROR"


def test_validation_rules_refuse_with_their_message_at_their_field(sf_env: SFEnv) -> None:
    state = sf_env.sandbox.state
    state.add_validation_rule(ValidationRule(
        "Lead", "Phone_format",
        lambda r: bool(r.get("Phone")) and not re.fullmatch(r"[+0-9 ().-]{7,}", r["Phone"]),
        "Phone must be a phone number, e.g. +1 415 555 0100", "Phone"))
    state.add_validation_rule(ValidationRule(
        "Lead", "No_test_leads", lambda r: "test" in str(r.get("Company") or "").lower(),
        "Test leads are not allowed"))
    good, bad, both = _create(
        sf_env,
        _lead(Phone="+1 415 555 0100"),
        _lead(Phone="call after 5pm"),
        _lead(Phone="n/a", Company="Test Co"),
    )
    assert good["success"] is True
    assert bad["errors"] == [
        {
            "statusCode": "FIELD_CUSTOM_VALIDATION_EXCEPTION",
            "message": "Phone must be a phone number, e.g. +1 415 555 0100",
            "fields": ["Phone"],
        }
    ]
    assert [(e["statusCode"], e["fields"]) for e in both["errors"]] == [
        ("FIELD_CUSTOM_VALIDATION_EXCEPTION", ["Phone"]),
        ("FIELD_CUSTOM_VALIDATION_EXCEPTION", []),
    ]
    # system validation answers first; the rule sees the record as it would be saved
    long_company = _create(sf_env, _lead(Company="test " * 60))[0]
    assert _codes(long_company) == ["STRING_TOO_LONG"]
    update = sf_env.call("PATCH", f"/sobjects/Lead/{good['id']}", json={"Company": "A test"})
    assert update.json()[0]["errorCode"] == "FIELD_CUSTOM_VALIDATION_EXCEPTION"


def test_lead_name_matching_finds_a_namesake_lead_with_another_email(sf_env: SFEnv) -> None:
    state = sf_env.sandbox.state
    # off by default: only the email is compared
    assert _create(sf_env, _lead(FirstName="Bob", LastName="Stone", Company="Stone Ltd",
                                 Email="bob.stone@new.test"))[0]["success"] is True
    state.lead_name_matching = True
    result = _create(sf_env, _lead(FirstName="BOB", LastName="stone", Company="Stone Ltd ",
                                   Email="robert@stone.test"))[0]
    assert _codes(result) == ["DUPLICATES_DETECTED"]
    match = result["errors"][0]["duplicateResult"]["matchResults"][0]
    assert match["entityType"] == "Lead" and match["rule"] == "Standard_Lead_Match_Rule_v1_0"
    assert {m["record"]["Id"] for m in match["matchRecords"]} >= {LEAD_ID}
    # a blank part never matches, and a converted Lead no longer does
    assert _create(sf_env, _lead(FirstName=None, LastName="Stone", Company="Stone Ltd"))[0][
        "success"] is True
    state.convert_lead(LEAD_ID)
    again = _create(sf_env, _lead(FirstName="Bob", LastName="Stone", Company="Stone Ltd",
                                  Email="third@stone.test"))[0]
    ids = {m["record"]["Id"] for m in again["errors"][0]["duplicateResult"]["matchResults"][0][
        "matchRecords"]}
    assert LEAD_ID not in ids and len(ids) == 1  # the namesake made while matching was off


def test_task_subtype_is_createable_but_not_updateable(sf_env: SFEnv) -> None:
    task = _create(
        sf_env,
        {
            "attributes": {"type": "Task"},
            "Subject": "Email sent",
            "TaskSubtype": "Email",
            "WhoId": LEAD_ID,
            "Status": "Completed",
            "ActivityDate": "2026-03-01",
        },
    )[0]
    stored = sf_env.sandbox.state.get("Task", task["id"])
    assert stored is not None
    assert stored["IsClosed"] is True and stored["Priority"] == "Normal"
    assert stored["CompletedDateTime"] == "2026-03-02T09:00:00.000+0000"
    assert sf_env.sandbox.state.get("Lead", LEAD_ID)["LastActivityDate"] == "2026-03-01"
    answer = sf_env.call("PATCH", f"/sobjects/Task/{task['id']}", json={"TaskSubtype": "Call"})
    assert answer.status_code == 400
    assert answer.json()[0]["errorCode"] == "INVALID_FIELD_FOR_INSERT_UPDATE"


def test_event_needs_a_start_and_a_length(sf_env: SFEnv) -> None:
    missing, ok = _create(
        sf_env,
        {"attributes": {"type": "Event"}, "Subject": "Demo", "WhoId": LEAD_ID},
        {
            "attributes": {"type": "Event"},
            "Subject": "Demo",
            "WhoId": LEAD_ID,
            "StartDateTime": "2026-03-01T15:00:00Z",
            "DurationInMinutes": 30,
        },
    )
    assert missing["errors"] == [
        {
            "statusCode": "REQUIRED_FIELD_MISSING",
            "message": "Required fields are missing: [ActivityDateTime, DurationInMinutes]",
            "fields": ["ActivityDateTime", "DurationInMinutes"],
        }
    ]
    event = sf_env.sandbox.state.get("Event", ok["id"])
    assert event["EndDateTime"] == "2026-03-01T15:30:00.000+0000"
    assert event["ActivityDate"] == "2026-03-01"
    assert sf_env.sandbox.state.get("Lead", LEAD_ID)["LastActivityDate"] == "2026-03-01"


def test_external_id_is_unique(sf_env: SFEnv) -> None:
    first, second = _create(sf_env, _lead(Handshake_Id__c="dup"), _lead(Handshake_Id__c="DUP"))
    assert first["success"] is True
    assert _codes(second) == ["DUPLICATE_VALUE"]
    assert first["id"] in second["errors"][0]["message"]


def test_duplicate_rule_blocks_lead_matching_a_contact_email(sf_env: SFEnv) -> None:
    result = _create(sf_env, _lead(Email="JANE@acme.test"))[0]
    assert result["success"] is False
    error = result["errors"][0]
    assert error["statusCode"] == "DUPLICATES_DETECTED"
    assert error["message"] == "Use one of these records?"
    detail = error["duplicateResult"]
    assert detail["allowSave"] is True and detail["duplicateRuleEntityType"] == "Lead"
    match = detail["matchResults"][0]
    assert match["entityType"] == "Contact" and match["size"] == 1
    assert match["matchRecords"][0]["record"]["Id"] == CONTACT_ID
    assert match["matchRecords"][0]["matchConfidence"] == 100.0
    single = sf_env.call(
        "POST", "/sobjects/Lead", json={"LastName": "L", "Company": "C", "Email": "bob@stone.test"}
    )
    assert single.status_code == 400
    assert single.json()[0]["errorCode"] == "DUPLICATES_DETECTED"
    assert single.json()[0]["duplicateResult"]["matchResults"][0]["entityType"] == "Lead"


def test_records_of_one_call_are_not_compared_to_each_other(sf_env: SFEnv) -> None:
    # Salesforce Help, Duplicate Rules: "records within the same save aren't compared to each
    # other; they are only compared with records already in Salesforce"
    twins = _create(sf_env, _lead(Email="twin@x.test"), _lead(Email="TWIN@x.test"))
    assert [r["success"] for r in twins] == [True, True]
    third = _create(sf_env, _lead(Email="twin@x.test"))[0]
    assert _codes(third) == ["DUPLICATES_DETECTED"]
    ids = {m["record"]["Id"] for m in third["errors"][0]["duplicateResult"]["matchResults"][0][
        "matchRecords"]}
    assert ids == {r["id"] for r in twins}


def test_duplicate_rule_header_allow_save(sf_env: SFEnv) -> None:
    result = _create(
        sf_env,
        _lead(Email="jane@acme.test"),
        headers={
            "Sforce-Duplicate-Rule-Header": "allowSave=true; "
            "includeRecordDetails=true; runAsCurrentUser=true"
        },
    )[0]
    assert result["success"] is True
    assert len(sf_env.sandbox.state.find("Lead", Email="jane@acme.test")) == 1


def test_duplicate_rule_on_update_and_converted_leads_do_not_match(sf_env: SFEnv) -> None:
    other = _create(sf_env, _lead(Email="carl@x.test"))[0]
    clash = sf_env.call("PATCH", f"/sobjects/Lead/{other['id']}", json={"Email": "bob@stone.test"})
    assert clash.status_code == 400 and clash.json()[0]["errorCode"] == "DUPLICATES_DETECTED"
    sf_env.sandbox.state.convert_lead(LEAD_ID)
    fresh = _create(sf_env, _lead(Email="bob@stone.test", LastName="Again"))
    # the converted lead no longer matches, but its new Contact does
    assert fresh[0]["errors"][0]["duplicateResult"]["matchResults"][0]["entityType"] == "Contact"


def test_assignment_rule_by_country(sf_env: SFEnv) -> None:
    results = _create(
        sf_env,
        _lead(Country="United States"),
        _lead(Country="US"),
        _lead(Country="US"),
        _lead(Country="Germany"),
        _lead(Country="Japan"),
        _lead(Country="Atlantis"),
        _lead(),
    )
    owners = [sf_env.sandbox.state.get("Lead", r["id"])["OwnerId"] for r in results]
    queue = sf_env.sandbox.state.queue_id
    first, second = sorted([USER_NA, USER_NA2])  # round robin in user-id order
    assert owners[:3] == [first, second, first]
    assert owners[3:] == [USER_EMEA, USER_APAC, queue, queue]
    assert queue.startswith("00G")


def test_auto_assign_false_keeps_the_explicit_owner(sf_env: SFEnv) -> None:
    kept = _create(
        sf_env, _lead(Country="Japan", OwnerId=USER_NA), headers={"Sforce-Auto-Assign": "FALSE"}
    )[0]
    assert sf_env.sandbox.state.get("Lead", kept["id"])["OwnerId"] == USER_NA
    overridden = _create(sf_env, _lead(Country="Japan", OwnerId=USER_NA))[0]
    assert sf_env.sandbox.state.get("Lead", overridden["id"])["OwnerId"] == USER_APAC
    # an update without the header re-runs the rule; with "false" the owner stays
    sf_env.call(
        "PATCH",
        f"/sobjects/Lead/{kept['id']}",
        json={"Title": "A"},
        headers={"Sforce-Auto-Assign": "false"},
    )
    assert sf_env.sandbox.state.get("Lead", kept["id"])["OwnerId"] == USER_NA
    sf_env.call("PATCH", f"/sobjects/Lead/{kept['id']}", json={"Title": "B"})
    assert sf_env.sandbox.state.get("Lead", kept["id"])["OwnerId"] == USER_APAC


def test_all_or_none_rolls_everything_back(sf_env: SFEnv) -> None:
    before = sf_env.sandbox.state.counts()
    title_before = sf_env.sandbox.state.get("Lead", LEAD_ID)["Title"]
    answer = sf_env.call(
        "POST",
        "/composite/sobjects",
        json={
            "allOrNone": True,
            "records": [
                _lead(LastName="Good"),
                {"attributes": {"type": "Account"}, "Name": "Fine"},
                _lead(LastName=None),
            ],
        },
    )
    rolled = {
        "statusCode": "ALL_OR_NONE_OPERATION_ROLLED_BACK",
        "message": "Record rolled back because not all records were valid and the "
        "request was using AllOrNone header",
        "fields": [],
    }
    assert answer.json() == [
        {"success": False, "errors": [rolled]},
        {"success": False, "errors": [rolled]},
        {
            "success": False,
            "errors": [
                {
                    "statusCode": "REQUIRED_FIELD_MISSING",
                    "message": "Required fields are missing: [LastName]",
                    "fields": ["LastName"],
                }
            ],
        },
    ]
    assert sf_env.sandbox.state.counts() == before
    updates = sf_env.call(
        "PATCH",
        "/composite/sobjects",
        json={
            "allOrNone": True,
            "records": [
                {"attributes": {"type": "Lead"}, "Id": LEAD_ID, "Title": "Changed"},
                {"attributes": {"type": "Lead"}, "Id": LEAD_ID, "Email": "bad"},
            ],
        },
    )
    assert [r["errors"][0]["statusCode"] for r in updates.json()] == [
        "ALL_OR_NONE_OPERATION_ROLLED_BACK",
        "INVALID_EMAIL_ADDRESS",
    ]
    assert updates.json()[0]["id"] == LEAD_ID
    assert sf_env.sandbox.state.get("Lead", LEAD_ID)["Title"] == title_before
    assert sf_env.sandbox.state.find("Lead", Email="bob@stone.test")  # index restored


def test_partial_success_without_all_or_none(sf_env: SFEnv) -> None:
    results = _create(sf_env, _lead(LastName="Kept"), _lead(LastName=None))
    assert [r["success"] for r in results] == [True, False]
    assert sf_env.sandbox.state.get("Lead", results[0]["id"]) is not None


def test_convert_lead(sf_env: SFEnv) -> None:
    state = sf_env.sandbox.state
    ids = state.convert_lead(LEAD_ID, opportunity_name="Stone - New Business")
    lead = state.get("Lead", LEAD_ID)
    assert lead["IsConverted"] is True and lead["Status"] == "Closed - Converted"
    assert lead["ConvertedDate"] == "2026-03-02"
    assert (
        lead["ConvertedAccountId"],
        lead["ConvertedContactId"],
        lead["ConvertedOpportunityId"],
    ) == (ids["accountId"], ids["contactId"], ids["opportunityId"])
    contact = state.get("Contact", ids["contactId"])
    assert contact["Email"] == "bob@stone.test" and contact["AccountId"] == ids["accountId"]
    assert contact["OwnerId"] == USER_EMEA
    opportunity = state.get("Opportunity", ids["opportunityId"])
    assert opportunity["Name"] == "Stone - New Business"
    assert opportunity["StageName"] == "Prospecting" and opportunity["IsClosed"] is False
    assert state.get("Account", ids["accountId"])["Name"] == "Stone Ltd"
    refused = sf_env.call("PATCH", f"/sobjects/Lead/{LEAD_ID}", json={"Title": "x"})
    assert refused.status_code == 400
    assert refused.json()[0]["errorCode"] == "CANNOT_UPDATE_CONVERTED_LEAD"
    with pytest.raises(RecordError):
        state.convert_lead(LEAD_ID)
    rows = sf_env.call(
        "GET",
        "/query",
        params={"q": "SELECT ConvertedOpportunity.Name FROM Lead WHERE IsConverted = true"},
    ).json()
    assert rows["records"][0]["ConvertedOpportunity"]["Name"] == "Stone - New Business"


def test_convert_lead_into_existing_records_without_opportunity() -> None:
    state = SalesforceState(SandboxClock(START, frozen=True))
    account = state.insert("Account", {"Name": "Acme"})
    contact = state.insert("Contact", {"LastName": "Doe", "AccountId": account})
    lead = state.insert("Lead", {"LastName": "Doe", "Company": "Acme"})
    ids = state.convert_lead(lead, create_opportunity=False, account_id=account, contact_id=contact)
    assert ids == {"accountId": account, "contactId": contact, "opportunityId": None}
    assert state.counts()["Opportunity"] == 0
    with pytest.raises(RecordError):
        state.convert_lead(
            state.insert("Lead", {"LastName": "X", "Company": "Y"}),
            converted_status="Working - Contacted",
        )


def test_state_api_for_the_simulator() -> None:
    state = SalesforceState(SandboxClock(START, frozen=True))
    rep = state.add_user(
        id=None,
        username="rep@x.test",
        email="rep@x.test",
        first_name="R",
        last_name="Ep",
        territory="EMEA",
        team="SDR-EMEA",
    )
    lead = state.insert("Lead", {"LastName": "A", "Company": "B", "Email": "a@b.test"})
    state.update("Lead", lead, {"Status": "Working - Contacted"}, as_user_id=rep)
    stored = state.get("Lead", lead)
    assert stored["LastModifiedById"] == rep and stored["Status"] == "Working - Contacted"
    assert state.find("Lead", Email="A@B.test")[0]["Id"] == lead
    assert state.find("Lead", Status="Working - Contacted")[0]["Id"] == lead
    records = state.records("Lead")
    records[0]["Status"] = "mutated"
    assert state.get("Lead", lead)["Status"] == "Working - Contacted"  # copies
    assert {u["Username"] for u in state.users()} == {"integration@handshake.sandbox", "rep@x.test"}


class _NoScan(dict[str, Any]):
    """A record table that refuses to be scanned: only keyed access is allowed."""

    def _refuse(self, *args: Any) -> Any:
        raise AssertionError("a full scan of the record table during a keyed write")

    values = items = keys = __iter__ = _refuse  # type: ignore[assignment]


def test_collection_upsert_uses_indexes_not_scans(sf_env: SFEnv) -> None:
    state = sf_env.sandbox.state
    for n in range(5000):
        state.load_record(
            "Lead",
            {
                "LastName": f"Bulk{n}",
                "Company": "Big",
                "Email": f"bulk{n}@big.test",
                "Handshake_Id__c": f"hs-{n}",
            },
        )
    for name in ("Lead", "Contact"):
        state._data[name] = _NoScan(state._data[name])
    records = [
        _lead(Handshake_Id__c=f"hs-{n}", Title="Updated", Email=f"bulk{n}@big.test")
        for n in range(100)
    ]
    records += [_lead(Handshake_Id__c=f"new-{n}", Email=f"new{n}@big.test") for n in range(100)]
    started = time.perf_counter()
    answer = sf_env.call(
        "PATCH",
        "/composite/sobjects/Lead/Handshake_Id__c",
        json={"allOrNone": False, "records": records},
    )
    elapsed_ms = (time.perf_counter() - started) * 1000
    results = answer.json()
    assert answer.status_code == 200, answer.text
    assert [r["created"] for r in results] == [False] * 100 + [True] * 100
    assert all(r["success"] for r in results)
    print(f"200-record collection upsert over 5,000 leads: {elapsed_ms:.1f} ms")
    # a SOQL filter pinning an indexed field reads the index, not the table
    found = sf_env.call(
        "GET",
        "/query",
        params={
            "q": "SELECT Id, Title FROM Lead WHERE Email IN ('bulk7@big.test', 'BULK8@big.test') "
            "AND Title = 'Updated' ORDER BY Email"
        },
    ).json()
    assert [r["Id"] for r in found["records"]] == [
        state.find_by_external_id("Lead", "Handshake_Id__c", f"hs-{n}") for n in (7, 8)
    ]
    by_ext = sf_env.call(
        "GET", "/query", params={"q": "SELECT Id FROM Lead WHERE Handshake_Id__c = 'new-3'"}
    ).json()
    assert by_ext["totalSize"] == 1


@pytest.mark.slow
def test_collection_upsert_at_100k_leads_uses_indexes_not_scans(sf_env: SFEnv) -> None:
    state = sf_env.sandbox.state
    for n in range(100_000):
        state.load_record(
            "Lead",
            {
                "LastName": f"Big{n}",
                "Company": "Big",
                "Email": f"big{n}@big.test",
                "Handshake_Id__c": f"big-{n}",
            },
        )
    for name in ("Lead", "Contact"):
        state._data[name] = _NoScan(state._data[name])
    records = [
        _lead(Handshake_Id__c=f"big-{n * 499}", Email=f"big{n * 499}@big.test", Title="Seen")
        for n in range(200)
    ]
    started = time.perf_counter()
    answer = sf_env.call(
        "PATCH", "/composite/sobjects/Lead/Handshake_Id__c", json={"records": records}
    )
    elapsed_ms = (time.perf_counter() - started) * 1000
    assert [r["created"] for r in answer.json()] == [False] * 200
    print(f"200-record collection upsert over 100,000 leads: {elapsed_ms:.1f} ms")
