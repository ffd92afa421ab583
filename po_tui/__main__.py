"""`python -m po_tui ...`: the `po-tui` script (po_tui/cli.py), cockpit included."""

import sys

from po_tui.cli import main

sys.exit(main())
