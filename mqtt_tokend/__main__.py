"""`python -m mqtt_tokend` runs the command line."""

import sys

from mqtt_tokend.cli import main

sys.exit(main())
