"""The daemon: every stage on its `[schedule]` interval, one active instance
(`python jobs/daemon.py [--config FILE] [--listen HOST:PORT] [--once]`, or `handshake run`)."""

import sys

from connector.cli.main import main

if __name__ == "__main__":
    main(["run", *sys.argv[1:]])
