"""`python -m hyperlinkr` is the `hyperlinkr` command."""

from __future__ import annotations

import sys

from hyperlinkr.cli import main

sys.exit(main())
