"""The sandbox: local emulations of the HubSpot and Salesforce APIs, a seeded synthetic data
generator with ground truth, and a sales-team simulator.

    from connector.sandbox import Sandbox
    with Sandbox(contacts=1000, seed=42) as sb:
        print(sb.info())

Names are imported on first use, so `import connector.sandbox.cli` (mounted in the main CLI)
does not load the servers until a command needs them.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from connector.sandbox.base import Fault, FaultPlan, SandboxClock, ServedApp, make_tls
    from connector.sandbox.dataset import GroundTruth, SandboxDataset
    from connector.sandbox.generator import dataset_to_json, generate
    from connector.sandbox.hubspot import HubSpotSandbox
    from connector.sandbox.runtime import Sandbox
    from connector.sandbox.salesforce import SalesforceSandbox, salesforce_session
    from connector.sandbox.simulator import SalesTeamSimulator

__all__ = [
    "Fault",
    "FaultPlan",
    "GroundTruth",
    "HubSpotSandbox",
    "SalesTeamSimulator",
    "SalesforceSandbox",
    "Sandbox",
    "SandboxClock",
    "SandboxDataset",
    "ServedApp",
    "dataset_to_json",
    "generate",
    "make_tls",
    "salesforce_session",
]

_HOMES = {
    "Fault": "connector.sandbox.base",
    "FaultPlan": "connector.sandbox.base",
    "SandboxClock": "connector.sandbox.base",
    "ServedApp": "connector.sandbox.base",
    "make_tls": "connector.sandbox.base",
    "GroundTruth": "connector.sandbox.dataset",
    "SandboxDataset": "connector.sandbox.dataset",
    "dataset_to_json": "connector.sandbox.generator",
    "generate": "connector.sandbox.generator",
    "HubSpotSandbox": "connector.sandbox.hubspot",
    "Sandbox": "connector.sandbox.runtime",
    "SalesforceSandbox": "connector.sandbox.salesforce",
    "salesforce_session": "connector.sandbox.salesforce",
    "SalesTeamSimulator": "connector.sandbox.simulator",
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'connector.sandbox' has no attribute {name!r}")
    value = getattr(importlib.import_module(home), name)
    globals()[name] = value  # later lookups skip this hook
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
