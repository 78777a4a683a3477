"""HubSpot's error bodies, as the v3 APIs send them (`Error` schema of the specs, plus the
`status: "error"` field every live answer carries) and the 429 shape of the usage guidelines."""

from __future__ import annotations

import uuid
from typing import Any

from . import settings

__all__ = ["HubSpotApiError", "error_body", "rate_limit_body"]


class HubSpotApiError(Exception):
    """Raised by state or handlers; the app renders it as HubSpot's JSON error."""

    def __init__(
        self,
        status: int,
        category: str,
        message: str,
        *,
        errors: list[dict[str, Any]] | None = None,
        context: dict[str, list[str]] | None = None,
        sub_category: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.category = category
        self.message = message
        self.errors = errors
        self.context = context
        self.sub_category = sub_category

    def body(self) -> dict[str, Any]:
        """The JSON body HubSpot sends for this error."""
        return error_body(
            self.category,
            self.message,
            errors=self.errors,
            context=self.context,
            sub_category=self.sub_category,
        )


def error_body(
    category: str,
    message: str,
    *,
    errors: list[dict[str, Any]] | None = None,
    context: dict[str, list[str]] | None = None,
    sub_category: str | None = None,
) -> dict[str, Any]:
    """`{"status":"error","message","correlationId","category",...}` with a fresh correlation id."""
    body: dict[str, Any] = {
        "status": "error",
        "message": message,
        "correlationId": str(uuid.uuid4()),
        "category": category,
    }
    if sub_category:
        body["subCategory"] = sub_category
    if errors is not None:
        body["errors"] = errors
    if context is not None:
        body["context"] = context
    return body


def rate_limit_body(policy: str) -> dict[str, Any]:
    """The 429 body of the usage guidelines for `policy` (TEN_SECONDLY_ROLLING, SECONDLY, DAILY)."""
    message = {
        settings.POLICY_TEN_SECONDLY: settings.MSG_TEN_SECONDLY,
        settings.POLICY_SECONDLY: settings.MSG_SECONDLY,
        settings.POLICY_DAILY: settings.MSG_DAILY,
    }[policy]
    return {
        "status": "error",
        "message": message,
        "errorType": "RATE_LIMIT",
        "correlationId": str(uuid.uuid4()),
        "policyName": policy,
    }


def not_found(message: str = "resource not found") -> HubSpotApiError:
    """404 OBJECT_NOT_FOUND."""
    return HubSpotApiError(404, "OBJECT_NOT_FOUND", message)


def validation(message: str, **kwargs: Any) -> HubSpotApiError:
    """400 VALIDATION_ERROR."""
    return HubSpotApiError(400, "VALIDATION_ERROR", message, **kwargs)
