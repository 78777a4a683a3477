"""Handshake: hands HubSpot marketing-qualified leads to Salesforce, and sales outcomes back."""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
