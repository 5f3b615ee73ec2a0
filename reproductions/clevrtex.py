#!/usr/bin/env python
"""Reproduce the paper's clevrtex table; ``nox -s reproduce-clevrtex``. ``--help`` says what it measures,
``--list`` names every table. See lsd/reproduction/runner.py for the phases and outputs."""

import sys
from pathlib import Path

from lsd.reproduction.cli import main

if __name__ == "__main__":
    sys.exit(main("clevrtex", here=Path(__file__).resolve().parent))
