"""`python -m benchmarks.load`: run the load harness, print the table.

Exit status: 0 after a complete run, 2 when a tool is missing or a
service would not start, 1 when the run failed midway, 130 on Ctrl-C.
Progress goes to stderr through logging; the final table to stdout.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Sequence

from benchmarks.load.client import ClientError
from benchmarks.load.harness import run, unwind_on_signals
from benchmarks.load.options import parse_options
from benchmarks.load.processes import StartFailed
from benchmarks.load.wrk import WrkFailed, install_hint, wrk_path

logger = logging.getLogger("benchmarks.load")

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_UNAVAILABLE = 2
EXIT_INTERRUPTED = 130


def main(argv: Sequence[str] | None = None) -> int:
    options = parse_options(argv)
    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if wrk_path() is None:
        logger.error("%s", install_hint())
        return EXIT_UNAVAILABLE
    unwind_on_signals()
    try:
        report = run(options)
    except KeyboardInterrupt:
        logger.warning("interrupted; everything the run started was stopped")
        return EXIT_INTERRUPTED
    except StartFailed as exc:
        logger.error("%s", exc)
        return EXIT_UNAVAILABLE
    except (WrkFailed, ClientError, OSError) as exc:
        logger.error("the load run failed: %s", exc)
        return EXIT_FAILED
    options.json_path.write_text(json.dumps(report.as_dict(), indent=2) + "\n")
    print(report.text())
    print(f"\nresults: {options.json_path}")
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
