"""`homeowner dev --sandbox` stops everything it started on SIGTERM, even when it inherited SIGTERM
and SIGINT ignored (a background shell, CI without a terminal), and starts without warnings a user
cannot act on; a second shell beside it reaches its sandbox (`homeowner windows force`, `homeowner
env`), and says in one line what is missing once it has stopped."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from homeowner_dagster import db, settings
from homeowner_dagster.demo import DEMO_CLIENTS_YAML
from homeowner_dagster.sandbox.server import free_port
from homeowner_dagster_tests.test_sandbox_command import ignore_stop_signals
from homeowner_dagster_tests.ui_fixtures import HOMEOWNER, homeowner, new_shell, ui_loaded


@pytest.mark.slow
def test_homeowner_dev_stops_webserver_daemon_code_servers_and_database_on_sigterm(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "home"
    # A plain shell: none of the sandbox's settings (they live in the dev process only), its own
    # embedded PostgreSQL, started by the command.
    env = new_shell(home)
    port = free_port()
    out_path, err_path = tmp_path / "out.txt", tmp_path / "err.txt"
    with out_path.open("w") as out, err_path.open("w") as err:
        process = subprocess.Popen(
            [HOMEOWNER, "dev", "--sandbox", "--port", str(port)],
            stdout=out,
            stderr=err,
            env=env,
            cwd=settings.project_root(),
            preexec_fn=ignore_stop_signals,  # noqa: PLW1509 - the point of the test
        )
    started: list[psutil.Process] = []
    left: list[str] = []
    try:
        deadline = time.monotonic() + 300
        while not ui_loaded(f"http://127.0.0.1:{port}"):
            assert process.poll() is None, (
                out_path.read_text()[-3000:] + err_path.read_text()[-3000:]
            )
            assert time.monotonic() < deadline, "Dagster UI did not load the code location"
            time.sleep(1)
        started = psutil.Process(process.pid).children(recursive=True)
        names = " ".join(" ".join(p.cmdline()) for p in started)
        assert "dagster_webserver" in names and "dagster._daemon" in names, names
        assert "grpc" in names or "code-server" in names, names  # the code server(s)
        assert db.embedded_running(home)

        # Plain `dagster` from the repository root, with what the README says: eval "$(homeowner env)".
        shell = subprocess.run(
            [
                "bash",
                "-c",
                f'eval "$({HOMEOWNER} env)" && '
                f"{Path(sys.executable).parent / 'dagster'} instance info",
            ],
            env=env,
            cwd=settings.project_root(),
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert shell.returncode == 0, shell.stdout[-2000:] + shell.stderr[-2000:]
        assert "PostgresRunStorage" in shell.stdout, shell.stdout[-2000:]
        exports = homeowner(env, "env").stdout
        assert (
            "export SLACK_BOT_TOKEN=" in exports
            and "export BISON_INSTANCE_URL=http://127.0.0.1:" in exports
        )

        # A second shell, as the README offers: the clients, then a window forced now.
        clients = tmp_path / "clients.yaml"
        clients.write_text(DEMO_CLIENTS_YAML)
        assert homeowner(env, "clients", "import", str(clients)).returncode == 0
        forced = homeowner(
            env, "windows", "force", "--client", "sunshine", "--window", "2027-01-08"
        )
        assert forced.returncode == 0, forced.stdout + forced.stderr
        assert "run " in forced.stdout and " succeeded; state pending" in forced.stdout, (
            forced.stdout
        )
        assert "using the sandbox of `homeowner dev --sandbox`" in forced.stderr
        assert "Traceback" not in forced.stderr and "Warning" not in forced.stderr, forced.stderr
        runs = subprocess.run(  # recorded in the instance the UI reads
            [
                "bash",
                "-c",
                f'eval "$({HOMEOWNER} env)" && {Path(sys.executable).parent / "dagster"} run list --limit 5',
            ],
            env=env,
            cwd=settings.project_root(),
            capture_output=True,
            text=True,
            timeout=120,
        )
        run_id = forced.stdout.split("run ")[1].split()[0]
        assert f"Run: {run_id}\n     Job: weekly_upload" in runs.stdout, (
            runs.stdout[-2000:] + runs.stderr[-2000:]
        )

        began = time.monotonic()
        process.send_signal(signal.SIGTERM)  # ignored by inheritance: the command's own handler
        process.wait(timeout=60)
        print(
            f"homeowner dev stopped {time.monotonic() - began:.1f} s after SIGTERM "
            f"({len(started)} processes)"
        )
    finally:
        if process.poll() is None:
            process.kill()
        for child in started:  # never leave a server behind, whatever the assertions said
            try:
                if child.is_running() and child.status() != psutil.STATUS_ZOMBIE:
                    left.append(" ".join(child.cmdline()))
                    child.kill()
            except psutil.NoSuchProcess:
                pass
        if db.embedded_running(home):
            db.stop_embedded(home)

    output = out_path.read_text() + err_path.read_text()
    print(output[-1500:])
    assert process.returncode == 0, output[-3000:]
    assert left == []
    assert not db.embedded_running(home)
    # Once it has stopped, a second shell says in one line what is missing; nothing left running.
    alone = homeowner(env, "windows", "force", "--client", "sunshine", "--window", "2027-01-08")
    assert alone.returncode == 2
    assert alone.stderr.strip().splitlines() == [
        "homeowner windows: BISON_INSTANCE_URL, BISON_TOKEN_SUNSHINE_COVERAGE, SLACK_BOT_TOKEN not set: start "
        "`homeowner dev --sandbox` (its sandbox then serves every shell) or export the production settings "
        "(`homeowner check` lists what is missing)"
    ], alone.stderr
    assert not db.embedded_running(home)  # the command started the embedded server: it stopped it
    assert "embedded PostgreSQL stopped" in output
    assert "superseded" not in output  # `dagster dev` vs `dg dev`: nothing a user can act on
    assert "RuntimeDirWarning" not in output and "BetaWarning" not in output  # nor these
    assert "DAGSTER_HOME environment variable is set" not in output


@pytest.mark.parametrize("argv", [["demo"], ["dev", "--sandbox"]], ids=["demo", "dev-sandbox"])
def test_demo_and_sandbox_dev_refuse_a_configured_database_in_one_line(
    database_url: str, argv: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    from homeowner_dagster.cli import main

    home = tmp_path / "home"
    monkeypatch.setenv(settings.HOME_ENV, str(home))
    host = db.url_host(database_url)
    for extra in ([], ["--database-host", "elsewhere.example"]):
        assert main([*argv, *extra]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1, err
        assert (
            "refused: HOMEOWNER_DATABASE_URL is set" in err and f"--database-host {host}" in err
        ), err
    # Nothing started, nothing written: no embedded server, no sandbox state, no demo client.
    assert not home.exists()
    with db.connect(database_url) as conn:
        assert conn.execute("select count(*) from clients").fetchone()[0] == 0


def test_a_configured_dagster_storage_alone_is_refused_naming_no_password(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from homeowner_dagster.cli import main
    from homeowner_dagster.cli.database import refuse_configured_database

    monkeypatch.setenv(settings.HOME_ENV, str(tmp_path / "home"))
    monkeypatch.delenv(settings.DATABASE_URL_ENV, raising=False)
    storage = "postgresql+psycopg2://dagster:S3cret-pw-77@db.prod.example:5432/postgres?options=-csearch_path%3Ddagster"
    monkeypatch.setenv(settings.DAGSTER_STORAGE_URL_ENV, storage)
    assert main(["demo"]) == 2
    err = capsys.readouterr().err
    assert (
        "HOMEOWNER_DAGSTER_STORAGE_URL is set (host db.prod.example)" in err
        and "S3cret-pw-77" not in err
    )
    assert not (tmp_path / "home").exists()
    refuse_configured_database("`homeowner demo`", ["db.prod.example"])  # named: let through
