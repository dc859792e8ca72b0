"""`homeowner clean FILE [FILE...] --month YYYY-MM --out DIR`: SOP part 2 on Cole exports on disk.

All outputs are written to a temporary folder beside DIR and moved into place only when every
file is done, so a failure never leaves a half-written DIR.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import tempfile
from pathlib import Path

import pandas as pd
import pyarrow as pa

from homeowner_dagster.cli import CommandError
from homeowner_dagster.leads.calendar import month_key, parse_month
from homeowner_dagster.leads.cleaning import OUTPUT_COLUMNS, CleaningResult, clean_leads
from homeowner_dagster.leads.cole_csv import ColeFileError, read_cole_csv, write_people_csv


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "clean", help="clean Cole exports (SOP part 2) into cleaned, rejected and HNW CSVs"
    )
    p.add_argument("files", nargs="+", type=Path, metavar="FILE", help="Cole export CSV files")
    p.add_argument("--month", required=True, help="renewal month YYYY-MM")
    p.add_argument("--out", required=True, type=Path, help="output folder")
    p.add_argument(
        "--max-home-value",
        type=float,
        default=900000.0,
        help="homes above this are rejected or routed to HNW (default 900000)",
    )
    p.add_argument(
        "--hnw-states",
        default="",
        help="comma-separated states whose homes above the maximum go to hnw.csv",
    )
    p.add_argument(
        "--no-head-of-household",
        dest="head_of_household",
        action="store_false",
        help="keep rows that are not the head of household",
    )
    p.set_defaults(handler=run_clean)


def run_clean(args: argparse.Namespace) -> int:
    _use_jemalloc()
    summary = clean_files(
        args.files,
        month=args.month,
        out=args.out,
        max_home_value=args.max_home_value,
        hnw_states=args.hnw_states,
        head_of_household_required=args.head_of_household,
    )
    print(format_summary(summary))
    print(f"wrote {args.out}")
    return 0


def _use_jemalloc() -> None:
    """Arrow's jemalloc pool for this one-shot process: the default (mimalloc) gives freed memory
    back to the system at once and faults it in again page by page, which on 1M rows doubled the
    command's system time and raised its peak memory."""
    try:
        pa.set_memory_pool(pa.jemalloc_memory_pool())
    except NotImplementedError:  # a pyarrow built without jemalloc keeps its default
        pass


def parse_hnw_states(text: str) -> list[str]:
    states = [s.strip().upper() for s in (text or "").split(",") if s.strip()]
    bad = [s for s in states if not re.fullmatch(r"[A-Z]{2}", s)]
    if bad:
        raise CommandError(
            f"--hnw-states takes two-letter states like TX,OK (got {', '.join(bad)})"
        )
    return states


def clean_files(
    files: list[Path],
    *,
    month: str,
    out: Path,
    max_home_value: float = 900000.0,
    hnw_states: str | list[str] = "",
    head_of_household_required: bool = True,
) -> dict:
    """Clean several exports as one batch (a lead in two files is kept once) and write DIR.

    Returns the summary written to summary.json. Raises CommandError on bad input.
    """
    try:
        renewal_month = parse_month(month)
    except ValueError as exc:
        raise CommandError(str(exc)) from None
    if not max_home_value > 0:
        raise CommandError(f"--max-home-value must be a positive amount (got {max_home_value})")
    states = parse_hnw_states(hnw_states if isinstance(hnw_states, str) else ",".join(hnw_states))
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise CommandError(f"--out {out} exists and is not a folder")

    results: list[CleaningResult] = []
    seen_keys: set[str] = set()
    for number, path in enumerate(files, start=1):
        try:
            raw = read_cole_csv(Path(path), source_export=Path(path).name, arrow=True)
            result = clean_leads(
                raw,
                renewal_month,
                max_home_value=max_home_value,
                hnw_states=states,
                head_of_household_required=head_of_household_required,
                known_dedupe_keys=seen_keys,
            )
        except ColeFileError as exc:
            raise CommandError(f"{path}: {exc}") from None
        if number < len(files):  # the leads a later file must not repeat
            seen_keys.update(result.cleaned["dedupe_key"])
            seen_keys.update(result.hnw["dedupe_key"])
        results.append(result)

    cleaned = _stack([r.cleaned for r in results], OUTPUT_COLUMNS)
    hnw = _stack([r.hnw for r in results], OUTPUT_COLUMNS)
    rejected = _stack_rejected([r.rejected for r in results])
    summary = _merge_summaries([r.summary() for r in results])
    summary = {"month": month_key(renewal_month), "files": [str(p) for p in files], **summary}

    _write_atomically(out, cleaned, rejected, hnw if states else None, summary)
    return summary


def _stack(frames: list[pd.DataFrame], columns: list[str]) -> pd.DataFrame:
    frames = [f for f in frames if len(f)] or frames[:1]
    return pd.concat(frames, ignore_index=True)[columns]


def _stack_rejected(frames: list[pd.DataFrame]) -> pd.DataFrame:
    """Original columns of every file (union, in first-seen order), then source and reason."""
    columns: list[str] = []
    for frame in frames:
        columns += [c for c in frame.columns if c not in columns]
    tail = ["source_export", "source_row", "reason"]
    columns = [c for c in columns if c not in tail] + tail
    if len(frames) == 1:  # one export: nothing to align
        return frames[0].reset_index(drop=True)[columns]
    stacked = pd.concat(frames, ignore_index=True).reindex(columns=columns)
    text = [c for c in columns if c != "source_row"]
    stacked[text] = stacked[text].fillna("")
    return stacked


def _merge_summaries(summaries: list[dict]) -> dict:
    total = {"input_rows": 0, "cleaned_rows": 0, "rejected_rows": 0, "hnw_rows": 0}
    by_reason: dict[str, int] = {}
    for s in summaries:
        for k in total:
            total[k] += s[k]
        for reason, count in s["by_reason"].items():
            by_reason[reason] = by_reason.get(reason, 0) + count
    return {**total, "by_reason": by_reason}


def _write_atomically(
    out: Path,
    cleaned: pd.DataFrame,
    rejected: pd.DataFrame,
    hnw: pd.DataFrame | None,
    summary: dict,
) -> None:
    """Write into a temporary folder on the same disk, then rename into place."""
    out = out.absolute()
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        temp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    except OSError as exc:
        raise CommandError(f"cannot write to {out.parent}: {exc.strerror or exc}") from None
    try:
        names = ["cleaned.csv", "rejected.csv", "summary.json"]
        write_people_csv(cleaned, temp / "cleaned.csv")
        write_people_csv(rejected, temp / "rejected.csv")
        if hnw is not None:
            write_people_csv(hnw, temp / "hnw.csv")
            names.append("hnw.csv")
        (temp / "summary.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
        if not out.exists():
            os.rename(temp, out)
            return
        for name in names:  # DIR already there: replace our files, each atomically
            os.replace(temp / name, out / name)
        if hnw is None and (out / "hnw.csv").exists():
            os.remove(out / "hnw.csv")  # stale from an earlier run with routing on
    except OSError as exc:
        raise CommandError(f"cannot write {out}: {exc.strerror or exc}") from None
    finally:
        shutil.rmtree(temp, ignore_errors=True)


def format_summary(summary: dict) -> str:
    """The short table the team reads after a run."""
    rows = [("input rows", summary["input_rows"]), ("cleaned", summary["cleaned_rows"])]
    if summary["hnw_rows"]:
        rows.append(("high net worth", summary["hnw_rows"]))
    rows.append(("rejected", summary["rejected_rows"]))
    rows += [(f"  {reason}", count) for reason, count in summary["by_reason"].items() if count]
    width = max(len(label) for label, _ in rows)
    return "\n".join(f"{label:<{width}}  {count:>9,}" for label, count in rows)
