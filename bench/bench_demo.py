"""`homeowner demo` as the operator runs it: a whole process, first and second run, fresh folder.

Each run is `python -m homeowner_dagster demo` (default `--weeks 6`) in a new temporary folder
(its own `.homeowner`: embedded PostgreSQL, Dagster instance, sandbox state), timed from process
start to exit, so imports and the database's start count. The second run finds the first's lists
and uploads nothing new. The stage table comes from the command's closing JSON line. Run by hand:
`.venv/bin/python bench/bench_demo.py`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

STAGES = (
    "database setup",
    "browser",
    "cleaning",
    "database",
    "api",
    "dagster overhead",
    "monthly runs (wall)",
    "weekly runs (wall)",
    "outcome runs (wall)",
)


def main() -> None:
    folder = Path(tempfile.mkdtemp(prefix="bench-demo-"))
    env = {**os.environ, "HOMEOWNER_HOME": str(folder / ".homeowner")}
    for attempt in ("first run", "second run"):
        began = time.perf_counter()
        done = subprocess.run(
            [sys.executable, "-m", "homeowner_dagster", "demo"],
            cwd=folder,
            env=env,
            capture_output=True,
            text=True,
        )
        wall = time.perf_counter() - began
        if done.returncode != 0:
            sys.exit(f"{attempt}: exit {done.returncode}: {done.stderr.strip().splitlines()[-1:]}")
        closing = json.loads(next(ln for ln in done.stdout.splitlines() if ln.startswith("{")))
        uploads = sum(c["new_uploads"] for c in closing["clients"])
        print(f"\n{attempt}: {wall:.1f} s wall (whole process, exit 0), new uploads {uploads}")
        print(f"  {'stage':<22}{'seconds':>9}")
        for key in STAGES:
            print(f"  {key:<22}{closing['stage_seconds'].get(key, 0.0):>9.1f}")


if __name__ == "__main__":
    main()
