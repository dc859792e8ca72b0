"""Asset checks that guard the edges: frame schemas, row conservation, exactly-once uploads.

Each check is computed before the asset writes anything. A blocking check that fails stops the
step with a one-line reason (the previous partition stays in place); checks that pass are
reported on the materialization, so the UI shows them beside each partition.
"""

from collections.abc import Sequence

import pandas as pd
import pandera.errors
from dagster import AssetCheckResult, AssetCheckSeverity, AssetCheckSpec

from homeowner_dagster.leads.schemas import CleanedLeadFrame, RawLeadFrame, RejectedLeadFrame
from homeowner_dagster.run_errors import needs_fix

# What each check guards, as the UI shows it beside the asset.
DESCRIPTIONS = {
    "raw_schema": "Cole's CSVs hold the 13 SOP fields with readable types (pandera RawLeadFrame).",
    "cleaned_schema": "Cleaned and rejected leads match their schemas (pandera), every rejection with a reason.",
    "rows_conserved": "No lead silently dropped: raw = cleaned + rejected + routed.",
    "no_lead_uploaded_twice": "No lead of this window's list was uploaded in another list of the month.",
    "bison_count_matches_ledger": "Email Bison holds as many leads in the list as the ledger recorded.",
}


def specs(asset: str, *names: str) -> list[AssetCheckSpec]:
    return [
        AssetCheckSpec(name, asset=asset, blocking=True, description=DESCRIPTIONS.get(name))
        for name in names
    ]


def schema_check(name: str, model: type, frame: pd.DataFrame) -> AssetCheckResult:
    """Validate `frame` against a pandera model; the result counts failure cases, not values."""
    try:
        model.validate(frame, lazy=True)
    except pandera.errors.SchemaErrors as exc:
        cases = exc.failure_cases
        checks = sorted({str(c) for c in cases["check"].head(20)})
        return AssetCheckResult(
            check_name=name,
            passed=False,
            severity=AssetCheckSeverity.ERROR,
            metadata={"failure_cases": len(cases), "checks_failed": ", ".join(checks)},
        )
    return AssetCheckResult(check_name=name, passed=True, metadata={"rows": len(frame)})


def raw_schema(frame: pd.DataFrame) -> AssetCheckResult:
    if frame.empty and set(frame.columns) <= {"source_export", "source_row"}:
        return AssetCheckResult(check_name="raw_schema", passed=True, metadata={"rows": 0})
    return schema_check("raw_schema", RawLeadFrame, frame)


def cleaned_schema(cleaned: pd.DataFrame, rejected: pd.DataFrame) -> AssetCheckResult:
    result = schema_check("cleaned_schema", CleanedLeadFrame, cleaned)
    if result.passed:
        rejected_result = schema_check("cleaned_schema", RejectedLeadFrame, rejected)
        if not rejected_result.passed:
            return rejected_result
    return result


def rows_conserved(raw: int, cleaned: int, rejected: int, routed: int) -> AssetCheckResult:
    """raw = cleaned + rejected + routed: no lead is silently dropped."""
    return AssetCheckResult(
        check_name="rows_conserved",
        passed=raw == cleaned + rejected + routed,
        metadata={"raw": raw, "cleaned": cleaned, "rejected": rejected, "routed": routed},
    )


def no_lead_uploaded_twice(clashes: int, keys: int) -> AssetCheckResult:
    """None of this list's leads is already in another window's or client's list this month."""
    return AssetCheckResult(
        check_name="no_lead_uploaded_twice",
        passed=clashes == 0,
        metadata={"leads": keys, "already_uploaded_elsewhere": clashes},
    )


def bison_count_matches_ledger(in_bison: int, in_ledger: int) -> AssetCheckResult:
    return AssetCheckResult(
        check_name="bison_count_matches_ledger",
        passed=in_bison == in_ledger,
        metadata={"in_bison": in_bison, "in_ledger": in_ledger},
    )


def enforce(results: Sequence[AssetCheckResult]) -> list[AssetCheckResult]:
    """Stop the step when a check failed (nothing written yet); else return them to report."""
    failed = [r for r in results if not r.passed]
    if failed:
        names = ", ".join(r.check_name or "?" for r in failed)
        details = "; ".join(
            f"{r.check_name}: "
            + ", ".join(f"{k}={getattr(v, 'value', v)}" for k, v in r.metadata.items())
            for r in failed
        )
        raise needs_fix(
            f"blocking check(s) failed, nothing written: {names} ({details})",
            "read the check's result on the asset's Checks tab; re-run once the input is corrected",
            "BlockingCheckFailed",
        )
    return list(results)
