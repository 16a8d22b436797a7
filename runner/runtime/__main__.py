"""`python -m runner.runtime <id> [--workdir DIR]`: the local executor's runner command."""

import sys

from runner.runtime.runner import main

sys.exit(main())
