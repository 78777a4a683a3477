"""The daemon (`handshake run`): the stages on a schedule, one active instance at a time, and
its HTTP listener.

    service.Daemon          leadership (the `leader` lease), the scheduler, signals, the
                            instance record
    health.Health           what /healthz answers; basic_metrics, a minimal /metrics
    jobs.JOBS               one APScheduler job a stage (pull, score, push, pullback, sla,
                            dlq-retry), each through the stage runtime
    web.create_app          the Starlette app: /healthz, /metrics, extra routes (webhooks)
    web.WebServer           uvicorn in a thread
    webhooks.webhook_route  POST /webhooks/hubspot: HubSpot's signed notifications, queued
    metrics.render_metrics  /metrics from the store and the run records
    mappings.MappingWatcher live mapping edits: the last good files keep running
"""

from __future__ import annotations

from connector.daemon.health import Health, basic_metrics, mapping_problems
from connector.daemon.jobs import CYCLE, JOBS, StageJob
from connector.daemon.service import INSTANCE_PREFIX, Daemon, instance_key
from connector.daemon.web import WebHooks, WebServer, create_app

__all__ = [
    "CYCLE",
    "INSTANCE_PREFIX",
    "JOBS",
    "Daemon",
    "Health",
    "StageJob",
    "WebHooks",
    "WebServer",
    "basic_metrics",
    "create_app",
    "instance_key",
    "mapping_problems",
]
