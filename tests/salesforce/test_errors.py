"""The classification table of per-record errors: who must act, in which order, and what the
engine needs from each (duplicates, retriability)."""

from __future__ import annotations

from connector.errors import Actor, RecordRejected, SkippableError
from connector.salesforce import REJECTIONS, classify_record_errors


def _err(code: str, message: str = "m", fields: list[str] | None = None) -> dict[str, object]:
    return {"statusCode": code, "message": message, "fields": fields or []}


def test_every_table_row_names_a_fix() -> None:
    assert all(r.why and r.fix for r in REJECTIONS.values())
    assert {r.actor for r in REJECTIONS.values()} == {Actor.ADMIN, Actor.DATA, Actor.WAIT}


def test_an_admin_error_decides_over_a_data_error_on_the_same_record() -> None:
    rejected = classify_record_errors(
        [
            _err("REQUIRED_FIELD_MISSING", "Required fields are missing: [LastName]", ["LastName"]),
            _err("INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST", "bad value", ["Status"]),
        ],
        sobject="Lead",
        record_key="hs-1",
    )
    assert isinstance(rejected, RecordRejected) and isinstance(rejected, SkippableError)
    assert rejected.code == "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST"
    assert rejected.actor is Actor.ADMIN
    assert rejected.fields == ("LastName", "Status")
    assert rejected.details["codes"] == [
        "REQUIRED_FIELD_MISSING",
        "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
    ]
    assert str(rejected).startswith("salesforce: Lead hs-1: ")
    assert not rejected.retriable


def test_an_unknown_code_goes_to_an_admin() -> None:
    rejected = classify_record_errors([_err("BRAND_NEW_CODE", "what")], sobject="Task")
    assert (rejected.code, rejected.actor) == ("BRAND_NEW_CODE", Actor.ADMIN)
    assert "what" in str(rejected)
    empty = classify_record_errors(None, sobject="Lead")
    assert empty.code == "UNKNOWN" and empty.actor is Actor.ADMIN


def test_a_bad_owner_is_a_routing_fix_for_an_admin() -> None:
    owner = classify_record_errors(
        [_err("INVALID_CROSS_REFERENCE_KEY", "invalid cross reference id", ["OwnerId"])],
        sobject="Lead",
    )
    assert owner.actor is Actor.ADMIN and "routing.toml" in owner.fix
    who = classify_record_errors(
        [_err("INVALID_CROSS_REFERENCE_KEY", "invalid cross reference id", ["WhoId"])],
        sobject="Task",
    )
    assert who.actor is Actor.DATA


def test_rolled_back_records_are_retriable_and_nobodys_fault() -> None:
    rolled = classify_record_errors(
        [_err("ALL_OR_NONE_OPERATION_ROLLED_BACK")], sobject="Lead", record_key="k"
    )
    assert rolled.actor is Actor.WAIT and rolled.retriable


def test_duplicate_matches_are_read_from_every_match_result() -> None:
    errors = [
        {
            "statusCode": "DUPLICATES_DETECTED",
            "message": "Use one of these records?",
            "fields": [],
            "duplicateResult": {
                "allowSave": True,
                "duplicateRule": "Standard_Rule_for_Leads_with_Duplicate_Contacts",
                "matchResults": [
                    {
                        "entityType": "Lead",
                        "rule": "Standard_Lead_Match_Rule_v1_0",
                        "matchRecords": [
                            {"record": {"attributes": {"type": "Lead"}, "Id": "00Q000000000001AAA"}}
                        ],
                    },
                    {
                        "entityType": "Contact",
                        "rule": "Standard_Contact_Match_Rule_v1_1",
                        "matchRecords": [
                            {"record": {"Id": "003000000000001AAA"}},
                            {"record": {"Id": "003000000000001AAA"}},
                            {"record": None},
                        ],
                    },
                ],
            },
        }
    ]
    rejected = classify_record_errors(errors, sobject="Lead")
    assert [(d.sobject, d.id, d.rule) for d in rejected.duplicates] == [
        ("Lead", "00Q000000000001AAA", "Standard_Lead_Match_Rule_v1_0"),
        ("Contact", "003000000000001AAA", "Standard_Contact_Match_Rule_v1_1"),
    ]
    assert rejected.details["duplicates"] == [
        {"sobject": "Lead", "id": "00Q000000000001AAA"},
        {"sobject": "Contact", "id": "003000000000001AAA"},
    ]


def test_the_reason_names_the_field_its_value_its_source_and_the_fix() -> None:
    rejected = classify_record_errors(
        [_err("FIELD_CUSTOM_VALIDATION_EXCEPTION", "Phone must be a phone number", ["Phone"])],
        sobject="Lead",
        record_key="hs-7",
        values={"LastName": "Lee", "Phone": "call after 5pm"},
    )
    assert rejected.actor is Actor.ADMIN
    assert rejected.reason == (
        "Lead.Phone = 'call after 5pm': a validation rule in Salesforce refused the record "
        "(FIELD_CUSTOM_VALIDATION_EXCEPTION: Phone must be a phone number) — fix: make the "
        "value pass the rule: transform Lead.Phone in mappings/fields.toml (e.g. `matches` "
        "leaves out what the rule refuses) or relax the rule in Salesforce, then run "
        "`handshake dlq retry`; or correct the value in HubSpot"
    )
    assert str(rejected) == f"salesforce: Lead hs-7: {rejected.reason}"
    assert rejected.reason_with({"Phone": ["phone"]}).startswith(
        "Lead.Phone = 'call after 5pm' (HubSpot phone): a validation rule")
    unknown = classify_record_errors(
        [_err("INVALID_FIELD", "No such column 'MobilPhone' on sobject of type Lead",
              ["MobilPhone"])], sobject="Lead")
    assert unknown.fix.startswith(
        "correct or remove the [[fields]] entry for Lead.MobilPhone in mappings/fields.toml")
    fieldless = classify_record_errors([_err("FIELD_CUSTOM_VALIDATION_EXCEPTION", "No tests")],
                                       sobject="Lead")
    assert fieldless.reason.startswith("a validation rule in Salesforce refused the record "
                                       "(FIELD_CUSTOM_VALIDATION_EXCEPTION: No tests)")
    assert "transform the field in" in fieldless.fix
