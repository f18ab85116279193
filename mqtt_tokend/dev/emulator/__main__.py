"""`python -m mqtt_tokend.dev.emulator` runs the emulator on its own."""

import sys

from mqtt_tokend.dev.emulator.cli import main

sys.exit(main())
