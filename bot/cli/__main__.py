"""`python -m bot.cli ...`: the `kefu` command (the e2e tests and the benches start it so)."""

from bot.cli import main

main()
