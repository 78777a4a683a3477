"""The emulated HubSpot API, served by `HubSpotSandbox` over plain HTTP on loopback.

    sandbox = HubSpotSandbox(SandboxClock(), tier="professional")
    sandbox.load(generate(seed, contacts))
    server = sandbox.serve()            # started; server.base_url, server.stop()
    client = hubspot.Client.create(access_token="pat-sandbox-0000", host=server.base_url)

Emulated (paths and limits in `settings`): contacts on the v3 and 2026-03 paths (list, get,
search, batch read/create/update/upsert/archive, merge, PATCH, DELETE), contact properties and
groups, owners, lists (create, fetch by id or by name, MANUAL/SNAPSHOT memberships), legacy
email events and form submissions, forms v3, web-analytics page views (events v3), marketing
events and participations. The lifecycle stage only moves forward: a backward set answers 200
and changes nothing, clearing it ("") first lets a second request set an earlier stage.
Bearer-token auth, per-token limits (10-second rolling window, search per second, daily budget
reset at the sandbox clock's midnight) and HubSpot's error and 429 bodies and headers; a 414
for request targets over 8,192 characters; every answer's Date header is the sandbox clock.
Every JSON request body an official spec describes is checked against that spec's request
schema (`bodies`, schemas vendored in `specs/`) before it is served; a body the schema refuses
gets HubSpot's 400 VALIDATION_ERROR with one `errors` entry per problem, and nothing is applied.

Choices where HubSpot documents no exact behaviour: the 10,000-cap error message (its status
and category are documented); `limit` above a documented maximum answers 400 rather than
being capped (legacy email events cap silently); web analytics is not gated to Enterprise;
the wording and `code` of request-schema refusals (HubSpot documents the `ErrorDetail` shape,
not its values); where a spec's request schema contradicts HubSpot's own guide (an empty search,
sort objects, a create without associations) the guide wins, as `specs/generate.py` lists.
`HubSpotState` holds the data and the mutators tests and benchmarks use.
"""

from __future__ import annotations

from .app import HubSpotSandbox
from .errors import HubSpotApiError
from .ratelimit import RateLimiter
from .settings import TIERS, RateLimits
from .state import ContactRecord, HubSpotState

__all__ = [
    "TIERS",
    "ContactRecord",
    "HubSpotApiError",
    "HubSpotSandbox",
    "HubSpotState",
    "RateLimiter",
    "RateLimits",
]
