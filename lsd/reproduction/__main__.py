"""``python -m lsd.reproduction --list`` names every table; ``python -m lsd.reproduction TABLE ...`` runs one."""

import sys

from lsd.reproduction.cli import list_main

sys.exit(list_main())
