"""Pull: HubSpot → state store. Contacts and their engagement, incremental, nothing missed."""

from __future__ import annotations

from connector.pull.base import PullContext
from connector.pull.properties import needed_properties
from connector.pull.runner import STREAMS, backfill, pull, pull_contacts

__all__ = ["STREAMS", "PullContext", "backfill", "needed_properties", "pull",
           "pull_contacts"]
