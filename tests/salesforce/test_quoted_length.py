"""The chunking of long queries measures each value's URL-encoded length without encoding it:
the very length `quote_plus` gives, whatever the text."""

from __future__ import annotations

import random
import string
from urllib.parse import quote_plus

from simple_salesforce.format import quote_soql_value

from connector.salesforce.client import quoted_length


def test_quoted_length_is_the_length_quote_plus_gives() -> None:
    rng = random.Random(7)
    alphabet = string.printable + "éü漢\u200b\x00\x7f"
    samples = ["", " ", "+", "%", "~", "a b", "o'brien+tag@example.com", "x\\y", "漢字"]
    samples += ["".join(rng.choice(alphabet) for _ in range(rng.randint(0, 40)))
                for _ in range(5000)]
    for text in samples:
        for value in (text, quote_soql_value(text)):
            assert quoted_length(value) == len(quote_plus(value)), value
