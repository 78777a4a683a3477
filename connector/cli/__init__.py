"""The `handshake` command line: one module per group of commands (config, db, sync, score and
mappings, demo, dlq), mounted on one application by `main`."""

from __future__ import annotations

from connector.cli._app import load_checked_config, report_config_error
from connector.cli.main import app, main

__all__ = ["app", "load_checked_config", "main", "report_config_error"]
