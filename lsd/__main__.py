import sys

from lsd.cli import main

sys.exit(main())
