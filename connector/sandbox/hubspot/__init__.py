"""The emulated HubSpot API (contacts, properties, owners, lists, legacy email events and
form submissions, web analytics events, marketing events), served by `HubSpotSandbox`."""

from __future__ import annotations

from .app import HubSpotSandbox
from .errors import HubSpotApiError
from .ratelimit import RateLimiter
from .settings import TIERS, RateLimits
from .state import ContactRecord, HubSpotState

__all__ = [
    "TIERS",
    "ContactRecord",
    "HubSpotApiError",
    "HubSpotSandbox",
    "HubSpotState",
    "RateLimiter",
    "RateLimits",
]
