"""Every vendor fact id in the sandbox README is named by a test; the check itself can fail.

The README's "Fact ids" table says, in our words and with its source, each vendor behaviour the
connectors depend on. A fact nobody tests is a fact nobody holds the code to: this test names it.
"""

from __future__ import annotations

import re
from pathlib import Path

from homeowner_dagster import settings

FACT_ID = re.compile(r"^\| ([A-Z]{1,2}-[A-Z0-9-]+) \|", re.MULTILINE)


def fact_ids(readme: str) -> list[str]:
    """The ids of the README's "Fact ids" table, in order."""
    section = readme.split("## Fact ids", 1)[1].split("\n## ", 1)[0]
    return FACT_ID.findall(section)


def untested(ids: list[str], test_sources: list[str]) -> list[str]:
    """Ids no test source names (as a whole word)."""
    return [i for i in ids if not any(re.search(rf"\b{re.escape(i)}\b", s) for s in test_sources)]


def _tests_without_this_file() -> list[str]:
    here = Path(__file__)
    return [p.read_text() for p in sorted(here.parent.glob("*.py")) if p != here]


def test_every_fact_id_in_the_sandbox_readme_is_named_by_a_test() -> None:
    readme = (settings.project_root() / "homeowner_dagster" / "sandbox" / "README.md").read_text()
    ids = fact_ids(readme)
    assert len(ids) >= 30 and len(ids) == len(set(ids)), ids
    assert {"B-SYNC", "B-UNIQUE", "B-WORKSPACES", "B-NO-STATUS-ROUTE"} <= set(ids)
    assert untested(ids, _tests_without_this_file()) == []


def test_a_fact_id_that_loses_its_test_is_reported() -> None:
    readme = "## Fact ids\n\n| id | what | source |\n|---|---|---|\n| B-SYNC | x | y |\n| X-NOBODY | x | y |\n"
    assert fact_ids(readme) == ["B-SYNC", "X-NOBODY"]
    assert untested(fact_ids(readme), ['"""Fact B-SYNC: ..."""', "B-SYNCED is another word"]) == [
        "X-NOBODY"
    ]
    assert untested(["B-SYNC"], ["B-SYNCED only"]) == ["B-SYNC"]
