"""`python -m cfblend`."""

import sys

from cfblend.cli import main

sys.exit(main())
