"""Outcome reads over a simulated quarter: requests per campaign per week against new replies.

Two campaigns (two clients' workspaces) on the sandbox Bison; each Monday a window of 1,500 leads
is attached to each, then each campaign is read once from its cursor (`read_campaign`) and the
sandbox clock moves a week. Prints per week and in total: requests, pages of new replies, new
replies, and the bound (pages + 3) per campaign.

    .venv/bin/python bench/bench_outcome_reads.py [weeks] [leads_per_window]
"""

from __future__ import annotations

import os
import sys
import time

import httpx

from homeowner_dagster.resources.bison import BisonResource
from homeowner_dagster.resources.bison_outcomes import read_campaign
from homeowner_dagster.sandbox import Sandbox


def _attach(sandbox: Sandbox, token: str, campaign_id: int, first: int, count: int) -> None:
    zips = [f"{7000 + i:05d}" for i in range(40)]
    rows = ["email,first_name,last_name,zip"] + [
        f"owner{i}.{token[-4:]}@example.com,Pat,Owner{i},{zips[i % 40]}"
        for i in range(first, first + count)
    ]
    client = httpx.Client(
        base_url=sandbox.urls["bison"], headers={"Authorization": f"Bearer {token}"}
    )
    if "zip" not in {v["name"] for v in client.get("/api/custom-variables").json()["data"]}:
        client.post("/api/custom-variables", json={"name": "zip"}).raise_for_status()
    created = client.post(
        "/api/leads/bulk/csv",
        data={
            "name": f"window {first}",
            "columnsToMap[email][]": "email",
            "columnsToMap[first_name][]": "first_name",
            "columnsToMap[last_name][]": "last_name",
            "columnsToMap[zip][]": "zip",
        },
        files={"csv": ("l.csv", "\n".join(rows).encode(), "text/csv")},
    )
    list_id = created.json()["data"]["id"]
    while client.get(f"/api/lead-lists/{list_id}").json()["data"]["status"] != "Processed":
        time.sleep(0.05)
    client.post(
        f"/api/campaigns/{campaign_id}/leads/attach-lead-list", json={"lead_list_id": list_id}
    )


def main(weeks: int = 13, leads: int = 1500) -> None:
    with Sandbox(seed=3) as sandbox:
        campaigns = []
        for name in ("Bench A", "Bench B"):
            ws = sandbox.bison.add_workspace(name, f"token-bench-{name[-1].lower()}")
            campaign = sandbox.bison.add_campaign(
                name, "Evergreen, Last Upload: December 22nd-31st"
            )
            os.environ[f"BISON_TOKEN_BENCH_{name[-1]}"] = ws.token
            workspace = BisonResource(min_interval_seconds=0).workspace(
                sandbox.urls["bison"], f"BISON_TOKEN_BENCH_{name[-1]}"
            )
            campaigns.append((ws, campaign, workspace, [None]))
        totals = {"requests": 0, "pages": 0, "new": 0, "reads": 0, "over_bound": 0}
        for week in range(weeks):
            line = []
            for ws, campaign, workspace, cursor in campaigns:
                _attach(sandbox, ws.token, campaign["id"], week * leads, leads)
                read = read_campaign(
                    workspace, campaign["id"], cursor[0], sandbox.bison.outcomes.now().date()
                )
                cursor[0] = read.newest
                new = sum(read.new_by_folder.values())
                totals["requests"] += read.requests
                totals["pages"] += read.pages_of_new_replies
                totals["new"] += new
                totals["reads"] += 1
                totals["over_bound"] += read.requests > read.pages_of_new_replies + 3
                line.append(
                    f"{ws.name}: {read.requests} requests, {read.pages_of_new_replies} pages, {new} new"
                )
            print(f"week {week:2d}: " + "; ".join(line))
            sandbox.bison.outcomes.advance(weeks=1)
        print(
            f"{weeks} weeks x 2 campaigns x {leads:,} leads a week: {totals['reads']} reads, "
            f"{totals['requests']} requests for {totals['new']:,} new replies and bounces "
            f"({totals['pages']} pages of new replies; bound pages + 3 per read = {totals['pages'] + 3 * totals['reads']}); "
            f"reads over the bound: {totals['over_bound']}"
        )


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:3]))
