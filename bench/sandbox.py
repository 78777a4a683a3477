"""Benchmark of the sandbox servers at full size (25,000 contacts).

Prints plain `name: value unit` lines: dataset generation and load times, then the median and
p95 time to serve a 100-contact list page (`GET /crm/v3/objects/contacts?limit=100&after=...`)
and a 200-record sObject Collections upsert of Leads by `Handshake_Id__c`, each over CALLS calls
on one kept-alive httpx client.

    .venv/bin/python bench/sandbox.py [--contacts 25000] [--calls 50]
"""

from __future__ import annotations

import argparse
import statistics
import time
from datetime import UTC, datetime

import httpx

from connector.sandbox.generator import generate
from connector.sandbox.runtime import Sandbox

API_VERSION = "62.0"
CONTACTS_PATH = "/crm/v3/objects/contacts"
UPSERT_PATH = f"/services/data/v{API_VERSION}/composite/sobjects/Lead/Handshake_Id__c"
PAGE_SIZE = 100
BATCH_SIZE = 200
START = datetime(2026, 11, 1, tzinfo=UTC)


def _p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


def _report(name: str, samples: list[float]) -> None:
    print(f"{name}_median: {statistics.median(samples) * 1000:.2f} ms")
    print(f"{name}_p95: {_p95(samples) * 1000:.2f} ms")


def bench_hubspot(sb: Sandbox, calls: int) -> list[float]:
    """Time `calls` consecutive list pages, restarting from the first page when exhausted."""
    info = sb.info()["hubspot"]
    headers = {"Authorization": f"Bearer {info['access_token']}"}
    samples: list[float] = []
    with httpx.Client(base_url=info["base_url"], headers=headers, timeout=30) as client:
        client.get(CONTACTS_PATH, params={"limit": 1}).raise_for_status()  # open the connection
        after: str | None = None
        for _ in range(calls):
            params: dict[str, str | int] = {"limit": PAGE_SIZE}
            if after:
                params["after"] = after
            began = time.perf_counter()
            resp = client.get(CONTACTS_PATH, params=params)
            samples.append(time.perf_counter() - began)
            resp.raise_for_status()
            body = resp.json()
            if len(body["results"]) != PAGE_SIZE:
                raise RuntimeError(f"short page: {len(body['results'])} contacts")
            after = body.get("paging", {}).get("next", {}).get("after")
    return samples


def bench_salesforce(sb: Sandbox, calls: int) -> list[float]:
    """Time `calls` upserts of 200 Leads; odd calls update the records the even ones created."""
    assert sb.salesforce is not None
    info = sb.info()["salesforce"]
    headers = {"Authorization": f"Bearer {sb.salesforce.session_id}"}
    samples: list[float] = []
    with httpx.Client(base_url=info["instance_url"], headers=headers, verify=info["ca_bundle"],
                      timeout=30) as client:
        client.get(f"/services/data/v{API_VERSION}/limits").raise_for_status()
        for call in range(calls):
            batch = call // 2
            records = [
                {
                    "attributes": {"type": "Lead"},
                    "Handshake_Id__c": f"bench-{batch}-{i}",
                    "LastName": f"Bench{i}",
                    "Company": "Bench Corp",
                    "Email": f"bench.{batch}.{i}@bench-corp.com",
                    "Title": "Director of IT" if call % 2 else "IT Manager",
                    "Country": "Germany",
                }
                for i in range(BATCH_SIZE)
            ]
            began = time.perf_counter()
            resp = client.patch(UPSERT_PATH, json={"allOrNone": False, "records": records})
            samples.append(time.perf_counter() - began)
            resp.raise_for_status()
            results = resp.json()
            failed = [r for r in results if not r["success"]]
            if failed:
                raise RuntimeError(f"upsert refused {len(failed)} records: {failed[0]}")
            if any(r["created"] for r in results) == bool(call % 2):
                raise RuntimeError("upsert did not alternate create and update")
    return samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--contacts", type=int, default=25_000)
    parser.add_argument("--calls", type=int, default=50)
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()

    began = time.perf_counter()
    generate(args.seed, args.contacts, now=START)
    print(f"generate_{args.contacts}_contacts: {time.perf_counter() - began:.2f} s")

    began = time.perf_counter()
    with Sandbox(contacts=args.contacts, seed=args.seed, start=START) as sb:
        print(f"sandbox_start_{args.contacts}_contacts: {time.perf_counter() - began:.2f} s")
        _report("hubspot_list_page_100", bench_hubspot(sb, args.calls))
        _report("salesforce_upsert_200", bench_salesforce(sb, args.calls))


if __name__ == "__main__":
    main()
