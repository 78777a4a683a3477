"""The daemon (`handshake run`): the schedule, leadership, the HTTP listener and its routes."""
