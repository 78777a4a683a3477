"""`handshake demo`: a whole sync cycle against the in-process sandbox, and the checks of
Handshake's results against the sandbox's ground truth (`connector.demo.verify`).

    from connector.demo import run_demo
    summary = run_demo(contacts=2000, seed=42)
"""

from __future__ import annotations

# `sandbox_config` and `SandboxTime` serve the tests and benchmarks that build their own
# sandbox runs.
from connector.demo.cycle import (
    MAPPINGS_DIR,
    NEXT_STEPS,
    SandboxTime,
    run_demo,
    sandbox_config,
)

__all__ = ["MAPPINGS_DIR", "NEXT_STEPS", "SandboxTime", "run_demo", "sandbox_config"]
