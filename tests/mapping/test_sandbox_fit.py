"""The shipped mapping files against the sandbox: every generated contact maps to a Lead the
emulated org accepts as it stands (validation, picklists, lengths, required fields), owned by
the team its country and size route it to."""

from __future__ import annotations

from datetime import UTC, datetime

from connector.clock import FrozenClock
from connector.mapping import load_fields, load_routing
from connector.sandbox.generator import COUNTRIES, generate
from connector.sandbox.salesforce import settings as sf_settings
from connector.sandbox.salesforce.schema import OBJECTS, describe_object
from connector.sandbox.salesforce.state import SalesforceState
from tests.mapping.helpers import SHIPPED_FIELDS, SHIPPED_ROUTING

TEAM_OF_TERRITORY = {"NA": "SDR-NA", "EMEA": "SDR-EMEA", "APAC": "SDR-APAC"}


def test_every_generated_contact_becomes_an_acceptable_routed_lead() -> None:
    dataset = generate(11, 250)
    state = SalesforceState(FrozenClock(datetime(2026, 11, 1, tzinfo=UTC)))
    for u in dataset.sf_users:
        state.add_user(id=u.id, username=u.username, email=u.email, first_name=u.first_name,
                       last_name=u.last_name, territory=u.territory, team=u.team,
                       is_active=u.is_active)
    users = state.users()
    describe = {f["name"]: f for f in describe_object(OBJECTS["Lead"], "v62.0", {})["fields"]}
    fields = load_fields(SHIPPED_FIELDS)
    routing = load_routing(SHIPPED_ROUTING)
    queues = {sf_settings.UNASSIGNED_QUEUE_NAME: state.queue_id}
    team_of_user = {u.id: u.team for u in dataset.sf_users}
    created = 0
    for contact in dataset.contacts:
        email = contact.properties.get("email")
        if not email or contact.archived:
            continue
        record = fields.lead_values(contact.properties, email=email, hubspot_id=contact.id,
                                    describe=describe)
        decided = routing.assign(contact.properties, users=users, store=None, queues=queues)
        assert decided.owner_id, decided.reason
        # Raises RecordError on anything the org refuses.
        lead_id = state.insert("Lead", {**record.values, "OwnerId": decided.owner_id},
                               auto_assign=False, allow_duplicates=True)
        lead = state.get("Lead", lead_id)
        assert lead is not None and lead["LastName"] and lead["Company"]
        country = contact.properties.get("country")
        expected = ("Enterprise" if contact.properties.get("numemployees") == "1000+"
                    else TEAM_OF_TERRITORY[COUNTRIES[str(country)][3]])
        assert decided.team == expected
        assert team_of_user[decided.owner_id] == expected
        created += 1
    assert created > 200
