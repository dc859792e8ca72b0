"""How `homeowner clean` compares with merely reading the same Cole export.

Run by hand: `.venv/bin/python bench/bench_clean.py [N] [RUNS]` (default 1,000,000 rows, 1 run).
It writes N seeded, messy rows in the SOP's 13-field shape to a temporary CSV, then times, each
in a fresh subprocess so peak memory is measured per step: plain `pd.read_csv` of that file, and
the code path of `homeowner clean` (the very function the command calls). With RUNS > 1 the two
alternate RUNS times (a shared machine is noisy) and the medians are reported. Targets: ratio
<= 2.0, peak memory <= 2 GiB.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

HEADER = [
    "First_Name", "Last_Name", "Address_1", "City", "State", "Zip", "Cell Phone Number",
    "Email_Address", "Purchase_Date (MM/DD/YYYY)", "Home_Value", "Head_Household", "Income",
    "Date_of_Birth",
]  # fmt: skip
MONTH = "2027-02"


def messy_rows(n: int, seed: int = 20270215) -> pd.DataFrame:
    """N rows like a Cole export for renewal month February: mostly good, some of every fault."""
    rng = np.random.default_rng(seed)
    firsts = np.array(["JOHN", "mary-jane", "o'brien", "JOSÉ", " Ann ", "Luis", "KIM & LEE", "pat"])
    lasts = np.array(["SMITH", "o'neil", "García", "LEE", "van der berg", " DOE"])
    streets = np.array(["MAIN ST", "5TH AVE", "oak  lane", "N 22ND ST", "Elm\nRd", "MARKET ST."])
    cities = np.array(["AUSTIN", "newark", "san  antonio", "Houston"])
    states = np.array(["TX", "nj", "Tx ", "NJ"])
    k = np.arange(n)
    house = rng.integers(1, 9999, n).astype(str)
    zips = rng.integers(1000, 99999, n).astype(str)
    zip_fault = rng.random(n)
    zips = np.where(zip_fault < 0.01, "ABCDE", zips)
    zips = np.where((zip_fault >= 0.01) & (zip_fault < 0.05), np.char.add(zips, "-1234"), zips)
    user = np.char.add("user", (k % (n - n // 50 + 1)).astype(str))  # about 2% repeat
    email = np.char.add(user, np.where(rng.random(n) < 0.02, "@@bad", "@Example.COM"))
    email = np.where(rng.random(n) < 0.01, "", email)
    month = np.where(rng.random(n) < 0.9, 2, rng.integers(1, 13, n))
    day = rng.integers(1, 29, n)
    year = rng.integers(1990, 2026, n)
    style = rng.integers(0, 3, n)
    mm, dd, yy = month.astype(str), day.astype(str), year.astype(str)
    purchase = np.where(
        style == 0,
        np.char.add(np.char.add(np.char.add(np.char.add(mm, "/"), dd), "/"), yy),
        np.where(
            style == 1,
            np.char.add(np.char.add(np.char.add(np.char.add(yy, "-"), np.char.zfill(mm, 2)), "-"),
                        np.char.zfill(dd, 2)),
            np.char.add(np.char.add(np.char.add(np.char.add(np.char.zfill(mm, 2), "/"),
                                                np.char.zfill(dd, 2)), "/"), yy),
        ),
    )
    purchase = np.where(rng.random(n) < 0.01, "someday", purchase)
    value = rng.integers(50_000, 1_500_000, n)
    value_text = np.where(
        rng.random(n) < 0.5, np.char.add("$", np.char.add(value.astype(str), ".00")), value.astype(str)
    )
    value_text = np.where(rng.random(n) < 0.01, "", value_text)
    phone = np.char.add("+1 (512) 555-", np.char.zfill(rng.integers(0, 9999, n).astype(str), 4))
    return pd.DataFrame(
        {
            "First_Name": firsts[rng.integers(0, len(firsts), n)],
            "Last_Name": lasts[rng.integers(0, len(lasts), n)],
            "Address_1": np.char.add(np.char.add(house, " "), streets[rng.integers(0, len(streets), n)]),
            "City": cities[rng.integers(0, len(cities), n)],
            "State": states[rng.integers(0, len(states), n)],
            "Zip": zips,
            "Cell Phone Number": phone,
            "Email_Address": email,
            "Purchase_Date (MM/DD/YYYY)": purchase,
            "Home_Value": value_text,
            "Head_Household": np.where(rng.random(n) < 0.9, "Y", "N"),
            "Income": rng.integers(30, 300, n).astype(str),
            "Date_of_Birth": np.char.add("1/2/", rng.integers(1940, 2000, n).astype(str)),
        }
    )


READ_ONLY = """
import sys, time, resource, json
import pandas as pd
t = time.perf_counter()
frame = pd.read_csv(sys.argv[1])
elapsed = time.perf_counter() - t
print(json.dumps({"seconds": elapsed, "rows": len(frame),
                  "peak_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))
"""

CLEAN = """
import sys, time, resource, json
from pathlib import Path
from homeowner_dagster.cli.clean import clean_files
t = time.perf_counter()
summary = clean_files([Path(sys.argv[1])], month=sys.argv[2], out=Path(sys.argv[3]))
elapsed = time.perf_counter() - t
print(json.dumps({"seconds": elapsed, "summary": summary,
                  "peak_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))
"""


def run(code: str, *args: str) -> dict:
    done = subprocess.run(
        [sys.executable, "-c", code, *args], check=True, capture_output=True, text=True
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    if sys.argv[1:2] == ["--generate"]:
        messy_rows(int(sys.argv[2])).to_csv(sys.argv[3], index=False, lineterminator="\r\n")
        return
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
    runs = int(sys.argv[2]) if len(sys.argv) > 2 else 1
    with tempfile.TemporaryDirectory(prefix="bench-clean-") as tmp:
        source = Path(tmp) / "cole_export.csv"
        started = time.perf_counter()
        # In a child too: ru_maxrss survives fork+exec, so a big parent would inflate the peaks.
        subprocess.run(
            [sys.executable, __file__, "--generate", str(n), str(source)], check=True
        )
        print(f"generated {n:,} rows ({source.stat().st_size / 2**20:.0f} MiB) "
              f"in {time.perf_counter() - started:.1f} s")
        reads, cleans = [], []
        for i in range(runs):
            reads.append(run(READ_ONLY, str(source)))
            cleans.append(run(CLEAN, str(source), MONTH, str(Path(tmp) / f"out{i}")))
            if runs > 1:
                print(f"run {i + 1}: read {reads[-1]['seconds']:.2f} s, "
                      f"clean {cleans[-1]['seconds']:.2f} s")
    read = {k: statistics.median(r[k] for r in reads) for k in ("seconds", "peak_kib")}
    clean = {k: statistics.median(r[k] for r in cleans) for k in ("seconds", "peak_kib")}
    clean["summary"] = cleans[-1]["summary"]
    ratio = clean["seconds"] / read["seconds"]
    print(f"pd.read_csv:      {read['seconds']:.2f} s, peak {read['peak_kib'] / 1024:.0f} MiB")
    print(f"homeowner clean:  {clean['seconds']:.2f} s, peak {clean['peak_kib'] / 1024:.0f} MiB")
    print(f"ratio:            {ratio:.2f} (target <= 2.0)")
    print(f"peak memory:      {clean['peak_kib'] / 1024:.0f} MiB (target <= 2048)")
    print("summary:", json.dumps(clean["summary"]))


if __name__ == "__main__":
    main()
