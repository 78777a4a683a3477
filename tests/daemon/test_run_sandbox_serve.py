"""The README's two-terminal demo: `handshake sandbox serve --json > sandbox.json` in one,
`handshake run --sandbox sandbox.json` in the other (here `--once`, one cycle of every stage):
the daemon syncs the served sandbox over real HTTP with the shipped mapping files."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from connector.store import Store

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow


def test_run_against_a_served_sandbox(tmp_path: Path) -> None:
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONPATH": str(ROOT),
           "HOME": str(tmp_path)}
    serve = subprocess.Popen([sys.executable, "-m", "connector.cli", "sandbox", "serve", "--json",
                              "--contacts", "150"], cwd=tmp_path, env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    try:
        assert serve.stdout is not None
        line = serve.stdout.readline()
        assert line, "the sandbox printed nothing"
        (tmp_path / "sandbox.json").write_bytes(line)
        done = subprocess.run([sys.executable, "-m", "connector.cli", "run", "--sandbox",
                               "sandbox.json", "--once"], check=False, cwd=tmp_path, env=env,
                              capture_output=True, timeout=600)
        said = done.stdout.decode() + done.stderr.decode()
        assert done.returncode in (0, 3), said[-3000:]
        assert "Traceback" not in said
        store = Store(f"sqlite:///{tmp_path / 'handshake-sandbox.db'}")
        try:
            pushes = [r for r in store.runs(stage="push") if r.status in ("ok", "degraded")]
            assert pushes and pushes[0].counts.get("leads.created", 0) > 0, \
                [(r.stage, r.status, r.counts) for r in store.runs()]
        finally:
            store.close()
        info = json.loads(line)
        assert info["hubspot"]["app_secret"]  # for `--webhook-url`: the daemon verifies with it
    finally:
        serve.send_signal(signal.SIGTERM)
        serve.wait(timeout=30)


def test_a_file_that_is_not_the_sandbox_s_exits_2(tmp_path: Path) -> None:
    (tmp_path / "sandbox.json").write_text("{}")
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-m", "connector.cli", "run", "--sandbox",
                           "sandbox.json", "--once"], check=False, cwd=tmp_path, env=env,
                          capture_output=True, timeout=120)
    assert done.returncode == 2
    said = done.stderr.decode()
    assert "sandbox serve --json" in said and "Traceback" not in said
