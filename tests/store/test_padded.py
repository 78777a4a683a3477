"""An expanding IN list is padded to a dozen lengths (its last value repeated), so the driver
prepares a handful of statement texts however the pages fall; the rows found are the same."""

from __future__ import annotations

from pathlib import Path

from connector.store import ContactRecord, Store
from connector.store._base import INSERT_PAGE, in_pages, padded


def test_lengths_are_powers_of_two_up_to_a_page_and_values_are_kept() -> None:
    lengths = {len(padded(list(range(n)))) for n in range(1, INSERT_PAGE + 1)}
    assert lengths == {1, 2, 4, 8, 16, 32, 64, 128, 256, 512, INSERT_PAGE}
    for n in (1, 3, 5, 513, 999):
        values = [f"v{i}" for i in range(n)]
        out = padded(values)
        assert out[:n] == values and set(out) == set(values)
    assert padded([]) == []


def test_pages_cover_the_values_in_order_each_padded_within_its_size() -> None:
    values = list(range(1234))
    pages = list(in_pages(values, 500))
    assert [len(p) for p in pages] == [500, 500, 256]
    assert [v for p in pages for v in dict.fromkeys(p)] == values
    assert list(in_pages([], 500)) == []


def test_padded_reads_find_each_row_once(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'state.db'}")
    store.migrate()
    try:
        store.upsert_contacts([ContactRecord(str(i), f"p{i}@example.com", {}, None, None)
                               for i in range(1, 8)])
        assert store.resolve_contact_ids(["1", "2", "3", "99", "5"]) == {
            "1": "1", "2": "2", "3": "3", "5": "5"}
        assert store.contact_ids_by_email(["P1@example.com", "p3@example.com",
                                           "nobody@example.com"]) == {
            "p1@example.com": "1", "p3@example.com": "3"}
        assert set(store.contact_versions(["1", "2", "4"])) == {"1", "2", "4"}
    finally:
        store.close()
