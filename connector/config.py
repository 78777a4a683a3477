"""Configuration: one TOML file for settings, environment variables for secrets.

`load_config(path, env)` validates everything at once and raises `ConfigError` with one
`ConfigProblem` per mistake (file, key, what is wrong, how to fix it). Secrets are `SecretStr`:
they never appear in reprs, logs or error messages.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlparse

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
)

from connector.defaults import default_mapping
from connector.errors import ConfigError, ConfigProblem

__all__ = [
    "CONFIG_ENV",
    "AlertSettings",
    "Config",
    "DaemonSettings",
    "HubSpotSettings",
    "PushSettings",
    "RuntimeSettings",
    "SalesforceAuth",
    "SalesforceSettings",
    "Secrets",
    "load_config",
    "resolve_config_path",
]

CONFIG_ENV = "HANDSHAKE_CONFIG"

# Environment variables that carry secrets; nothing secret is ever read from the TOML file.
ENV_HUBSPOT_TOKEN = "HANDSHAKE_HUBSPOT_TOKEN"
ENV_SF_USERNAME = "HANDSHAKE_SF_USERNAME"
ENV_SF_PASSWORD = "HANDSHAKE_SF_PASSWORD"
ENV_SF_SECURITY_TOKEN = "HANDSHAKE_SF_SECURITY_TOKEN"
ENV_SF_CONSUMER_KEY = "HANDSHAKE_SF_CONSUMER_KEY"
ENV_SF_PRIVATE_KEY_FILE = "HANDSHAKE_SF_PRIVATE_KEY_FILE"
ENV_SF_CLIENT_ID = "HANDSHAKE_SF_CLIENT_ID"
ENV_SF_CLIENT_SECRET = "HANDSHAKE_SF_CLIENT_SECRET"
ENV_SF_SESSION_ID = "HANDSHAKE_SF_SESSION_ID"
# The HubSpot app's client secret: signs the webhooks the daemon receives (optional).
ENV_HUBSPOT_APP_SECRET = "HANDSHAKE_HUBSPOT_APP_SECRET"
SECRET_ENV_VARS = (
    ENV_HUBSPOT_TOKEN,
    ENV_HUBSPOT_APP_SECRET,
    ENV_SF_PASSWORD,
    ENV_SF_SECURITY_TOKEN,
    ENV_SF_CLIENT_SECRET,
    ENV_SF_SESSION_ID,
)


def _http_url(value: str) -> str:
    parsed = urlparse(value)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise ValueError("not an http(s) URL")
    return value.rstrip("/")


HttpUrl = Annotated[str, AfterValidator(_http_url)]
PositiveMinutes = Annotated[float, Field(gt=0)]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class HubSpotTier(StrEnum):
    FREE = "free"
    STARTER = "starter"
    PROFESSIONAL = "professional"
    ENTERPRISE = "enterprise"
    CAPACITY_PACK = "capacity_pack"


class HubSpotSettings(_Section):
    base_url: HttpUrl = "https://api.hubapi.com"
    # "v3" for /crm/v3/... paths or a date version such as "2026-03" for /crm/objects/2026-03/...
    api_version: str = Field("v3", pattern=r"^(v3|\d{4}-\d{2})$")
    tier: HubSpotTier = HubSpotTier.PROFESSIONAL
    # Share of the tier's 10-second burst and daily quota Handshake may use (others share the app).
    rate_limit_share: float = Field(0.9, gt=0, le=1)
    search_requests_per_second: int = Field(5, ge=1, le=10)
    timeout_seconds: float = Field(30, gt=0)
    max_attempts: int = Field(6, ge=1, le=20)
    # HubSpot resets the daily limit at midnight in the account's time zone.
    account_timezone: str = "UTC"


class SalesforceAuth(StrEnum):
    PASSWORD = "password"
    JWT = "jwt"
    CLIENT_CREDENTIALS = "client_credentials"
    SESSION = "session"


class SalesforceSettings(_Section):
    instance_url: HttpUrl
    login_url: HttpUrl = "https://login.salesforce.com"
    api_version: str = Field("62.0", pattern=r"^\d{2,3}\.0$")
    auth: SalesforceAuth = SalesforceAuth.PASSWORD
    # Share of the org's rolling 24-hour API allocation Handshake may spend; other integrations
    # need the rest.
    daily_allocation_share: float = Field(0.25, gt=0, le=1)
    max_concurrent_requests: int = Field(10, ge=1, le=25)
    timeout_seconds: float = Field(60, gt=0)
    max_attempts: int = Field(6, ge=1, le=20)
    # PEM bundle to verify Salesforce's TLS certificate with (the sandbox's CA); empty = system CAs.
    ca_bundle: str = ""
    external_id_field: str = Field("Handshake_Id__c", pattern=r"^[A-Za-z][A-Za-z0-9_]*__c$")
    # A push with more Lead creates than this (a backfill) sends them through Bulk API 2.0.
    bulk_threshold: int = Field(2000, ge=0)


class ScheduleSettings(_Section):
    # Minutes between the daemon's runs of each stage (`handshake run`); fractions allowed.
    pull_interval_minutes: PositiveMinutes = 2
    score_interval_minutes: PositiveMinutes = 2
    push_interval_minutes: PositiveMinutes = 2
    pullback_interval_minutes: PositiveMinutes = 5
    sla_interval_minutes: PositiveMinutes = 15
    dlq_interval_minutes: PositiveMinutes = 60
    misfire_grace_seconds: int = Field(300, gt=0)
    # Records HubSpot changes while a pull runs can be missed without re-reading a margin.
    lookback_minutes: PositiveMinutes = 10


class PushSettings(_Section):
    # The handed-off lead's marketing activity in Salesforce: "digest" (one Task listing the
    # activities not sent yet), "each" (one completed Task per activity), "none" (hand-off only).
    activity_tasks: Literal["digest", "each", "none"] = "digest"
    # An MQL whose email is already a Salesforce Contact never becomes a Lead. "notify": its
    # hand-off and activity Tasks go on the Contact, for the Contact's owner; "ignore": nothing
    # is written for it (sales already works the account its own way).
    existing_contact: Literal["notify", "ignore"] = "notify"


_CUSTOM_FIELD = r"^([A-Za-z][A-Za-z0-9_]*__c)?$"


class PullbackSettings(_Section):
    # The org's custom picklists saying why a Lead was not converted and why an Opportunity
    # was lost (Salesforce has no standard fields for either); empty = not read.
    lead_reason_field: str = Field("", pattern=_CUSTOM_FIELD)
    loss_reason_field: str = Field("", pattern=_CUSTOM_FIELD)


class RuntimeSettings(_Section):
    """How stage runs share the state store: the per-stage lease and clean stops."""

    # A second run of a stage waits this long for the first to finish, then exits 4 (busy).
    lease_wait_seconds: float = Field(30, ge=0, le=3600)
    # A lease not renewed for this long (its process died) is free for the next run.
    lease_ttl_seconds: float = Field(60, ge=5, le=3600)
    # After SIGINT/SIGTERM the batch in flight gets this long before the run is cut short.
    stop_timeout_seconds: float = Field(8, gt=0, le=60)


def _listen(value: str) -> str:
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError("not host:port (port 0-65535; 0 = any free port)")
    return value


Listen = Annotated[str, AfterValidator(_listen)]


class DaemonSettings(_Section):
    """The daemon (`handshake run`): its HTTP listener and its leadership lease."""

    # Where /healthz, /metrics and the webhooks are served; port 0 = any free port (logged).
    listen: Listen = "127.0.0.1:8787"
    # The active daemon renews its leadership this often (a third of it); a standby takes
    # over at most this long after the active one died (at once on the same machine).
    leader_ttl_seconds: float = Field(15, ge=5, le=300)
    # /healthz answers 503 when no cycle succeeded for this long.
    health_max_age_minutes: PositiveMinutes = 30
    # Webhook bodies larger than this are refused (413).
    webhook_max_body_bytes: int = Field(1_000_000, ge=1024, le=100_000_000)


class StateSettings(_Section):
    # SQLite file by default; postgresql+psycopg://user@host/db for production or several instances.
    database_url: str = Field("sqlite:///handshake.db", pattern=r"^(sqlite|postgresql)(\+\w+)?://")


class MappingPaths(_Section):
    fields: str = "mappings/fields.toml"
    scoring: str = "mappings/scoring.toml"
    lifecycle: str = "mappings/lifecycle.toml"
    routing: str = "mappings/routing.toml"
    sla: str = "mappings/sla.toml"


def _optional_http_url(value: str) -> str:
    return _http_url(value) if value else value


class AlertSettings(_Section):
    # POST each alert as JSON here as well as the Task; empty = Tasks only. Which activities
    # alert is set in the scoring file's [alerts] section.
    webhook_url: Annotated[str, AfterValidator(_optional_http_url)] = ""
    timeout_seconds: float = Field(10, gt=0)
    # Attempts per alert before it becomes a dead letter (retried in the next cycles).
    max_attempts: int = Field(4, ge=1, le=20)


class LoggingSettings(_Section):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    json_lines: bool = False
    file: str = ""


class Secrets(BaseModel):
    """Secret values read from the environment; every one a SecretStr."""

    model_config = ConfigDict(frozen=True)

    hubspot_token: SecretStr | None = None
    sf_username: str | None = None
    sf_password: SecretStr | None = None
    sf_security_token: SecretStr | None = None
    sf_consumer_key: str | None = None
    sf_private_key_file: str | None = None
    sf_client_id: str | None = None
    sf_client_secret: SecretStr | None = None
    sf_session_id: SecretStr | None = None
    hubspot_app_secret: SecretStr | None = None

    def values(self) -> list[str]:
        """Every secret value, for the log redactor."""
        out = []
        for name in type(self).model_fields:
            value = getattr(self, name)
            if isinstance(value, SecretStr) and value.get_secret_value():
                out.append(value.get_secret_value())
        return out


class Config(_Section):
    hubspot: HubSpotSettings
    salesforce: SalesforceSettings
    schedule: ScheduleSettings = ScheduleSettings()
    push: PushSettings = PushSettings()
    pullback: PullbackSettings = PullbackSettings()
    state: StateSettings = StateSettings()
    runtime: RuntimeSettings = RuntimeSettings()
    daemon: DaemonSettings = DaemonSettings()
    mappings: MappingPaths = MappingPaths()
    alerts: AlertSettings = AlertSettings()
    logging: LoggingSettings = LoggingSettings()
    secrets: Secrets = Field(default_factory=Secrets, exclude=True)
    source: str = Field("", exclude=True)

    def mapping_path(self, name: str) -> Path:
        """A mapping file's path; relative paths are taken from the config file's folder.

        With no path configured for it and no `mappings/` folder beside the config, the
        default Handshake ships (an installed wheel's package data) is used."""
        raw = Path(getattr(self.mappings, name))
        path = raw if raw.is_absolute() or not self.source else Path(self.source).parent / raw
        if name not in self.mappings.model_fields_set and not path.parent.is_dir():
            shipped = default_mapping(name)
            if shipped is not None:
                return shipped
        return path


# What to tell the admin for each pydantic error type.
_FIXES: dict[str, str] = {
    "extra_forbidden": "remove the key or check its spelling against config.example.toml",
    "missing": "add it; config.example.toml shows a commented example",
    "greater_than": "use a positive number",
    "greater_than_equal": "use a larger number",
    "less_than_equal": "use a smaller number",
    "string_pattern_mismatch": "use the format shown in config.example.toml",
    "enum": "use one of the allowed values",
    "literal_error": "use one of the allowed values",
    "value_error": "use a full URL such as https://api.hubapi.com",
}


def _fix_for(err: Mapping[str, Any]) -> str:
    kind = str(err.get("type", ""))
    if kind == "value_error" and tuple(err.get("loc", ()))[-1:] == ("listen",):
        return 'use host:port, such as "127.0.0.1:8787" (port 0: any free port)'
    if kind in _FIXES:
        return _FIXES[kind]
    if kind.endswith(("_type", "_parsing")):
        return "use a value of the expected type (see config.example.toml)"
    return "see config.example.toml"


def _problems_from(exc: ValidationError, file: str) -> list[ConfigProblem]:
    problems = []
    for err in exc.errors(include_url=False, include_input=False):
        key = ".".join(str(p) for p in err["loc"])
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "missing" and len(err["loc"]) == 1:
            msg = f"required section [{key}] is missing"
        elif err["type"] == "extra_forbidden":
            msg = "unknown key"
        problems.append(ConfigProblem(file, key, msg, _fix_for(err)))
    return problems


def _read_secrets(env: Mapping[str, str]) -> Secrets:
    def get(name: str) -> str | None:
        value = env.get(name, "").strip()
        return value or None

    return Secrets(
        hubspot_token=get(ENV_HUBSPOT_TOKEN),
        sf_username=get(ENV_SF_USERNAME),
        sf_password=get(ENV_SF_PASSWORD),
        sf_security_token=get(ENV_SF_SECURITY_TOKEN),
        sf_consumer_key=get(ENV_SF_CONSUMER_KEY),
        sf_private_key_file=get(ENV_SF_PRIVATE_KEY_FILE),
        sf_client_id=get(ENV_SF_CLIENT_ID),
        sf_client_secret=get(ENV_SF_CLIENT_SECRET),
        sf_session_id=get(ENV_SF_SESSION_ID),
        hubspot_app_secret=get(ENV_HUBSPOT_APP_SECRET),
    )


_REQUIRED_ENV: dict[SalesforceAuth, tuple[str, ...]] = {
    SalesforceAuth.PASSWORD: (ENV_SF_USERNAME, ENV_SF_PASSWORD, ENV_SF_SECURITY_TOKEN),
    SalesforceAuth.JWT: (ENV_SF_USERNAME, ENV_SF_CONSUMER_KEY, ENV_SF_PRIVATE_KEY_FILE),
    SalesforceAuth.CLIENT_CREDENTIALS: (ENV_SF_CLIENT_ID, ENV_SF_CLIENT_SECRET),
    SalesforceAuth.SESSION: (ENV_SF_SESSION_ID,),
}


def _secret_problems(
    raw_auth: Any, env: Mapping[str, str], require_secrets: bool
) -> list[ConfigProblem]:
    if not require_secrets:
        return []
    problems = []
    if not env.get(ENV_HUBSPOT_TOKEN, "").strip():
        problems.append(
            ConfigProblem(
                "environment",
                ENV_HUBSPOT_TOKEN,
                "HubSpot access token is not set",
                f"export {ENV_HUBSPOT_TOKEN} with a private-app or OAuth access token",
            )
        )
    try:
        auth = SalesforceAuth(raw_auth or SalesforceAuth.PASSWORD)
    except ValueError:
        return problems  # the bad value itself is reported by the schema
    for name in _REQUIRED_ENV[auth]:
        if not env.get(name, "").strip():
            problems.append(
                ConfigProblem(
                    "environment",
                    name,
                    f"needed for salesforce.auth = {auth.value!r} but not set",
                    f"export {name}, or choose another salesforce.auth",
                )
            )
    key_file = env.get(ENV_SF_PRIVATE_KEY_FILE, "").strip()
    if auth is SalesforceAuth.JWT and key_file and not Path(key_file).is_file():
        problems.append(
            ConfigProblem(
                "environment",
                ENV_SF_PRIVATE_KEY_FILE,
                f"file {key_file} does not exist",
                "point it at the PEM private key of the connected app's certificate",
            )
        )
    return problems


def resolve_config_path(path: str | Path | None, env: Mapping[str, str] | None = None) -> Path:
    """`--config` wins, then $HANDSHAKE_CONFIG, then ./handshake.toml."""
    env = os.environ if env is None else env
    if path:
        return Path(path)
    if env.get(CONFIG_ENV):
        return Path(env[CONFIG_ENV])
    return Path("handshake.toml")


def load_config(
    path: str | Path,
    env: Mapping[str, str] | None = None,
    *,
    require_secrets: bool = True,
) -> Config:
    """Read, validate and return the configuration, or raise `ConfigError` listing every problem."""
    env = os.environ if env is None else env
    file = str(path)
    try:
        raw = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(
            [
                ConfigProblem(
                    file,
                    "(file)",
                    "file not found",
                    f"pass --config PATH or set {CONFIG_ENV}; copy config.example.toml to start",
                )
            ]
        ) from None
    except OSError as exc:  # a directory, a file this user may not read
        raise ConfigError(
            [ConfigProblem(file, "(file)", f"cannot be read: {exc.strerror or exc}",
                           "pass --config with a readable TOML file")]
        ) from None
    except UnicodeDecodeError:
        raise ConfigError(
            [ConfigProblem(file, "(file)", "is not UTF-8 text", "save the file as UTF-8 TOML")]
        ) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(
            [ConfigProblem(file, "(syntax)", f"not valid TOML: {exc}", "fix the TOML syntax")]
        ) from None

    problems: list[ConfigProblem] = []
    config: Config | None = None
    try:
        config = Config.model_validate(raw)
    except ValidationError as exc:
        problems.extend(_problems_from(exc, file))
    raw_sf = raw.get("salesforce")
    raw_auth = raw_sf.get("auth") if isinstance(raw_sf, dict) else None
    problems.extend(_secret_problems(raw_auth, env, require_secrets))
    if problems or config is None:
        raise ConfigError(problems)
    return config.model_copy(update={"secrets": _read_secrets(env), "source": file})
