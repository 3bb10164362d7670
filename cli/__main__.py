"""``python -m cli ...`` is ``tdw ...``."""

import sys

from cli.main import main

sys.exit(main())
