"""`bench/run.py`: every figure of issue #13 printed with its target, and its pieces."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench import run as bench


def _figures(**changes: Any) -> dict[str, Any]:
    """One size's figures, every target met unless `changes` say otherwise."""
    f: dict[str, Any] = {
        "hubspot_calls_per_1000_contacts": 120.0, "hubspot_calls_ratio_to_minimum": 1.0,
        "pull_cpu_ms_per_contact": 0.5, "incremental_pull_cpu_ms": 20.0,
        "score_contacts_per_second": 20_000.0, "push_mqls_per_second": 3_000.0,
        "demo_wall_seconds": 20.0, "whole_peak_rss_mb": 500.0, "handshake_peak_rss_mb": 200.0,
        "first_pull_equals_ground_truth": "yes", "mqls_equal_sales_ready": "yes",
        "handoff_checks_pass": "yes", "contacts": 9_700, "problems": [],
    }
    return {**f, **changes}


def test_report_judges_each_figure_against_its_target() -> None:
    out = bench.report({10_000: _figures(push_mqls_per_second=61.0, demo_wall_seconds=31.0)})
    figures = out["sizes"]["10000"]["figures"]
    assert set(figures) == set(bench.FIGURES)
    missed = {k for k, fig in figures.items() if not fig["met"]}
    assert missed == {"push_mqls_per_second", "demo_wall_seconds"}
    assert out["ok"] is False and out["correct"] is True
    assert bench.RATIO_KEY not in out  # one size: no ratio


def test_demo_wall_target_scales_with_size_and_ratio_takes_the_two_largest() -> None:
    out = bench.report({
        1_000: _figures(handshake_peak_rss_mb=100.0, demo_wall_seconds=20.0),
        10_000: _figures(handshake_peak_rss_mb=150.0),
        100_000: _figures(handshake_peak_rss_mb=210.0, demo_wall_seconds=290.0),
    })
    assert not out["sizes"]["1000"]["figures"]["demo_wall_seconds"]["met"]  # 3 s at 1,000
    assert out["sizes"]["100000"]["figures"]["demo_wall_seconds"]["met"]  # 5 min at 100,000
    ratio = out[bench.RATIO_KEY]
    assert ratio["value"] == pytest.approx(1.4) and ratio["met"] is False


def test_a_failed_check_makes_the_run_incorrect() -> None:
    out = bench.report({1_000: _figures(handoff_checks_pass="no")})
    assert out["correct"] is False


@pytest.mark.slow
def test_run_prints_every_figure_and_checks_correctness() -> None:
    """Two small sizes end to end: the sandbox served apart, the worker, the checks."""
    out = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "run.py"), "--contacts", "150", "300", "--json"],
        check=False, cwd=ROOT, capture_output=True, text=True, timeout=300,
        env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert out.returncode == 0, out.stderr[-2000:]
    result = json.loads(out.stdout)
    assert set(result["sizes"]) == {"150", "300"}
    for size in result["sizes"].values():
        figures = size["figures"]
        assert set(figures) == set(bench.FIGURES)
        assert all(figures[k]["value"] == "yes" for k in bench.FIGURES
                   if k not in bench.FIGURES_NUMERIC), size["info"]["problems"]
        assert all(figures[k]["value"] > 0 for k in bench.FIGURES_NUMERIC)
        # the sandbox's memory and CPU are measured in its own process
        assert size["info"]["sandbox_peak_rss_mb"] > 0
        assert figures["whole_peak_rss_mb"]["value"] > figures["handshake_peak_rss_mb"]["value"]
        assert size["info"]["minimum_calls"] <= size["info"]["hubspot_calls"]
    assert result[bench.RATIO_KEY]["value"] > 0
    assert result["correct"] is True


def test_sandbox_serve_options_lift_limits_and_move_the_clock() -> None:
    from connector.sandbox.cli import _tune
    from connector.sandbox.runtime import Sandbox

    start = datetime(2026, 11, 1, tzinfo=UTC)
    with Sandbox(contacts=20, seed=3, start=start, frozen_clock=True) as sb:
        assert sb.hubspot is not None
        before = sb.hubspot.limiter.limits
        _tune(sb, advance_hours=1.0, unthrottled=True)
        assert sb.clock.now() == start + timedelta(hours=1)
        assert sb.hubspot.limiter.limits.window_max > before.window_max * 1000
        assert sb.hubspot.limiter.limits.daily > before.daily
