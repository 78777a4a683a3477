"""Push: every MQL handed to Salesforce exactly once (store -> Salesforce, HubSpot told).

    engine.py     the run: plan, route and write the Leads, then call the parts below
    tasks.py      hand-off and activity Tasks          alerts.py     alerts after the hand-off
    writeback.py  HubSpot told about the hand-off
    context.py    PushContext and what the parts share (none of them imports the engine)
    ports.py      what the push needs of Salesforce and HubSpot, as Protocols

Every write goes through the write ledger's sequence in `connector.ledger`.
"""
