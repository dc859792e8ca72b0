"""Wall time of `homeowner demo` split into browser, cleaning, database, API calls and Dagster.

Runs the demo twice in a fresh temporary folder (first run: everything new; second run: nothing
new to upload) and prints where the time went. Run by hand: `.venv/bin/python bench/bench_demo.py`.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path


def main() -> None:
    from homeowner_dagster.demo import run_demo

    folder = Path(tempfile.mkdtemp(prefix="bench-demo-"))
    os.chdir(folder)
    os.environ["HOMEOWNER_HOME"] = str(folder / ".homeowner")
    for attempt in ("first run", "second run"):
        began = time.perf_counter()
        summary = run_demo(progress=lambda _: None)
        wall = time.perf_counter() - began
        stages = summary["stage_seconds"]
        print(
            f"\n{attempt}: {wall:.1f} s wall, new uploads "
            f"{sum(c['new_uploads'] for c in summary['clients'])}"
        )
        print(f"  {'stage':<22}{'seconds':>9}")
        for key in (
            "database setup",
            "browser",
            "cleaning",
            "database",
            "api",
            "dagster overhead",
            "monthly runs (wall)",
            "weekly runs (wall)",
        ):
            print(f"  {key:<22}{stages.get(key, 0.0):>9.1f}")


if __name__ == "__main__":
    main()
