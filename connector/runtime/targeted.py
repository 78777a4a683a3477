"""The webhooks' targeted sync: the contacts HubSpot's webhooks queued, pulled, scored and
pushed at once (pull -> score -> push of just those ids), so a lead reaches its rep seconds
after the HubSpot change instead of at the next poll.

    result = run_contacts_sync(config)     # the daemon calls it when `on_queued` fires

Three recorded runs, each under the lease of the stage whose data it writes, so a targeted
sync and the scheduled stages never write the same thing at the same time:

    webhook-pull   (lease "pull")   take a batch from the queue, read those contacts by id
                                    (100 a call), their page views and new form submissions,
                                    store them through the pull's own code, mark the batch done
    webhook-score  (lease "score")  score those contacts that are due, write back to HubSpot
    webhook-push   (lease "push")   hand those of them that are MQLs to Salesforce (no run
                                    when none is)

A contact deleted in HubSpot is read among the archived and flagged archived (the push then
leaves it); a merge is read through its surviving contact, whose merge the pull records. A
batch whose pull fails goes back to the queue; once pulled, the scheduled score and push
would hand its contacts over anyway, so a failed targeted score or push only costs latency.
Polling stays the safety net: a webhook lost changes nothing but latency.
"""

from __future__ import annotations

import logging
from collections import Counter

import httpx

from connector.clock import Clock
from connector.config import Config
from connector.pull import pull_contacts
from connector.runtime.run import StageResult, stage_run
from connector.runtime.stages import run_push_stage, run_score_stage
from connector.runtime.wiring import open_store, pull_context

__all__ = ["BATCH", "MAX_ROUNDS", "run_contacts_sync"]

log = logging.getLogger("connector.runtime.targeted")

BATCH = 500  # contacts a round: 5 batch reads, one score and one push run
MAX_ROUNDS = 20  # a queue that keeps filling is left to the next call (and to polling)
_WORST = ("ok", "degraded", "stopped", "failed", "interrupted")


def _worse(a: str, b: str) -> str:
    rank = {s: i for i, s in enumerate(_WORST)}
    return a if rank.get(a, len(_WORST)) >= rank.get(b, len(_WORST)) else b


def run_contacts_sync(config: Config, *, clock: Clock | None = None, trigger: str = "webhook",
                      transport: httpx.BaseTransport | None = None) -> StageResult:
    """Drain the webhook queue: pull, score and push the queued contacts, a batch at a time.
    Returns one result for the whole drain: the first pull run's id, the worst status of its
    runs, and their counts prefixed by stage (`pull.`, `score.`, `push.`) plus `queue.taken`.
    An empty queue records no run (run id ""), so calling it on every tick costs one query.
    A failure raises as the stage runs do (recorded first); a stage lease held by a scheduled
    run past `[runtime] lease_wait_seconds` raises `StageBusy`, the queue left as it was."""
    total = StageResult("", "ok")
    for _ in range(MAX_ROUNDS):
        if not _queued(config, clock):
            break
        pulled, live = _pull_batch(config, clock=clock, trigger=trigger, transport=transport)
        total.run_id = total.run_id or pulled.run_id
        total.status = _worse(total.status, pulled.status)
        total.counts.update(_prefixed("pull", pulled.counts))
        if not pulled.counts.get("queue.taken"):
            break
        total.counts["queue.taken"] += pulled.counts["queue.taken"]
        if not live:
            continue
        _merge(total, "score", _score(config, live, clock=clock, trigger=trigger,
                                      transport=transport))
        mqls = _mqls_among(config, live, clock)
        if mqls:  # no MQL among them: nothing to hand off, no Salesforce call
            _merge(total, "push", _push(config, mqls, clock=clock, trigger=trigger,
                                        transport=transport))
    return total


def _merge(total: StageResult, stage: str, result: StageResult) -> None:
    total.status = _worse(total.status, result.status)
    total.counts.update(_prefixed(stage, result.counts))
    total.problems.extend(result.problems)
    for code, n in result.parked.items():
        total.parked[code] = total.parked.get(code, 0) + n


def _queued(config: Config, clock: Clock | None) -> int:
    store = open_store(config, clock)
    try:
        return store.webhook_queue_depth()
    finally:
        store.close()


def _mqls_among(config: Config, ids: list[str], clock: Clock | None) -> list[str]:
    store = open_store(config, clock)
    try:
        return [c.hubspot_id for c in store.iter_mqls(ids=ids)]
    finally:
        store.close()


def _prefixed(stage: str, counts: Counter[str]) -> Counter[str]:
    return Counter({f"{stage}.{k}": v for k, v in counts.items() if k != "queue.taken"})


def _pull_batch(config: Config, *, clock: Clock | None, trigger: str,
                transport: httpx.BaseTransport | None) -> tuple[StageResult, list[str]]:
    """One batch from the queue, pulled; the batch is done once stored (back in the queue if
    the pull fails). Returns the run's result and the live contacts read."""
    live: list[str] = []
    with stage_run(config, "webhook-pull", trigger=trigger, clock=clock) as run:
        store = run.store
        ids = store.take_webhook_batch(run.run_id, limit=BATCH)
        run.result.counts["queue.taken"] = len(ids)
        if ids:
            try:
                ctx = pull_context(config, store, clock=run.clock, run_id=run.run_id,
                                   transport=transport)
                run.own(ctx.client)
                live = pull_contacts(ctx, ids)
                run.result.counts.update(ctx.counts)
            except BaseException:
                store.release_webhook_batch(run.run_id, ids)
                raise
            run.result.counts["queue.done"] = store.finish_webhook_batch(run.run_id, ids)
            log.info("webhook sync: %d queued contact(s) pulled (%d live)", len(ids), len(live))
    return run.result, live


def _score(config: Config, ids: list[str], *, clock: Clock | None, trigger: str,
           transport: httpx.BaseTransport | None) -> StageResult:
    return run_score_stage(config, trigger=trigger, clock=clock, transport=transport, ids=ids,
                           stage="webhook-score")


def _push(config: Config, ids: list[str], *, clock: Clock | None, trigger: str,
          transport: httpx.BaseTransport | None) -> StageResult:
    return run_push_stage(config, trigger=trigger, clock=clock, ids=ids, stage="webhook-push")
