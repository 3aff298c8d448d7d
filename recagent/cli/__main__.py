"""`python -m recagent.cli`: the same as the `recagent` command."""

import sys

from recagent.cli.main import main

sys.exit(main())
