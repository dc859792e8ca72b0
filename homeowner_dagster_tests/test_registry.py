"""Client and ZIP territory imports: all or nothing, every offending line named."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest

from homeowner_dagster.cli import main

CLIENTS_YAML = """
clients:
  - slug: acme-nj
    name: Acme Insurance NJ
    workspace: Acme NJ
    bison_token_env: BISON_TOKEN_ACME_NJ
    package_tier: 100
    licensed_states: [NJ]
    slack_channel: "#acme"
  - slug: lone-star
    name: Lone Star Agency
    workspace: Lone Star
    package_tier: 200
    licensed_states: TX
    max_home_value: 900000
"""


def _count(url: str, query: str, *params: object) -> int:
    with psycopg.connect(url) as conn:
        return conn.execute(query, params).fetchone()[0]


@pytest.fixture
def clients_file(tmp_path: Path) -> Path:
    path = tmp_path / "clients.yaml"
    path.write_text(CLIENTS_YAML)
    return path


def test_clients_import_upserts(database_url: str, clients_file: Path, tmp_path: Path) -> None:
    assert main(["clients", "import", str(clients_file)]) == 0
    assert main(["clients", "import", str(clients_file)]) == 0
    assert _count(database_url, "select count(*) from clients") == 2
    csv_file = tmp_path / "clients.csv"
    csv_file.write_text(
        "Slug,Name,Workspace,Package Tier,Licensed States,Active\n"
        "acme-nj,Acme Insurance NJ,Acme NJ,200,NJ,no\n"
    )
    assert main(["clients", "import", str(csv_file)]) == 0
    with psycopg.connect(database_url) as conn:
        assert conn.execute(
            "select package_tier, active from clients where slug='acme-nj'"
        ).fetchone() == (200, False)


def test_bad_client_file_names_every_problem_and_writes_nothing(
    database_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "clients.csv"
    bad.write_text(
        "slug,name,package_tier,licensed_states\n"
        "good-one,Good,100,NJ\n"
        "Bad Slug,Bad,100,NJ\n"
        "tier-300,Wrong tier,300,TX\n"
    )
    assert main(["clients", "import", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "client 2" in err and "client 3 (tier-300)" in err and "nothing written" in err
    assert "Traceback" not in err
    assert _count(database_url, "select count(*) from clients") == 0


def test_zip_sheet_import_and_conflicts(
    database_url: str, clients_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["clients", "import", str(clients_file)]) == 0
    sheet = tmp_path / "zips.csv"
    sheet.write_text(
        "Zipcode,Territory,Color\n7034,Acme NJ,green\n07005,acme-nj,\n75201,Lone Star Agency,blue\n\n"
    )
    assert main(["zips", "import", str(sheet), "--month", "2027-02"]) == 0
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            "select zip, state, client_slug, client_name, workspace_name, month from client_zipcodes order by zip"
        ).fetchall()
    assert rows == [
        ("07005", "NJ", "acme-nj", "Acme Insurance NJ", "Acme NJ", "2027-02"),
        ("07034", "NJ", "acme-nj", "Acme Insurance NJ", "Acme NJ", "2027-02"),
        ("75201", "TX", "lone-star", "Lone Star Agency", "Lone Star", "2027-02"),
    ]
    # Same sheet again: nothing changes. Another month: the same ZIPs may go elsewhere.
    assert main(["zips", "import", str(sheet), "--month", "2027-02"]) == 0
    assert _count(database_url, "select count(*) from client_zipcodes") == 3

    conflicting = tmp_path / "conflict.csv"
    conflicting.write_text(
        "zip_code,Agency\n"
        "08001,acme-nj\n"  # fine on its own
        "07034,Lone Star\n"  # held by acme-nj this month
        "77001,nobody-we-know\n"  # unknown client
        "08002,acme-nj\n"
        "08002,lone-star\n"  # same ZIP to two clients in one sheet
        "ABCDE,acme-nj\n"  # not a ZIP
    )
    assert main(["zips", "import", str(conflicting), "--month", "2027-02"]) == 2
    err = capsys.readouterr().err
    assert "line 3: ZIP 07034 already belongs to acme-nj" in err
    assert "lines 5, 6: ZIP 08002 is given to acme-nj, lone-star" in err
    assert "line 7: 'ABCDE' is not a ZIP code" in err
    assert "Traceback" not in err
    assert _count(database_url, "select count(*) from client_zipcodes") == 3
    conflicting.write_text("zip,client\n08001,acme-nj\n07034,Lone Star\n77001,nobody-we-know\n")
    assert main(["zips", "import", str(conflicting), "--month", "2027-02"]) == 2
    err = capsys.readouterr().err
    assert "line 3: ZIP 07034 already belongs to acme-nj" in err
    assert "line 4: unknown client 'nobody-we-know'" in err
    assert _count(database_url, "select count(*) from client_zipcodes where zip = '08001'") == 0


def test_the_database_refuses_a_zip_held_twice_in_a_month(
    database_url: str, clients_file: Path
) -> None:
    assert main(["clients", "import", str(clients_file)]) == 0
    with psycopg.connect(database_url) as conn:
        insert = (
            "insert into client_zipcodes (client_slug, client_name, workspace_name, month, zip, state) "
            "values (%s, 'x', 'x', '2027-02', '07034', 'NJ')"
        )
        conn.execute(insert, ["acme-nj"])
        with pytest.raises(psycopg.errors.UniqueViolation):
            conn.execute(insert, ["lone-star"])


def test_assign_and_move(
    database_url: str, clients_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["clients", "import", str(clients_file)]) == 0
    assert (
        main(["zips", "assign", "--client", "acme-nj", "--month", "2027-02", "07034", "7005"]) == 0
    )
    assert main(["zips", "assign", "--client", "lone-star", "--month", "2027-02", "07034"]) == 2
    assert "already belongs to acme-nj" in capsys.readouterr().err
    assert (
        main(
            [
                "zips",
                "move",
                "--from",
                "lone-star",
                "--to",
                "acme-nj",
                "--month",
                "2027-02",
                "07005",
            ]
        )
        == 2
    )
    assert (
        main(
            [
                "zips",
                "move",
                "--from",
                "acme-nj",
                "--to",
                "lone-star",
                "--month",
                "2027-02",
                "07005",
            ]
        )
        == 0
    )
    with psycopg.connect(database_url) as conn:
        assert conn.execute(
            "select client_slug from client_zipcodes where zip='07005'"
        ).fetchone() == ("lone-star",)
