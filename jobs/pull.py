"""Scheduled job: one incremental pull from HubSpot into the state store
(`jobs.pull:run` for a scheduler, or `python jobs/pull.py [--config FILE]`)."""

from connector.jobs import job

run = job("pull")

if __name__ == "__main__":
    run.main()
