"""`python -m runner.runtime <id> [--workdir DIR]`: the local executor's runner command."""

import sys

from runner.runtime.runner import exit_at_once, main

# Once main() returns, the outcome is recorded and committed: the interpreter's own teardown
# (Django and its apps loaded) only delays the runner's exit, and with it the local slot it holds.
exit_at_once(main())
sys.exit(1)  # not reached
