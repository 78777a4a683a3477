"""Scheduled job: score the contacts that are due and write changes back to HubSpot
(`jobs.score:run` for a scheduler, or `python jobs/score.py [--config FILE]`)."""

from connector.jobs import job

run = job("score")

if __name__ == "__main__":
    run.main()
