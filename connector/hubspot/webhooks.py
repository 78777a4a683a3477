"""HubSpot webhook requests: the v3 signature check, with the SDK's signature helper.

HubSpot signs each webhook request with the app's client secret: base64 of HMAC-SHA256 over
method + URI + body + timestamp (`X-HubSpot-Signature-v3`, timestamp in ms in
`X-HubSpot-Request-Timestamp`), and receivers must refuse timestamps older than 5 minutes.
The URI is the full URL HubSpot called (scheme, host, path and query), as HubSpot saw it.
"""

from __future__ import annotations

import hmac
from datetime import UTC, datetime, timedelta

from hubspot.utils.signature import Signature  # type: ignore[import-untyped]

__all__ = ["MAX_AGE", "SIGNATURE_HEADER", "TIMESTAMP_HEADER", "sign_v3", "verify_v3"]

SIGNATURE_HEADER = "X-HubSpot-Signature-v3"
TIMESTAMP_HEADER = "X-HubSpot-Request-Timestamp"
MAX_AGE = timedelta(minutes=5)


def sign_v3(secret: str, *, method: str, uri: str, body: bytes, timestamp: str) -> str:
    """The v3 signature HubSpot would send for this request."""
    return str(Signature.get_signature(secret, body.decode("utf-8"), "v3", http_uri=uri,
                                       http_method=method, timestamp=timestamp))


def verify_v3(secret: str, *, method: str, uri: str, body: bytes, signature: str | None,
              timestamp: str | None, now: datetime, max_age: timedelta = MAX_AGE) -> str | None:
    """None when the request is HubSpot's, else why not (no request data in it).

    The timestamp is checked against `now` (the product's clock; the SDK's own check reads the
    wall clock): older than `max_age`, or as far in the future, is refused."""
    if not signature or not timestamp:
        return f"no {SIGNATURE_HEADER} or {TIMESTAMP_HEADER} header"
    try:
        sent = datetime.fromtimestamp(int(timestamp) / 1000, UTC)
    except (ValueError, OverflowError, OSError):
        return f"{TIMESTAMP_HEADER} is not a time in milliseconds"
    if abs(now - sent) > max_age:
        return (f"the request timestamp is {abs(now - sent).total_seconds():.0f} s away from "
                f"now (more than {max_age.total_seconds():.0f} s: a replay, or a clock off)")
    try:
        expected = sign_v3(secret, method=method, uri=uri, body=body, timestamp=timestamp)
    except UnicodeDecodeError:
        return "the body is not UTF-8"
    if not hmac.compare_digest(expected, signature):
        return ("the signature does not match (a wrong app secret, or a proxy changed the URL "
                "HubSpot called: see the README on X-Forwarded-Proto and Host)")
    return None
