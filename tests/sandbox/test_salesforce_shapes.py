"""Request and response shapes of every emulated endpoint, as documented.

Doc pages checked (REST API Developer Guide unless noted), cited again at each test:
https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/<page>
"""

from __future__ import annotations

import re
from datetime import timedelta
from xml.etree import ElementTree

import requests

from connector.sandbox.salesforce.ids import is_valid_id, to_18

from .sf_fixtures import (
    ACCOUNT_ID,
    CONTACT_ID,
    LEAD_ID,
    PASSWORD,
    TOKEN,
    USER_EMEA,
    USERNAME,
    SFEnv,
    sf_env,
    sf_tls,
)

__all__ = ["sf_env", "sf_tls"]

MISSING_LEAD = to_18("00Q5g0000000zzz")
SYSTEM_FIELDS = {
    "Id",
    "IsDeleted",
    "CreatedDate",
    "CreatedById",
    "LastModifiedDate",
    "LastModifiedById",
    "SystemModstamp",
}
SF_DATETIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}\+0000$")
DESCRIBE_FIELD_KEYS = {
    "name",
    "label",
    "type",
    "length",
    "nillable",
    "createable",
    "updateable",
    "defaultedOnCreate",
    "externalId",
    "unique",
    "picklistValues",
    "restrictedPicklist",
    "referenceTo",
    "relationshipName",
    "custom",
    "soapType",
    "filterable",
    "sortable",
    "idLookup",
}


def _anon(env: SFEnv) -> requests.Session:
    return env.session()


def test_versions_list(sf_env: SFEnv) -> None:
    # resources_versions.htm: [{"label","url","version"}], no authentication needed
    body = _anon(sf_env).get(f"{sf_env.base_url}/services/data/").json()
    assert all(set(v) == {"label", "url", "version"} for v in body)
    assert {"label": "Winter '25", "url": "/services/data/v62.0", "version": "62.0"} in body


def test_resources_by_version(sf_env: SFEnv) -> None:
    # resources_discoveryresource.htm
    body = sf_env.call("GET", "/").json()
    assert body["sobjects"] == "/services/data/v62.0/sobjects"
    assert body["query"] == "/services/data/v62.0/query"
    assert body["limits"] == "/services/data/v62.0/limits"


def test_oauth_password_flow_token_and_errors(sf_env: SFEnv) -> None:
    # https://help.salesforce.com/s/articleView?id=sf.remoteaccess_oauth_username_password_flow.htm
    url = f"{sf_env.base_url}/services/oauth2/token"
    form = {
        "grant_type": "password",
        "client_id": "handshake-sandbox-key",
        "client_secret": "handshake-sandbox-secret",
        "username": USERNAME,
        "password": PASSWORD + TOKEN,
    }
    ok = _anon(sf_env).post(url, data=form)
    assert ok.status_code == 200
    body = ok.json()
    assert set(body) == {
        "access_token",
        "instance_url",
        "id",
        "token_type",
        "issued_at",
        "signature",
    }
    assert body["token_type"] == "Bearer" and body["instance_url"] == sf_env.base_url
    assert body["issued_at"].isdigit()
    assert body["access_token"].startswith("00D")
    for change, error, description in [
        ({"client_id": "nope"}, "invalid_client_id", "client identifier invalid"),
        ({"client_secret": "nope"}, "invalid_client", "invalid client credentials"),
        ({"password": PASSWORD}, "invalid_grant", "authentication failure"),
        (
            {"grant_type": "authorization_code"},
            "unsupported_grant_type",
            "grant type not supported",
        ),
    ]:
        refused = _anon(sf_env).post(url, data={**form, **change})
        assert refused.status_code == 400
        assert refused.json() == {"error": error, "error_description": description}


def test_soap_login_envelope(sf_env: SFEnv) -> None:
    # https://developer.salesforce.com/docs/atlas.en-us.api.meta/api/sforce_api_calls_login.htm
    envelope = (
        '<?xml version="1.0" encoding="utf-8" ?><env:Envelope '
        'xmlns:env="http://schemas.xmlsoap.org/soap/envelope/"><env:Body>'
        '<n1:login xmlns:n1="urn:partner.soap.sforce.com">'
        f"<n1:username>{USERNAME}</n1:username><n1:password>{PASSWORD}{TOKEN}</n1:password>"
        "</n1:login></env:Body></env:Envelope>"
    )
    answer = _anon(sf_env).post(
        f"{sf_env.base_url}/services/Soap/u/62.0",
        data=envelope,
        headers={"content-type": "text/xml", "SOAPAction": "login"},
    )
    assert answer.status_code == 200
    ns = {"p": "urn:partner.soap.sforce.com"}
    result = ElementTree.fromstring(answer.content).find(".//p:result", ns)
    assert result is not None
    assert result.findtext("p:serverUrl", namespaces=ns) == (
        f"{sf_env.base_url}/services/Soap/u/62.0/00D5g000004SBXAEA4"
    )
    assert (result.findtext("p:sessionId", namespaces=ns) or "").startswith("00D")
    assert result.findtext("p:passwordExpired", namespaces=ns) == "false"
    bad = _anon(sf_env).post(
        f"{sf_env.base_url}/services/Soap/u/62.0", data=envelope.replace(TOKEN, "x")
    )
    assert bad.status_code == 500
    assert b"<faultcode>sf:INVALID_LOGIN</faultcode>" in bad.content
    assert b"<sf:exceptionCode>INVALID_LOGIN</sf:exceptionCode>" in bad.content


def test_limits_shape(sf_env: SFEnv) -> None:
    # resources_limits.htm: {"DailyApiRequests": {"Max": int, "Remaining": int}, ...}
    body = sf_env.call("GET", "/limits").json()
    for value in body.values():
        assert set(value) == {"Max", "Remaining"}
        assert isinstance(value["Max"], int) and isinstance(value["Remaining"], int)
    assert "DailyApiRequests" in body and "DailyBulkApiBatches" in body


def test_global_describe(sf_env: SFEnv) -> None:
    # resources_describeGlobal.htm
    body = sf_env.call("GET", "/sobjects").json()
    assert body["encoding"] == "UTF-8" and body["maxBatchSize"] == 200
    by_name = {o["name"]: o for o in body["sobjects"]}
    assert {
        "Lead",
        "Contact",
        "Account",
        "Task",
        "Event",
        "Opportunity",
        "User",
        "LeadStatus",
    } <= set(by_name)
    assert by_name["Lead"]["keyPrefix"] == "00Q" and by_name["Task"]["keyPrefix"] == "00T"
    assert by_name["Lead"]["urls"]["describe"] == "/services/data/v62.0/sobjects/Lead/describe"


def test_sobject_basic_info(sf_env: SFEnv) -> None:
    # resources_sobject_basic_info.htm: {"objectDescribe": {...}, "recentItems": [...]}
    body = sf_env.call("GET", "/sobjects/Lead").json()
    assert body["objectDescribe"]["name"] == "Lead" and body["recentItems"] == []


def _describe(env: SFEnv, name: str) -> dict[str, dict[str, object]]:
    body = env.call("GET", f"/sobjects/{name}/describe").json()
    assert body["name"] == name
    for f in body["fields"]:
        assert DESCRIBE_FIELD_KEYS <= set(f)
        for entry in f["picklistValues"]:
            assert {"value", "label", "active", "defaultValue"} <= set(entry)
    return {f["name"]: f for f in body["fields"]}


def test_describe_every_object_has_system_fields(sf_env: SFEnv) -> None:
    # resources_sobject_describe.htm; system fields: api.meta/api/system_fields.htm
    for name in (
        "Lead",
        "Contact",
        "Account",
        "Task",
        "Event",
        "Opportunity",
        "User",
        "LeadStatus",
    ):
        fields = _describe(sf_env, name)
        assert SYSTEM_FIELDS <= set(fields)
        assert fields["Id"]["type"] == "id" and fields["CreatedDate"]["type"] == "datetime"


def test_describe_lead(sf_env: SFEnv) -> None:
    # object_reference.meta/object_reference/sforce_api_objects_lead.htm
    fields = _describe(sf_env, "Lead")
    for required in ("LastName", "Company"):
        assert fields[required]["nillable"] is False
        assert fields[required]["defaultedOnCreate"] is False
    assert fields["Company"]["length"] == 255
    assert fields["Description"]["length"] == 32000
    assert fields["Email"]["type"] == "email"
    status = fields["Status"]
    assert status["type"] == "picklist" and status["restrictedPicklist"] is True
    assert [(v["value"], v["defaultValue"]) for v in status["picklistValues"]] == [
        ("Open - Not Contacted", True),
        ("Working - Contacted", False),
        ("Closed - Converted", False),
        ("Closed - Not Converted", False),
    ]
    for picklist in ("LeadSource", "Industry", "Rating"):
        assert fields[picklist]["type"] == "picklist" and fields[picklist]["picklistValues"]
    assert fields["Country"]["type"] == "string" and fields["State"]["type"] == "string"
    ext = fields["Handshake_Id__c"]
    assert ext["externalId"] is True and ext["unique"] is True and ext["custom"] is True
    reason = fields["Reason_Not_Converted__c"]
    assert reason["type"] == "picklist" and "No Budget" in [
        v["value"] for v in reason["picklistValues"]
    ]
    assert fields["IsConverted"]["updateable"] is False
    assert fields["ConvertedOpportunityId"]["referenceTo"] == ["Opportunity"]
    assert fields["OwnerId"]["referenceTo"] == ["Group", "User"]


def test_describe_task(sf_env: SFEnv) -> None:
    # object_reference.meta/object_reference/sforce_api_objects_task.htm
    fields = _describe(sf_env, "Task")
    assert fields["Subject"]["length"] == 255 and fields["Description"]["length"] == 32000
    assert fields["TaskSubtype"]["createable"] is True
    assert fields["TaskSubtype"]["updateable"] is False
    assert fields["WhoId"]["referenceTo"] == ["Contact", "Lead"]
    assert fields["WhoId"]["polymorphicForeignKey"] is True
    assert fields["ActivityDate"]["type"] == "date"
    assert {v["value"] for v in fields["Status"]["picklistValues"]} >= {"Not Started", "Completed"}
    assert {v["value"] for v in fields["Priority"]["picklistValues"]} == {"High", "Normal", "Low"}
    assert {v["value"] for v in fields["Type"]["picklistValues"]} >= {"Call", "Email"}
    # no custom external-id field is offered on Task: idempotency cannot rely on one
    assert not [f for f in fields.values() if f["externalId"]]


def test_lead_status_records(sf_env: SFEnv) -> None:
    # object_reference.meta/object_reference/sforce_api_objects_leadstatus.htm
    body = sf_env.call(
        "GET",
        "/query",
        params={
            "q": "SELECT MasterLabel, IsDefault, IsConverted, SortOrder FROM LeadStatus "
            "ORDER BY SortOrder"
        },
    ).json()
    rows = [(r["MasterLabel"], r["IsDefault"], r["IsConverted"]) for r in body["records"]]
    assert rows == [
        ("Open - Not Contacted", True, False),
        ("Working - Contacted", False, False),
        ("Closed - Converted", False, True),
        ("Closed - Not Converted", False, False),
    ]
    assert all(
        r["attributes"]["url"].startswith("/services/data/v62.0/sobjects/LeadStatus/01J")
        for r in body["records"]
    )


def test_create_get_update_delete_single_record(sf_env: SFEnv) -> None:
    # dome_sobject_create.htm, dome_get_field_values.htm, dome_update_fields.htm,
    # dome_delete_record.htm
    created = sf_env.call(
        "POST", "/sobjects/Lead", json={"LastName": "Shape", "Company": "S", "Country": "UK"}
    )
    assert created.status_code == 201
    body = created.json()
    assert set(body) == {"id", "success", "errors"} and body["success"] is True
    lead_id = body["id"]
    assert lead_id.startswith("00Q") and len(lead_id) == 18 and is_valid_id(lead_id)
    record = sf_env.call("GET", f"/sobjects/Lead/{lead_id}").json()
    assert record["attributes"] == {
        "type": "Lead",
        "url": f"/services/data/v62.0/sobjects/Lead/{lead_id}",
    }
    assert SYSTEM_FIELDS | {"OwnerId"} <= set(record)
    assert SF_DATETIME.match(record["CreatedDate"]) and record["IsDeleted"] is False
    assert record["OwnerId"] == USER_EMEA  # the assignment rule: UK -> EMEA
    assert record["CreatedById"].startswith("005")
    assert record["LastModifiedById"] == record["CreatedById"]
    subset = sf_env.call(
        "GET", f"/sobjects/Lead/{lead_id}", params={"fields": "LastName,Company"}
    ).json()
    assert set(subset) == {"attributes", "LastName", "Company"}
    patched = sf_env.call("PATCH", f"/sobjects/Lead/{lead_id}", json={"Title": "CFO"})
    assert patched.status_code == 204 and patched.content == b""
    assert sf_env.call("DELETE", f"/sobjects/Lead/{lead_id}").status_code == 204
    gone = sf_env.call("GET", f"/sobjects/Lead/{lead_id}")
    assert gone.status_code == 404 and gone.json()[0]["errorCode"] == "ENTITY_IS_DELETED"
    missing = sf_env.call("GET", f"/sobjects/Lead/{MISSING_LEAD}")
    assert missing.status_code == 404
    assert missing.json() == [
        {"message": "The requested resource does not exist", "errorCode": "NOT_FOUND"}
    ]


def test_single_record_error_shape(sf_env: SFEnv) -> None:
    # errorcodes.htm: [{"message","errorCode","fields"}]
    answer = sf_env.call("POST", "/sobjects/Lead", json={"Company": "NoName"})
    assert answer.status_code == 400
    assert answer.json() == [
        {
            "message": "Required fields are missing: [LastName]",
            "errorCode": "REQUIRED_FIELD_MISSING",
            "fields": ["LastName"],
        }
    ]
    unknown = sf_env.call(
        "POST", "/sobjects/Lead", json={"LastName": "X", "Company": "Y", "Shoe__c": 1}
    )
    assert unknown.json() == [
        {
            "message": "No such column 'Shoe__c' on sobject of type Lead",
            "errorCode": "INVALID_FIELD",
            "fields": [],
        }
    ]
    bad_type = sf_env.call(
        "POST",
        "/sobjects/Lead",
        json={"LastName": "X", "Company": "Y", "NumberOfEmployees": "many"},
    )
    assert bad_type.status_code == 400
    assert bad_type.json()[0]["errorCode"] == "JSON_PARSER_ERROR"


def test_upsert_by_external_id_shapes(sf_env: SFEnv) -> None:
    # dome_upsert.htm: 201 on create, 200 on update, both {"id","success","errors","created"}
    path = "/sobjects/Lead/Handshake_Id__c/hs-42"
    created = sf_env.call("PATCH", path, json={"LastName": "Ext", "Company": "E"})
    assert created.status_code == 201
    assert created.json() == {
        "id": created.json()["id"],
        "success": True,
        "errors": [],
        "created": True,
    }
    updated = sf_env.call("PATCH", path, json={"Title": "Boss"})
    assert updated.status_code == 200
    assert updated.json() == {
        "id": created.json()["id"],
        "success": True,
        "errors": [],
        "created": False,
    }
    fetched = sf_env.call("GET", path).json()
    assert fetched["Handshake_Id__c"] == "hs-42" and fetched["Title"] == "Boss"
    not_ext = sf_env.call("PATCH", "/sobjects/Lead/Email/a@b.test", json={"LastName": "Q"})
    assert not_ext.status_code == 404 and not_ext.json()[0]["errorCode"] == "NOT_FOUND"


def test_query_shape_with_relationships(sf_env: SFEnv) -> None:
    # resources_query.htm, dome_query.htm
    body = sf_env.call(
        "GET",
        "/query",
        params={"q": "SELECT Id, Name, Email, Account.Name, Owner.Email FROM Contact"},
    ).json()
    assert body["totalSize"] == 1 and body["done"] is True and "nextRecordsUrl" not in body
    row = body["records"][0]
    assert row["attributes"] == {
        "type": "Contact",
        "url": f"/services/data/v62.0/sobjects/Contact/{CONTACT_ID}",
    }
    assert row["Id"] == CONTACT_ID and row["Name"] == "Jane Doe"
    assert row["Account"]["Name"] == "Acme Corp"
    assert row["Account"]["attributes"]["type"] == "Account"
    assert row["Account"]["attributes"]["url"].endswith(ACCOUNT_ID)
    assert row["Owner"]["Email"] == "nina@acme.test"
    assert row["Owner"]["attributes"]["type"] == "User"  # Contact.OwnerId: User only
    lead_row = sf_env.call("GET", "/query", params={"q": "SELECT Owner.Name FROM Lead"}).json()[
        "records"
    ][0]
    # Lead.OwnerId is polymorphic (User or queue): read through the Name object
    assert lead_row["Owner"]["attributes"]["type"] == "Name"
    assert lead_row["Owner"]["attributes"]["url"].endswith(f"/sobjects/User/{USER_EMEA}")
    assert lead_row["Owner"]["Name"] == "Emma Meyer"
    count = sf_env.call("GET", "/query", params={"q": "SELECT COUNT() FROM Lead"}).json()
    assert count == {"totalSize": 1, "done": True, "records": []}
    null_rel = sf_env.call(
        "GET", "/query", params={"q": "SELECT Id, ConvertedAccount.Name FROM Lead"}
    ).json()
    assert null_rel["records"][0]["ConvertedAccount"] is None


def test_query_errors_shape(sf_env: SFEnv) -> None:
    # errorcodes.htm: MALFORMED_QUERY, INVALID_FIELD, INVALID_TYPE
    bad_field = sf_env.call("GET", "/query", params={"q": "SELECT Shoe FROM Lead"})
    assert bad_field.status_code == 400
    body = bad_field.json()
    assert set(body[0]) == {"message", "errorCode"} and body[0]["errorCode"] == "INVALID_FIELD"
    assert "No such column 'Shoe' on entity 'Lead'" in body[0]["message"]
    bad_type = sf_env.call("GET", "/query", params={"q": "SELECT Id FROM Shoe"})
    assert bad_type.json()[0]["errorCode"] == "INVALID_TYPE"
    garbage = sf_env.call("GET", "/query", params={"q": "SELECT Id FROM Lead WHERE"})
    assert garbage.json()[0]["errorCode"] == "MALFORMED_QUERY"


def test_updated_and_deleted_shapes(sf_env: SFEnv) -> None:
    # resources_getupdated.htm, resources_getdeleted.htm
    sf_env.sandbox.state.delete("Lead", LEAD_ID)
    sf_env.clock.advance(timedelta(minutes=2))  # the window ends at the last whole minute
    window = {"start": "2026-02-20T00:00:00+00:00", "end": "2026-03-03T00:00:00+00:00"}
    updated = sf_env.call("GET", "/sobjects/Lead/updated/", params=window).json()
    assert set(updated) == {"ids", "latestDateCovered"}
    assert SF_DATETIME.match(updated["latestDateCovered"])
    deleted = sf_env.call("GET", "/sobjects/Lead/deleted/", params=window).json()
    assert set(deleted) == {"deletedRecords", "earliestDateAvailable", "latestDateCovered"}
    assert deleted["deletedRecords"] == [
        {"id": LEAD_ID, "deletedDate": "2026-03-02T09:00:00.000+0000"}
    ]


def test_collection_create_update_upsert_retrieve_delete_shapes(sf_env: SFEnv) -> None:
    # resources_composite_sobjects_collections_create.htm / _update / _upsert / _retrieve /
    # _delete: one result per record, in order
    created = sf_env.call(
        "POST",
        "/composite/sobjects",
        json={
            "allOrNone": False,
            "records": [
                {"attributes": {"type": "Account"}, "Name": "Coll Inc"},
                {"attributes": {"type": "Lead"}, "LastName": "Coll", "Company": "C"},
                {"attributes": {"type": "Lead"}, "Company": "No Last Name"},
            ],
        },
    )
    assert created.status_code == 200
    results = created.json()
    assert [set(r) for r in results] == [{"id", "success", "errors"}] * 2 + [{"success", "errors"}]
    assert results[0]["id"].startswith("001") and results[1]["id"].startswith("00Q")
    assert results[2] == {
        "success": False,
        "errors": [
            {
                "statusCode": "REQUIRED_FIELD_MISSING",
                "message": "Required fields are missing: [LastName]",
                "fields": ["LastName"],
            }
        ],
    }
    updated = sf_env.call(
        "PATCH",
        "/composite/sobjects",
        json={
            "records": [
                {"attributes": {"type": "Lead"}, "Id": results[1]["id"], "Title": "X"},
                {"attributes": {"type": "Lead"}, "Title": "no id"},
            ]
        },
    )
    assert updated.json() == [
        {"id": results[1]["id"], "success": True, "errors": []},
        {
            "success": False,
            "errors": [
                {
                    "statusCode": "MISSING_ARGUMENT",
                    "message": "Id not specified in an update call",
                    "fields": [],
                }
            ],
        },
    ]
    upserted = sf_env.call(
        "PATCH",
        "/composite/sobjects/Contact/Handshake_Id__c",
        json={
            "records": [
                {"attributes": {"type": "Contact"}, "Handshake_Id__c": "c1", "LastName": "One"}
            ]
        },
    )
    assert upserted.json() == [
        {"id": upserted.json()[0]["id"], "success": True, "errors": [], "created": True}
    ]
    by_id = sf_env.call("PATCH", "/composite/sobjects/Contact/Id", json={"records": []})
    assert by_id.status_code == 400 and by_id.json()[0]["errorCode"] == "INVALID_FIELD"
    fetched = sf_env.call(
        "GET",
        "/composite/sobjects/Lead",
        params={"ids": f"{results[1]['id']},{MISSING_LEAD}", "fields": "Title"},
    ).json()
    assert fetched[0] == {
        "attributes": {
            "type": "Lead",
            "url": f"/services/data/v62.0/sobjects/Lead/{results[1]['id']}",
        },
        "Title": "X",
    }
    assert fetched[1] is None
    posted = sf_env.call(
        "POST", "/composite/sobjects/Lead", json={"ids": [results[1]["id"]], "fields": ["LastName"]}
    ).json()
    assert posted[0]["LastName"] == "Coll"
    deleted = sf_env.call(
        "DELETE",
        "/composite/sobjects",
        params={"ids": f"{results[0]['id']},bogus", "allOrNone": "false"},
    )
    assert deleted.json() == [
        {"id": results[0]["id"], "success": True, "errors": []},
        {
            "success": False,
            "errors": [
                {"statusCode": "MALFORMED_ID", "message": "malformed id bogus", "fields": []}
            ],
        },
    ]


def test_every_rest_response_carries_the_usage_header(sf_env: SFEnv) -> None:
    # headers_api_usage.htm
    for method, path in [
        ("GET", "/limits"),
        ("GET", "/sobjects"),
        ("GET", f"/sobjects/Lead/{MISSING_LEAD}"),
        ("POST", "/sobjects/Lead"),
    ]:
        answer = sf_env.call(method, path, json={} if method == "POST" else None)
        assert re.fullmatch(r"api-usage=\d+/100000", answer.headers["Sforce-Limit-Info"])


def test_sandbox_inspection_routes(sf_env: SFEnv) -> None:
    sf_env.call("GET", "/limits")
    stats = _anon(sf_env).get(f"{sf_env.base_url}/__sandbox__/stats").json()
    assert stats["api_usage"] == 1
    assert stats["records"]["Lead"] == 1 and stats["records"]["Contact"] == 1
    assert stats["requests"]["by_route"] == {"/services/data/vXX.X/limits": 1}
    leads = _anon(sf_env).get(f"{sf_env.base_url}/__sandbox__/records/Lead").json()
    assert [r["Id"] for r in leads] == [LEAD_ID]
    again = _anon(sf_env).get(f"{sf_env.base_url}/__sandbox__/stats").json()
    assert again["api_usage"] == 1  # inspection is neither counted nor recorded
    assert again["requests"]["total"] == 1
