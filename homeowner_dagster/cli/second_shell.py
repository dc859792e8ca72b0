"""What a second shell needs beside `homeowner dev --sandbox`: the sandbox's settings.

The sandbox runs inside `homeowner dev --sandbox`; its URLs and demo credentials (sandbox only,
never a real secret) exist in that process's environment alone. `dev --sandbox` writes them to
`.homeowner/sandbox/settings.json` (readable by its owner only) with its own process id and start
time, and removes the file when it stops. While that process lives, `homeowner env` prints them
and commands that reach a service use them; a variable already set in the shell wins.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path

from homeowner_dagster import settings
from homeowner_dagster.cli import CommandError


def settings_file() -> Path:
    return settings.home_dir() / "sandbox" / "settings.json"


def write(env: Mapping[str, str]) -> Path:
    """Record the running sandbox's settings for other shells (owner-only file)."""
    import psutil

    path = settings_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    me = psutil.Process()
    data = {"pid": me.pid, "started": me.create_time(), "env": dict(env)}
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        json.dump(data, out)
    return path


def remove() -> None:
    settings_file().unlink(missing_ok=True)


def running() -> tuple[int, dict[str, str]] | None:
    """(pid, settings) of the `homeowner dev --sandbox` running on this home, or None."""
    import psutil

    try:
        data = json.loads(settings_file().read_text())
        process = psutil.Process(int(data["pid"]))
        alive = abs(process.create_time() - float(data["started"])) < 1.0 and process.is_running()
    except (OSError, ValueError, KeyError, TypeError, psutil.Error):
        return None
    return (int(data["pid"]), {str(k): str(v) for k, v in data["env"].items()}) if alive else None


def use_running_sandbox() -> bool:
    """Take the running sandbox's settings into this process (the shell's own win); say so."""
    found = running()
    if found is None:
        return False
    pid, env = found
    for key, value in env.items():
        os.environ.setdefault(key, value)
    print(f"using the sandbox of `homeowner dev --sandbox` (pid {pid})", file=sys.stderr)
    return True


def require(names: Iterable[str | None]) -> None:
    """One line naming the variables a command needs that are not set, instead of a traceback."""
    missing = sorted({n for n in names if n and not os.environ.get(n, "").strip()})
    if missing:
        raise CommandError(
            f"{', '.join(missing)} not set: start `homeowner dev --sandbox` (its sandbox then serves "
            "every shell) or export the production settings (`homeowner check` lists what is missing)"
        )
