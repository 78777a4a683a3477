"""Killed at any point and re-run, the pull stores exactly what an undisturbed run stores."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

from connector.sandbox import Sandbox
from connector.store import Store
from tests.pull.helpers import assert_matches_ground_truth, sandbox_toml, snapshot, unthrottle

ROOT = Path(__file__).resolve().parents[2]
# Requests served (counted by the sandbox) after which each run is killed, counted from each
# run's start (each resumes where the last stopped): a whole first pull is ~36 requests now that
# page views are read portal-wide, so the kills are small steps through it.
KILL_AFTER = (1, 3, 5, 4, 3)


def start_pull(config: Path, token: str) -> subprocess.Popen[bytes]:
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HANDSHAKE_HUBSPOT_TOKEN": token,
           "HANDSHAKE_SF_USERNAME": "u", "HANDSHAKE_SF_PASSWORD": "p",
           "HANDSHAKE_SF_SECURITY_TOKEN": "t"}
    return subprocess.Popen([sys.executable, "-m", "connector.cli", "sync", "pull", "-c", str(config)],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def test_sigkill_at_five_points_then_rerun_equals_an_undisturbed_run(tmp_path: Path) -> None:
    with Sandbox(contacts=120, seed=9) as sb:
        unthrottle(sb)
        sb.clock.advance(timedelta(hours=1))
        hub = sb.hubspot
        assert hub is not None
        token = sb.info()["hubspot"]["access_token"]

        calm = tmp_path / "calm.toml"
        calm.write_text(sandbox_toml(sb, tmp_path / "calm.db"))
        done = start_pull(calm, token)
        assert done.wait(timeout=120) == 0, done.stderr.read() if done.stderr else ""
        calls_whole_run = hub.stats.total

        crashy = tmp_path / "crashy.toml"
        crashy.write_text(sandbox_toml(sb, tmp_path / "crashy.db"))
        killed = 0
        for after in KILL_AFTER:
            assert after < calls_whole_run
            base = hub.stats.total
            proc = start_pull(crashy, token)
            while proc.poll() is None and hub.stats.total - base < after:
                time.sleep(0.0005)
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
                killed += 1
            proc.wait(timeout=60)
        assert killed == len(KILL_AFTER)
        final = start_pull(crashy, token)
        assert final.wait(timeout=120) == 0, final.stderr.read() if final.stderr else ""

        calm_store = Store(f"sqlite:///{tmp_path / 'calm.db'}")
        crashy_store = Store(f"sqlite:///{tmp_path / 'crashy.db'}")
        assert_matches_ground_truth(crashy_store, sb)
        assert snapshot(crashy_store) == snapshot(calm_store)
