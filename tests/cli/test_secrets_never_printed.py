"""Known secret values never appear in any output, log line, repr or error message."""

from __future__ import annotations

import io
import logging
from pathlib import Path

from connector.config import load_config
from connector.logs import bind_run, redact, register_secrets, setup_logging
from tests.cli.test_config_check import EXAMPLE, run_cli

SECRETS = {
    "HANDSHAKE_HUBSPOT_TOKEN": "pat-na1-SECRET-hubspot-0123456789",
    "HANDSHAKE_SF_USERNAME": "integration@example.com",
    "HANDSHAKE_SF_PASSWORD": "SECRET-sf-password-987",
    "HANDSHAKE_SF_SECURITY_TOKEN": "SECRETsecuritytoken42",
    "HANDSHAKE_SF_CLIENT_SECRET": "SECRET-client-secret-555",
    "HANDSHAKE_SF_SESSION_ID": "00DSECRETSESSION!AQ0AQ",
}
SECRET_VALUES = [v for k, v in SECRETS.items() if k != "HANDSHAKE_SF_USERNAME"]


def assert_clean(*texts: str) -> None:
    for text in texts:
        for secret in SECRET_VALUES:
            assert secret not in text, f"secret leaked: {secret!r} in:\n{text}"


def test_commands_print_no_secrets(tmp_path: Path) -> None:
    log_file = tmp_path / "handshake.log"
    cfg = tmp_path / "c.toml"
    cfg.write_text(
        EXAMPLE.read_text()
        .replace('file = ""', f'file = "{log_file}"')
        .replace('database_url = "sqlite:///handshake.db"',
                 f'database_url = "sqlite:///{tmp_path / "s.db"}"')
    )
    bad = tmp_path / "bad.toml"
    bad.write_text('[hubspot]\nbase_url = "nope"\ntoken = "x"\n')
    outputs = []
    for args in [
        ("--log-level", "DEBUG", "config", "check", "--config", str(cfg)),
        ("--log-json", "config", "check", "--config", str(cfg)),
        ("config", "show", "--config", str(cfg)),
        ("config", "show", "--json", "--config", str(cfg)),
        ("config", "check", "--config", str(bad)),
        ("--log-json", "db", "upgrade", "--config", str(cfg)),
        ("db", "status", "--config", str(cfg)),
    ]:
        result = run_cli(*args, env=SECRETS, cwd=tmp_path)
        outputs += [result.stdout, result.stderr]
    assert log_file.exists() and "configuration is valid" in log_file.read_text()
    assert '"run_id"' in "".join(outputs)  # the JSON lines were really produced
    assert_clean(*outputs, log_file.read_text())


def test_config_repr_and_dump_hide_secrets() -> None:
    config = load_config(EXAMPLE, SECRETS)
    assert config.secrets.hubspot_token is not None
    assert config.secrets.hubspot_token.get_secret_value() == SECRETS["HANDSHAKE_HUBSPOT_TOKEN"]
    assert_clean(repr(config), str(config), repr(config.secrets), str(config.model_dump()))


def test_log_lines_redact_registered_secrets_and_token_shapes() -> None:
    register_secrets(SECRET_VALUES)
    stream = io.StringIO()
    setup_logging(level="DEBUG", json_lines=True, stream=stream)
    log = logging.getLogger("connector.test")
    with bind_run("run-123"):
        log.info("calling with %s", SECRETS["HANDSHAKE_HUBSPOT_TOKEN"])
        log.warning("headers", extra={"headers": {"Authorization": "Bearer abcdefghijklmnop"}})
        try:
            raise RuntimeError(f"login failed for password={SECRETS['HANDSHAKE_SF_PASSWORD']}")
        except RuntimeError:
            log.exception("boom")
    text = stream.getvalue()
    assert text.count('"run_id": "run-123"') == 3
    assert "abcdefghijklmnop" not in text
    assert_clean(text)
    assert redact("url?access_token=zzzzzzzzzz&x=1") == "url?access_token=***&x=1"
