#!/usr/bin/env python
"""Reproduce the paper's ffhq table; ``nox -s reproduce-ffhq``. ``--help`` says what it measures,
``--list`` names every table. See lsd/reproduction/runner.py for the phases and outputs."""

import sys
from pathlib import Path

from lsd.reproduction.cli import main

if __name__ == "__main__":
    sys.exit(main("ffhq", here=Path(__file__).resolve().parent))
