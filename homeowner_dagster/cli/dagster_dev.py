"""`python -m homeowner_dagster.cli.dagster_dev ARGS`: `dagster dev ARGS`, without the one warning
nobody can act on.

Dagster 1.13 marks `dagster dev` as superseded by `dg dev`, which needs the `dg` tool
(dagster-dg-cli) and a `dg` project layout this repository does not use; `dagster dev` remains
supported in 1.x. Only that warning is silenced; every other warning still shows.
"""

from __future__ import annotations

import sys
import warnings


def main(argv: list[str]) -> None:
    from dagster._cli import main as dagster_main
    from dagster_shared.utils.warnings import SupersessionWarning

    warnings.filterwarnings("ignore", category=SupersessionWarning, message=r"`?dagster dev`?")
    warnings.filterwarnings(
        "ignore", category=SupersessionWarning, message=r".*Use 'dg dev' instead"
    )
    sys.argv = ["dagster", "dev", *argv]
    dagster_main()


if __name__ == "__main__":
    main(sys.argv[1:])
