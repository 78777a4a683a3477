"""`python -m connector.cli ...` runs the `handshake` command."""

from connector.cli.main import main

main()
