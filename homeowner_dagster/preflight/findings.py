"""One line of preflight's report, and the report as a table or as JSON.

A finding names the service, the client (or the state login, or nothing for a shared service),
the check, its status and what to do. `detail` holds facts (counts, selector names, field names);
`depends` says where the code relies on what was checked, so a difference from what the project
expects (drift) points at the place to change. No finding holds a secret's value, a URL that
carries one, or a homeowner's data: probes write only names, counts and statuses into them.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field

OK, FAILED, SKIPPED = "ok", "failed", "skipped"
SERVICES: tuple[str, ...] = ("settings", "database", "cole", "bison", "debounce", "clay", "slack")


@dataclass(frozen=True)
class Finding:
    service: str
    client: str
    check: str
    status: str
    detail: str = ""
    todo: str = ""
    depends: str = ""
    links: tuple[str, ...] = field(default_factory=tuple)

    @property
    def key(self) -> str:
        """Identity across runs: the same check of the same service and client."""
        return f"{self.service}|{self.client}|{self.check}"

    @property
    def failed(self) -> bool:
        return self.status == FAILED

    def note(self) -> str:
        """The last column: what to do (failed, skipped), else what was seen."""
        if self.status == OK:
            return " ".join([self.detail, *(f"[{link}]" for link in self.links)])
        parts = [self.todo or self.detail]
        if self.todo and self.detail:
            parts.append(f"({self.detail})")
        if self.depends:
            parts.append(f"[code: {self.depends}]")
        parts += [f"[{link}]" for link in self.links]
        return " ".join(p for p in parts if p)


def ok(service: str, client: str, check: str, detail: str = "", **extra: object) -> Finding:
    return Finding(service, client, check, OK, detail, **extra)  # type: ignore[arg-type]


def failed(
    service: str, client: str, check: str, todo: str, detail: str = "", **extra: object
) -> Finding:
    return Finding(service, client, check, FAILED, detail, todo, **extra)  # type: ignore[arg-type]


def skipped(service: str, client: str, check: str, why: str, **extra: object) -> Finding:
    return Finding(service, client, check, SKIPPED, todo=why, **extra)  # type: ignore[arg-type]


def ordered(findings: Iterable[Finding]) -> list[Finding]:
    """Services in a fixed order; within one, the order the probe found them in."""
    rank = {name: i for i, name in enumerate(SERVICES)}
    return sorted(findings, key=lambda f: rank.get(f.service, len(rank)))


def counts(findings: Sequence[Finding]) -> dict[str, int]:
    return {status: sum(f.status == status for f in findings) for status in (OK, FAILED, SKIPPED)}


def table(findings: Sequence[Finding]) -> str:
    """The report for people: one line per finding, then the totals."""
    header = ("SERVICE", "CLIENT", "CHECK", "RESULT", "WHAT TO DO / WHAT WAS SEEN")
    rows = [header] + [(f.service, f.client or "-", f.check, f.status, f.note()) for f in findings]
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    lines = ["  ".join(r[i].ljust(widths[i]) for i in range(4)) + "  " + r[4] for r in rows]
    n = counts(findings)
    lines.append("")
    lines.append(f"{n[FAILED]} failed, {n[OK]} ok, {n[SKIPPED]} skipped")
    return "\n".join(line.rstrip() for line in lines)


def as_json(findings: Sequence[Finding], seconds: float) -> str:
    """The report for machines: every field of every finding, and the totals."""
    return json.dumps(
        {
            "findings": [{**asdict(f), "links": list(f.links)} for f in findings],
            "counts": counts(findings),
            "seconds": round(seconds, 2),
        },
        ensure_ascii=False,
        indent=2,
    )
