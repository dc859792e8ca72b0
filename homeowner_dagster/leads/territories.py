"""Clients and their ZIP territories as the team keeps them in sheets: parsing and checks.

Pure functions: they read the text of a file and return frames or a list of problems, one per
offending line. Writing them to the database is `homeowner_dagster.registry`'s job.
"""

from __future__ import annotations

import csv
import io
import math
import re
from dataclasses import dataclass
from functools import lru_cache

import pandas as pd
import yaml

PACKAGE_TARGETS: dict[int, int] = {100: 15_000, 200: 30_000}
MINIMUM_TO_PROCEED: dict[int, int] = {100: 11_500, 200: 23_000}
DEFAULT_MAX_HOME_VALUE = 900_000
STATE_RE = re.compile(r"^[A-Z]{2}$")
SLUG_RE = re.compile(r"^[a-z0-9][a-z0-9_-]*$")


class TerritoryError(ValueError):
    """A sheet that cannot be imported; `problems` lists every offending line."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("; ".join(problems))


def header_key(name: str) -> str:
    """Header matching that ignores case, spaces, underscores and punctuation."""
    return re.sub(r"[^a-z0-9]", "", str(name).lower())


def target_for(package_tier: int, target_override: int | None = None) -> int:
    """Monthly cleaned-lead target: tier 100 -> 15,000, tier 200 -> 30,000, or the override."""
    if target_override:
        return int(target_override)
    return PACKAGE_TARGETS[int(package_tier)]


def minimum_for(package_tier: int, target_override: int | None = None) -> int:
    """Minimum to proceed: 11,500 / 23,000, scaled the same way for an override."""
    base = MINIMUM_TO_PROCEED[int(package_tier)]
    if target_override:
        return round(int(target_override) * base / PACKAGE_TARGETS[int(package_tier)])
    return base


def normalise_zip(value: object) -> str | None:
    """`7034` -> `07034`, `07034-1234` / `070341234` -> `07034`; None when not a ZIP."""
    text = str(value or "").strip()
    if text.endswith(".0"):
        text = text[:-2]
    m = re.fullmatch(r"(\d{3,5})(?:-?\d{4})?", text)
    if not m:
        return None
    digits = m.group(1)
    if len(text.replace("-", "")) == 9 and len(digits) != 5:
        return None
    return digits.zfill(5)


@lru_cache(maxsize=1)
def _zip_states() -> dict[str, str]:
    import zipcodes

    return {z["zip_code"]: z["state"] for z in zipcodes.list_all()}


def state_of_zip(zip_code: str) -> str | None:
    """The state a ZIP lies in, from the offline `zipcodes` data; None when unknown."""
    return _zip_states().get(zip_code)


# Clients

CLIENT_FIELDS = {
    "slug": ("slug", "id", "key"),
    "name": ("name", "displayname", "client", "clientname"),
    "workspace_name": ("workspace", "workspacename", "bisonworkspace"),
    "bison_instance_url": ("bisoninstanceurl", "bisonurl", "instanceurl"),
    "bison_token_env": ("bisontokenenv", "tokenenv", "bisonapitokenenv"),
    "package_tier": ("packagetier", "tier", "package"),
    "target_override": ("targetoverride", "target"),
    "licensed_states": ("licensedstates", "states"),
    "max_home_value": ("maxhomevalue",),
    "head_of_household_required": ("headofhouseholdrequired", "headofhousehold"),
    "sample_surplus": ("samplesurplus",),
    "slack_channel": ("slackchannel", "channel"),
    "active": ("active",),
    "campaign_name": ("campaignname", "campaign", "evergreencampaign"),
    "hold_below_minimum": ("holdbelowminimum",),
}


def _truthy(value: object, default: bool) -> bool:
    if value is None or (isinstance(value, str) and not value.strip()):
        return default
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in {"1", "true", "yes", "y", "on"}:
        return True
    if text in {"0", "false", "no", "n", "off"}:
        return False
    raise ValueError(f"not a yes/no value: {value!r}")


def _records_from_text(text: str, filename: str) -> list[dict[str, object]]:
    if filename.lower().endswith((".yaml", ".yml")):
        try:
            data = yaml.safe_load(text)
        except (yaml.YAMLError, RecursionError) as exc:  # RecursionError: absurdly deep nesting
            raise TerritoryError(
                [f"{filename}: not valid YAML ({exc.__class__.__name__})"]
            ) from None
        if isinstance(data, dict):
            data = data.get("clients", data)
        if not isinstance(data, list) or not all(isinstance(r, dict) for r in data):
            raise TerritoryError([f"{filename}: expected a list of clients"])
        return data
    try:
        rows = list(csv.DictReader(io.StringIO(text)))
    except csv.Error as exc:
        raise TerritoryError([f"{filename}: not readable CSV ({exc})"]) from None
    return [dict(r) for r in rows]


def parse_clients(text: str, filename: str = "clients.yaml") -> pd.DataFrame:
    """Parse a client file (YAML list or CSV) into one validated row per client."""
    records = _records_from_text(text, filename)
    problems: list[str] = []
    out: list[dict[str, object]] = []
    seen: set[str] = set()
    for number, record in enumerate(records, start=1):
        keyed = {header_key(k): v for k, v in record.items() if k is not None}
        row: dict[str, object] = {}
        for field, aliases in CLIENT_FIELDS.items():
            row[field] = next((keyed[a] for a in aliases if a in keyed), None)
        where = f"client {number}"
        try:
            slug = str(row["slug"] or "").strip().lower()
            if not SLUG_RE.match(slug):
                raise ValueError(f"slug {row['slug']!r} must be lower-case letters, digits, - or _")
            where = f"client {number} ({slug})"
            if slug in seen:
                raise ValueError("slug appears twice")
            seen.add(slug)
            name = str(row["name"] or "").strip()
            if not name:
                raise ValueError("name is missing")
            tier = int(str(row["package_tier"] or "").strip() or 0)
            if tier not in PACKAGE_TARGETS:
                raise ValueError(f"package tier must be 100 or 200 (got {row['package_tier']!r})")
            states = row["licensed_states"] or []
            if isinstance(states, str):
                states = re.split(r"[\s,;|]+", states.strip())
            states = sorted({str(s).strip().upper() for s in states if str(s).strip()})
            bad = [s for s in states if not STATE_RE.match(s)]
            if bad or not states:
                raise ValueError(f"licensed states must be two-letter codes (got {bad or 'none'})")
            override = row["target_override"]
            override_value = int(str(override).strip()) if str(override or "").strip() else None
            if override_value is not None and not 0 < override_value < 2**31:
                raise ValueError(
                    f"target override must be a positive number of leads (got {override!r})"
                )
            max_value = row["max_home_value"]
            token_env = str(row["bison_token_env"] or "").strip() or None
            if token_env and not re.fullmatch(r"[A-Z_][A-Z0-9_]*", token_env):
                raise ValueError("bison token env must name an environment variable (A-Z, 0-9, _)")
            record = {
                "slug": slug,
                "name": name,
                "workspace_name": str(row["workspace_name"] or name).strip(),
                "bison_instance_url": str(row["bison_instance_url"] or "").strip() or None,
                "bison_token_env": token_env,
                "package_tier": tier,
                "target_override": override_value,
                "licensed_states": states,
                "max_home_value": float(str(max_value).replace(",", "").replace("$", ""))
                if str(max_value or "").strip()
                else float(DEFAULT_MAX_HOME_VALUE),
                "head_of_household_required": _truthy(row["head_of_household_required"], True),
                "sample_surplus": _truthy(row["sample_surplus"], False),
                "slack_channel": str(row["slack_channel"] or "").strip() or None,
                "active": _truthy(row["active"], True),
                "campaign_name": str(row["campaign_name"] or "").strip() or None,
                "hold_below_minimum": _truthy(row["hold_below_minimum"], False),
            }
            if not (math.isfinite(record["max_home_value"]) and record["max_home_value"] > 0):
                raise ValueError(f"max home value must be a positive amount (got {max_value!r})")
            if any(isinstance(v, str) and "\x00" in v for v in record.values()):
                raise ValueError("a value holds a NUL character")
            out.append(record)
        except (ValueError, TypeError) as exc:
            problems.append(f"{where}: {exc}")
    if problems:
        raise TerritoryError(problems)
    if not out:
        raise TerritoryError([f"{filename}: no clients in the file"])
    return pd.DataFrame(out)


# ZIP sheets

ZIP_HEADERS = ("zip", "zipcode", "postal", "postalcode", "zipcodes")
CLIENT_HEADERS = ("client", "territory", "agency", "workspace")
COLOR_HEADERS = ("color", "colour")


@dataclass(frozen=True)
class ZipSheet:
    """One row per (line, zip, client reference) of the sheet."""

    rows: pd.DataFrame  # columns: line, zip, state, client_ref, color
    problems: list[str]  # lines that could not be read; reported together with conflicts


def parse_zip_sheet(text: str) -> ZipSheet:
    """Read the team's `Zipcode,Territory,Color` sheet; every bad line is reported at once."""
    text = text.lstrip("\ufeff")
    reader = csv.reader(io.StringIO(text))
    try:
        header = next(reader)
    except StopIteration:
        raise TerritoryError(["the sheet is empty"]) from None
    except csv.Error as exc:
        raise TerritoryError([f"the sheet is not readable CSV ({exc})"]) from None
    keys = [header_key(h) for h in header]

    def find(options: tuple[str, ...]) -> int | None:
        hits = [i for i, k in enumerate(keys) if k in options]
        if len(hits) > 1:
            raise TerritoryError([f"line 1: more than one column could be {options[0]!r}"])
        return hits[0] if hits else None

    zip_col, client_col, color_col = find(ZIP_HEADERS), find(CLIENT_HEADERS), find(COLOR_HEADERS)
    missing = [n for n, c in (("Zipcode", zip_col), ("Territory", client_col)) if c is None]
    if missing:
        raise TerritoryError([f"line 1: missing column(s) {', '.join(missing)}"])
    problems: list[str] = []
    rows: list[dict[str, object]] = []
    try:
        for line_no, cells in enumerate(reader, start=2):
            if not any(c.strip() for c in cells):
                continue
            raw_zip = cells[zip_col].strip() if zip_col < len(cells) else ""
            client_ref = cells[client_col].strip() if client_col < len(cells) else ""
            color = (
                cells[color_col].strip() if color_col is not None and color_col < len(cells) else ""
            )
            if "\x00" in client_ref + color:
                problems.append(f"line {line_no}: a cell holds a NUL character")
                continue
            zip_code = normalise_zip(raw_zip)
            if zip_code is None:
                problems.append(f"line {line_no}: {raw_zip[:20]!r} is not a ZIP code")
                continue
            state = state_of_zip(zip_code)
            if state is None:
                problems.append(f"line {line_no}: ZIP {zip_code} is not a known US ZIP")
                continue
            if not client_ref:
                problems.append(f"line {line_no}: ZIP {zip_code} has no territory (client)")
                continue
            rows.append(
                {
                    "line": line_no,
                    "zip": zip_code,
                    "state": state,
                    "client_ref": client_ref,
                    "color": color or None,
                }
            )
    except csv.Error as exc:
        problems.append(f"the sheet is not readable CSV ({exc})")
    if (
        not rows and not problems
    ):  # a sheet is the territory from its month on: empty would clear it
        problems.append(
            "the sheet has no ZIP rows below its header (an import replaces the territory "
            "from its month on; to take ZIPs away use `homeowner zips move`)"
        )
    frame = pd.DataFrame(rows, columns=["line", "zip", "state", "client_ref", "color"])
    return ZipSheet(frame, problems)


def zip_conflicts(assignments: pd.DataFrame, held: pd.DataFrame) -> list[str]:
    """Lines whose ZIP goes to two clients in the sheet, or is held by another client already.

    `assignments`: line, zip, client_slug. `held`: zip, client_slug (this month's holders).
    """
    problems: list[str] = []
    for zip_code, group in assignments.groupby("zip", sort=True):
        slugs = sorted(set(group["client_slug"]))
        if len(slugs) > 1:
            lines = ", ".join(str(n) for n in sorted(group["line"]))
            problems.append(f"lines {lines}: ZIP {zip_code} is given to {', '.join(slugs)}")
    if not held.empty:
        merged = assignments.merge(held, on="zip", suffixes=("", "_held"))
        clash = merged[merged["client_slug"] != merged["client_slug_held"]]
        for row in clash.sort_values("line").itertuples():
            problems.append(
                f"line {row.line}: ZIP {row.zip} already belongs to {row.client_slug_held} this month"
            )
    return problems


# High-net-worth routing rules (the `hnw_routing:` section of a client YAML file)


def parse_hnw_rules(text: str, filename: str = "clients.yaml") -> pd.DataFrame:
    """Rules moving homes above `threshold` in `source_states` of `source_clients` to `destination`."""
    columns = ["name", "destination_client", "source_states", "source_clients", "threshold"]
    if not filename.lower().endswith((".yaml", ".yml")):
        return pd.DataFrame(columns=columns)
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise TerritoryError([f"{filename}: not valid YAML ({exc.__class__.__name__})"]) from exc
    rules = data.get("hnw_routing", []) if isinstance(data, dict) else []
    problems: list[str] = []
    out: list[dict[str, object]] = []
    for number, rule in enumerate(rules or [], start=1):
        where = f"hnw rule {number}"
        try:
            if not isinstance(rule, dict):
                raise ValueError("must be a mapping")
            name = str(rule.get("name") or f"hnw-{number}").strip()
            destination = (
                str(rule.get("destination") or rule.get("destination_client") or "").strip().lower()
            )
            if not SLUG_RE.match(destination):
                raise ValueError("destination must be a client slug")
            states = rule.get("source_states") or []
            states = [states] if isinstance(states, str) else states
            states = sorted({str(s).strip().upper() for s in states})
            if not states or not all(STATE_RE.match(s) for s in states):
                raise ValueError("source_states must be two-letter codes")
            sources = rule.get("source_clients") or []
            sources = [sources] if isinstance(sources, str) else sources
            sources = sorted({str(s).strip().lower() for s in sources})
            if not sources or destination in sources:
                raise ValueError("source_clients must name clients other than the destination")
            threshold = float(
                str(rule.get("threshold", DEFAULT_MAX_HOME_VALUE)).replace(",", "").replace("$", "")
            )
            out.append(
                {
                    "name": name,
                    "destination_client": destination,
                    "source_states": states,
                    "source_clients": sources,
                    "threshold": threshold,
                }
            )
        except (ValueError, TypeError) as exc:
            problems.append(f"{where}: {exc}")
    if problems:
        raise TerritoryError(problems)
    return pd.DataFrame(out, columns=columns)


def unknown_hnw_clients(rules: pd.DataFrame, known: set[str]) -> list[str]:
    """One line per client a routing rule names (destination or source) that is not `known`."""
    return [
        f"hnw rule {r.name!r}: unknown client {slug!r}"
        for r in rules.itertuples()
        for slug in [r.destination_client, *r.source_clients]
        if slug not in known
    ]


# Territories that carry forward: a sheet applies from its month on, changes apply from theirs

CHANGE_COLUMNS = ["id", "kind", "month", "zip", "state", "color", "client_slug", "from_client"]
TERRITORY_COLUMNS = ["zip", "state", "color", "client_slug", "source"]


@dataclass(frozen=True)
class Territory:
    """Who holds which ZIP in one month, how each got there, and changes that could not apply."""

    month: str
    sheet_month: str | None  # the latest sheet at or before the month; None when there is none
    zips: pd.DataFrame  # TERRITORY_COLUMNS, one row per ZIP, sorted by client then ZIP
    problems: list[tuple[int, str]]  # (change id, why it does not apply), in replay order


def sheet_month_for(changes: pd.DataFrame, month: str) -> str | None:
    """The month of the latest imported sheet at or before `month`."""
    months = changes.loc[(changes["kind"] == "sheet") & (changes["month"] <= month), "month"]
    return str(months.max()) if not months.empty else None


def derive_territory(changes: pd.DataFrame, month: str) -> Territory:
    """The ZIPs of `month`: the latest sheet at or before it, then every assignment and move
    approved for a month from that sheet's up to `month`, in month then approval order.

    A sheet replaces everything before it. An assignment takes a ZIP only when no other client
    holds it; a move only when its `from` client holds it: anything else is a problem (the caller
    refuses the change that causes one), so a ZIP never has two clients in a month.
    """
    sheet_month = sheet_month_for(changes, month)
    held: dict[str, dict[str, object]] = {}
    problems: list[tuple[int, str]] = []
    if sheet_month is not None:
        sheet = changes[
            (changes["kind"] == "sheet") & (changes["month"] == sheet_month)
        ].sort_values("id")
        for c in sheet.itertuples():
            owner = held.get(c.zip)
            if owner is not None and owner["client_slug"] != c.client_slug:
                problems.append(
                    (
                        int(c.id),
                        f"ZIP {c.zip} is given to {owner['client_slug']} and {c.client_slug} in the {sheet_month} sheet",
                    )
                )
                continue
            held[c.zip] = _holding(c, f"sheet {sheet_month}")
    later = changes[
        changes["kind"].isin(["assign", "move"])
        & (changes["month"] >= (sheet_month or ""))
        & (changes["month"] <= month)
    ].sort_values(["month", "id"])
    for c in later.itertuples():
        owner = held.get(c.zip)
        holder = owner["client_slug"] if owner else None
        if c.kind == "assign":
            if holder is not None and holder != c.client_slug:
                problems.append((int(c.id), f"ZIP {c.zip} already belongs to {holder} in {month}"))
                continue
            if holder is None:
                held[c.zip] = _holding(c, f"assigned {c.month}")
        else:
            if holder != c.from_client:
                problems.append(
                    (
                        int(c.id),
                        f"ZIP {c.zip} is held by {holder or 'no client'}, not {c.from_client}, in {month}",
                    )
                )
                continue
            held[c.zip] = _holding(c, f"moved from {c.from_client} {c.month}")
    zips = pd.DataFrame(list(held.values()), columns=TERRITORY_COLUMNS)
    zips = zips.sort_values(["client_slug", "zip"], ignore_index=True)
    return Territory(month, sheet_month, zips, problems)


def _holding(change: object, source: str) -> dict[str, object]:
    color = getattr(change, "color", None)
    return {
        "zip": change.zip,
        "state": change.state,
        "color": color if isinstance(color, str) and color else None,
        "client_slug": change.client_slug,
        "source": source,
    }


def months_to_check(
    changes: pd.DataFrame, month: str, also: list[str] | tuple[str, ...] = ()
) -> list[str]:
    """The months where a change from `month` on can clash with another: `month` itself, and each
    later month where some change applies (the territory is constant in between), plus `also`."""
    later = set(changes.loc[changes["month"] > month, "month"]) | {m for m in also if m >= month}
    return sorted({month} | {str(m) for m in later})


def new_problems(changes: pd.DataFrame, proposed: pd.DataFrame, months: list[str]) -> list[str]:
    """Problems that `proposed` changes would create in any of `months` (none: safe to record)."""
    before = {(m, p) for m in months for p in derive_territory(changes, m).problems}
    combined = pd.concat([changes, proposed], ignore_index=True) if not changes.empty else proposed
    out: list[str] = []
    for m in months:
        for problem in derive_territory(combined, m).problems:
            if (m, problem) not in before and problem[1] not in out:
                out.append(problem[1])
    return out
