"""`SalesforceSandbox`: the emulated org (state + ASGI app + faults + statistics)."""

from __future__ import annotations

import tempfile
from pathlib import Path

from starlette.types import ASGIApp

from ..base import (
    FaultPlan,
    RequestStats,
    SandboxClock,
    SandboxMiddleware,
    ServedApp,
    TLSFiles,
    make_tls,
)
from ..dataset import SandboxDataset
from . import settings
from .app import AuthConfig, SalesforceApp, route_of
from .bulk import BulkIngest
from .state import SalesforceState

__all__ = ["SalesforceSandbox"]


class SalesforceSandbox:
    """An emulated Salesforce org on loopback.

    `session_id` is a fixed, always-valid session (until `expire_sessions()`), for clients
    built with `session_id=` + `instance_url=`. Other sessions come from the OAuth and SOAP
    logins and end after `session_ttl_seconds` of inactivity on the sandbox clock.
    """

    def __init__(
        self,
        clock: SandboxClock,
        *,
        faults: FaultPlan | None = None,
        api_version: str = settings.DEFAULT_API_VERSION,
        daily_allocation: int = settings.DEFAULT_DAILY_ALLOCATION,
        username: str = "integration@handshake.sandbox",
        password: str = "sandbox-pass",
        security_token: str = "sandboxtoken",
        consumer_key: str = "handshake-sandbox-key",
        jwt_public_key_pem: bytes | None = None,
        session_ttl_seconds: int = settings.SESSION_TTL_SECONDS,
        consumer_secret: str = "handshake-sandbox-secret",
        bulk_batch_allocation: int = settings.DEFAULT_BULK_BATCH_ALLOCATION,
    ) -> None:
        self.clock = clock
        self.api_version = api_version
        self.faults = faults or FaultPlan()
        self.stats = RequestStats()
        self.state = SalesforceState(clock, api_version=api_version, integration_username=username)
        self.auth = AuthConfig(
            username=username,
            password=password,
            security_token=security_token,
            consumer_key=consumer_key,
            consumer_secret=consumer_secret,
            jwt_public_key_pem=jwt_public_key_pem,
            session_ttl_seconds=session_ttl_seconds,
        )
        self.rest = SalesforceApp(
            self.state,
            self.auth,
            daily_allocation=daily_allocation,
            stats=self.stats,
            bulk_batch_allocation=bulk_batch_allocation,
        )
        self.app: ASGIApp = SandboxMiddleware(
            self.rest,
            faults=self.faults,
            stats=self.stats,
            render_fault=self.rest.render_fault,
            route_of=route_of,
            clock=clock,
            carries_subrequests=self.rest.carries_subrequests,
            subrequest_keys=self.rest.subrequest_keys,
        )
        self._tls_dir: tempfile.TemporaryDirectory[str] | None = None
        self.tls: TLSFiles | None = None

    @property
    def session_id(self) -> str:
        """The fixed session (a new one after `expire_sessions()`)."""
        return self.rest.session_id

    @property
    def daily_allocation(self) -> int:
        return self.rest.daily_allocation

    @daily_allocation.setter
    def daily_allocation(self, value: int) -> None:
        self.rest.daily_allocation = value

    @property
    def throttle_style(self) -> str:
        """How an injected "429" fault renders: "concurrency" (403 REQUEST_LIMIT_EXCEEDED,
        ConcurrentPerOrgLongTxn, the default) or "unavailable" (503 SERVER_UNAVAILABLE)."""
        return self.rest.throttle_style

    @throttle_style.setter
    def throttle_style(self, value: str) -> None:
        if value not in ("concurrency", "unavailable"):
            raise ValueError(f"throttle_style must be 'concurrency' or 'unavailable': {value!r}")
        self.rest.throttle_style = value

    def api_usage(self) -> int:
        """API calls counted in the rolling 24 hours."""
        return self.rest.api_usage()

    @property
    def bulk(self) -> BulkIngest:
        """The Bulk API 2.0 ingest jobs and the org's bulk batch usage."""
        return self.rest.bulk

    @property
    def bulk_in_progress_polls(self) -> int:
        """How many status reads a closed bulk job answers InProgress before it is processed
        (0: processed at the first read after UploadComplete)."""
        return self.rest.bulk.in_progress_polls

    @bulk_in_progress_polls.setter
    def bulk_in_progress_polls(self, value: int) -> None:
        self.rest.bulk.in_progress_polls = value

    def issue_session(self, user_id: str | None = None) -> str:
        """A fresh session id for `user_id` (default: the integration user)."""
        return self.rest.issue_session(user_id)

    def load(self, dataset: SandboxDataset) -> None:
        """Load the dataset's users (with territories) and existing Accounts, Contacts and
        Leads (loaded as they are: no validation, duplicate or assignment rule runs)."""
        for user in dataset.sf_users:
            self.state.add_user(
                id=user.id,
                username=user.username,
                email=user.email,
                first_name=user.first_name,
                last_name=user.last_name,
                territory=user.territory,
                team=user.team,
                is_active=user.is_active,
                manager_id=user.manager_id,
            )
        order = {"Account": 0, "Contact": 1, "Lead": 2}
        for seed in sorted(dataset.sf_records, key=lambda r: order.get(r.sobject, 3)):
            self.state.load_record(seed.sobject, dict(seed.fields))

    def serve(self, port: int = 0, tls: TLSFiles | None = None) -> ServedApp:
        """Serve over HTTPS on 127.0.0.1 (a throw-away CA from `make_tls` unless `tls` is
        given; its `ca_bundle` is then `self.tls.ca_bundle`). Returns the started server."""
        if tls is None:
            self._tls_dir = tempfile.TemporaryDirectory(prefix="sf-sandbox-tls-")
            tls = make_tls(Path(self._tls_dir.name))
        self.tls = tls
        return ServedApp(self.app, port=port, tls=tls, date_header=False).start()

    def expire_sessions(self) -> None:
        """End every session: the next call with an old one gets 401 INVALID_SESSION_ID."""
        self.rest.expire_sessions()
