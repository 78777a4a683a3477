"""Scheduled job: pull back what sales did with the hand-offs
(`jobs.pullback:run` for a scheduler, or `python jobs/pullback.py [--config FILE]`)."""

from connector.jobs import job

run = job("pullback")

if __name__ == "__main__":
    run.main()
