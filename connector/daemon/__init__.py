"""The sync daemon (`handshake run`): the schedule, leadership, the HTTP listener (webhooks,
`/metrics`, `/healthz`) and live mapping edits."""
