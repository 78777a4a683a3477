"""A page's answer is freed as soon as the page is: httpx ties an answer and its stream to each
other, and during a stage the cyclic collector runs rarely (connector/runtime/run.py), so an
answer left tied kept its body (hundreds of kilobytes a page) resident, and a pull's memory grew
with the number of pages."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import httpx
import pytest

from connector.hubspot.client import HubSpotClient
from connector.hubspot.policy import hubspot_policy

PAGE = {"results": [{"id": str(n), "properties": {"email": f"c{n}@example.com"}}
                    for n in range(500)],
        "paging": {"next": {"after": "500"}}}


@pytest.fixture
def collector_off() -> Iterator[None]:
    """The cyclic collector stopped: only reference counting frees anything."""
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def test_a_page_answer_is_freed_with_the_page(collector_off: None) -> None:
    answers: list[weakref.ref[httpx.Response]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        answer = httpx.Response(200, json=PAGE)
        answers.append(weakref.ref(answer))
        return answer

    client = HubSpotClient("https://api.hubapi.test", "token", hubspot_policy(),
                           transport=httpx.MockTransport(handler))
    try:
        for _ in range(3):
            body, _when = client.request("GET", "/crm/v3/objects/contacts", describe="a page")
            assert len(body["results"]) == 500
            del body
        assert len(answers) == 3
        assert [ref() for ref in answers] == [None, None, None]
    finally:
        client.close()
