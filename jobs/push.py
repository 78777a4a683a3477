"""Scheduled job: hand the MQLs to Salesforce
(`jobs.push:run` for a scheduler, or `python jobs/push.py [--config FILE]`)."""

from connector.jobs import job

run = job("push")

if __name__ == "__main__":
    run.main()
