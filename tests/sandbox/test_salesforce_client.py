"""simple-salesforce 1.12, unchanged, against the emulated org over verified HTTPS."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import jwt
import pytest
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from simple_salesforce import Salesforce
from simple_salesforce.exceptions import SalesforceAuthenticationFailed, SalesforceMalformedRequest

from connector.sandbox.base import TLSFiles, make_tls
from connector.sandbox.salesforce import salesforce_session

from .sf_fixtures import (
    LEAD_ID,
    PASSWORD,
    START,
    TOKEN,
    USERNAME,
    SFEnv,
    make_env,
    sf_env,
    sf_tls,
)

__all__ = ["sf_env", "sf_tls"]


def test_soap_login_routes_every_call_to_the_sandbox(sf_env: SFEnv) -> None:
    sf = sf_env.sf()
    assert sf.base_url == f"{sf_env.base_url}/services/data/v62.0/"
    assert sf.session_id != sf_env.sandbox.session_id
    assert sf.query("SELECT Id FROM Lead")["totalSize"] == 1


def test_tls_is_verified_against_the_sandbox_ca(sf_env: SFEnv) -> None:
    with requests.Session() as plain:
        plain.trust_env = False  # the system CA bundle only: the sandbox CA is unknown to it
        with pytest.raises(requests.exceptions.SSLError):
            plain.get(f"{sf_env.base_url}/services/data/")
        assert plain.get(f"{sf_env.base_url}/services/data/", verify=sf_env.ca).status_code == 200


def test_routing_session_rejects_a_server_signed_by_another_ca(
    sf_env: SFEnv, tmp_path: Path
) -> None:
    stranger = make_tls(tmp_path / "other-ca")
    with (
        salesforce_session(sf_env.base_url, stranger.ca_bundle) as session,
        pytest.raises(requests.exceptions.SSLError),
    ):
        session.get("https://login.salesforce.com/services/data/")


def test_bad_password_is_refused_with_the_soap_fault(sf_env: SFEnv) -> None:
    with pytest.raises(SalesforceAuthenticationFailed) as info:
        Salesforce(
            username=USERNAME, password="wrong", security_token=TOKEN, session=sf_env.session()
        )
    assert info.value.code == "INVALID_LOGIN"
    assert "Invalid username, password, security token" in info.value.auth_message


def test_lead_create_get_update_upsert_describe(sf_env: SFEnv) -> None:
    sf = sf_env.sf()
    created = sf.Lead.create(
        {
            "FirstName": "Ada",
            "LastName": "King",
            "Company": "Engines",
            "Email": "ada@engines.test",
            "Country": "Germany",
        }
    )
    assert created["success"] is True and created["id"].startswith("00Q")
    lead = sf.Lead.get(created["id"])
    assert lead["Status"] == "Open - Not Contacted"
    assert lead["Name"] == "Ada King"
    assert lead["attributes"]["type"] == "Lead"
    assert (
        sf.Lead.update(created["id"], {"Title": "CTO"}, headers={"Sforce-Auto-Assign": "FALSE"})
        == 204
    )
    assert sf.Lead.get(created["id"])["Title"] == "CTO"
    assert sf.Lead.upsert("Handshake_Id__c/hs-1", {"LastName": "Lovelace", "Company": "AE"}) == 201
    assert sf.Lead.upsert("Handshake_Id__c/hs-1", {"Title": "Analyst"}) == 200
    by_ext = sf.Lead.get_by_custom_id("Handshake_Id__c", "hs-1")
    assert by_ext["Title"] == "Analyst" and by_ext["LastName"] == "Lovelace"
    fields = {f["name"]: f for f in sf.Lead.describe()["fields"]}
    assert fields["Handshake_Id__c"]["externalId"] is True
    assert fields["Status"]["picklistValues"][0]["value"] == "Open - Not Contacted"


def test_query_and_query_all_page_by_next_records_url(sf_env: SFEnv) -> None:
    sf = sf_env.sf()
    for n in range(450):
        sf_env.sandbox.state.insert("Lead", {"LastName": f"L{n:03d}", "Company": "Bulk"})
    headers = {"Sforce-Query-Options": "batchSize=200"}
    first = sf.query(
        "SELECT Id, LastName FROM Lead WHERE Company = 'Bulk' ORDER BY LastName", headers=headers
    )
    assert first["totalSize"] == 450 and first["done"] is False and len(first["records"]) == 200
    assert first["nextRecordsUrl"].startswith("/services/data/v62.0/query/01g")
    assert first["nextRecordsUrl"].endswith("-200")
    everything = sf.query_all(
        "SELECT Id, LastName FROM Lead WHERE Company = 'Bulk' ORDER BY LastName", headers=headers
    )
    names = [r["LastName"] for r in everything["records"]]
    assert names == [f"L{n:03d}" for n in range(450)]
    sf_env.sandbox.state.delete("Lead", everything["records"][0]["Id"])
    assert sf.query("SELECT COUNT() FROM Lead WHERE Company = 'Bulk'")["totalSize"] == 449
    assert (
        sf.query_all(
            "SELECT Id FROM Lead WHERE Company = 'Bulk' AND IsDeleted = true", include_deleted=True
        )["totalSize"]
        == 1
    )


def test_collections_through_restful(sf_env: SFEnv) -> None:
    sf = sf_env.sf()
    records = [
        {
            "attributes": {"type": "Lead"},
            "LastName": f"C{n}",
            "Company": "Coll",
            "Handshake_Id__c": f"c-{n}",
        }
        for n in range(3)
    ]
    created = sf.restful(
        "composite/sobjects", method="POST", json={"allOrNone": False, "records": records}
    )
    assert [r["success"] for r in created] == [True, True, True]
    updated = sf.restful(
        "composite/sobjects",
        method="PATCH",
        json={"records": [{"attributes": {"type": "Lead"}, "Id": created[0]["id"], "Title": "VP"}]},
    )
    assert updated == [{"id": created[0]["id"], "success": True, "errors": []}]
    upserted = sf.restful(
        "composite/sobjects/Lead/Handshake_Id__c",
        method="PATCH",
        json={
            "records": [
                {"attributes": {"type": "Lead"}, "Handshake_Id__c": "c-1", "Title": "Dir"},
                {
                    "attributes": {"type": "Lead"},
                    "Handshake_Id__c": "c-9",
                    "LastName": "New",
                    "Company": "Coll",
                },
            ]
        },
    )
    assert [(r["success"], r["created"]) for r in upserted] == [(True, False), (True, True)]
    fetched = sf.restful(
        "composite/sobjects/Lead",
        params={"ids": f"{created[0]['id']},{created[1]['id']}", "fields": "Title,LastName"},
    )
    assert [r["Title"] for r in fetched] == ["VP", "Dir"]
    deleted = sf.restful("composite/sobjects", method="DELETE", params={"ids": created[2]["id"]})
    assert deleted == [{"id": created[2]["id"], "success": True, "errors": []}]


def test_limits_and_usage_header(sf_env: SFEnv) -> None:
    sf = sf_env.sf()
    limits = sf.limits()
    assert limits["DailyApiRequests"]["Max"] == 100_000
    assert limits["DailyApiRequests"]["Remaining"] == 100_000 - 1
    assert sf.api_usage["api-usage"].used == 1
    assert sf.api_usage["api-usage"].total == 100_000


def test_expired_session_is_renewed_by_simple_salesforce(sf_env: SFEnv) -> None:
    sf = sf_env.sf()
    old = sf.session_id
    sf_env.sandbox.expire_sessions()
    assert sf.query("SELECT Id FROM Lead")["totalSize"] == 1  # it re-logs in on 401
    assert sf.session_id != old


def test_session_id_and_instance_url_after_an_oauth_token_call(sf_env: SFEnv) -> None:
    with requests.Session() as session:
        # requests lets REQUESTS_CA_BUNDLE in the environment override session.verify
        session.trust_env = False
        session.verify = sf_env.ca
        token = session.post(
            f"{sf_env.base_url}/services/oauth2/token",
            data={
                "grant_type": "password",
                "client_id": "handshake-sandbox-key",
                "client_secret": "handshake-sandbox-secret",
                "username": USERNAME,
                "password": PASSWORD + TOKEN,
            },
        ).json()
        sf = Salesforce(
            instance_url=token["instance_url"],
            session_id=token["access_token"],
            session=session,
            version="62.0",
        )
        assert sf.Lead.get(LEAD_ID)["Email"] == "bob@stone.test"


def test_updated_and_deleted_through_simple_salesforce(sf_env: SFEnv) -> None:
    sf = sf_env.sf()
    created = sf.Lead.create({"LastName": "Rep", "Company": "R"})["id"]
    sf.Lead.delete(LEAD_ID)
    sf_env.clock.advance(timedelta(minutes=5))
    start, end = START - timedelta(days=1), sf_env.clock.now()
    assert sf.Lead.updated(start, end)["ids"] == [created]
    deleted = sf.Lead.deleted(start, end)
    assert [d["id"] for d in deleted["deletedRecords"]] == [LEAD_ID]


def test_fixed_session_id(sf_env: SFEnv) -> None:
    sf = Salesforce(
        instance_url=sf_env.base_url,
        session_id=sf_env.sandbox.session_id,
        session=sf_env.session(),
        version="62.0",
    )
    assert sf.query("SELECT Id FROM Contact")["totalSize"] == 1


def test_jwt_bearer_flow(sf_tls: TLSFiles) -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    env = make_env(sf_tls, jwt_public_key_pem=public)
    try:
        sf = Salesforce(
            username=USERNAME,
            consumer_key="handshake-sandbox-key",
            privatekey=private,
            session=env.session(),
            version="62.0",
        )
        assert sf.query("SELECT Id FROM Lead")["totalSize"] == 1
        other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        forged = jwt.encode(
            {
                "iss": "handshake-sandbox-key",
                "sub": USERNAME,
                "aud": "https://login.salesforce.com",
                "exp": 4102444800,
            },
            other,
            algorithm="RS256",
        )
        answer = env.session().post(
            f"{env.base_url}/services/oauth2/token",
            data={"grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer", "assertion": forged},
        )
        assert answer.status_code == 400
        assert answer.json() == {"error": "invalid_grant", "error_description": "invalid assertion"}
    finally:
        env.close()


def test_client_credentials_flow(sf_env: SFEnv) -> None:
    sf = Salesforce(
        consumer_key="handshake-sandbox-key",
        consumer_secret="handshake-sandbox-secret",
        domain="acme.my",
        session=sf_env.session(),
        version="62.0",
    )
    assert sf.query("SELECT Id FROM Lead")["totalSize"] == 1
    with pytest.raises(SalesforceAuthenticationFailed) as info:
        Salesforce(
            consumer_key="handshake-sandbox-key",
            consumer_secret="nope",
            domain="acme.my",
            session=sf_env.session(),
        )
    assert info.value.code == "invalid_client"


def test_malformed_soql_raises_the_client_error(sf_env: SFEnv) -> None:
    sf = sf_env.sf()
    with pytest.raises(SalesforceMalformedRequest) as info:
        sf.query("SELECT Id FROM Lead WHERE SystemModstamp > 2026-01-31T10:00:00.123456+00:00")
    assert info.value.content[0]["errorCode"] == "MALFORMED_QUERY"
