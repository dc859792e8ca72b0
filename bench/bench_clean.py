"""How the whole `homeowner clean` command compares with merely reading the same Cole export.

Run by hand: `.venv/bin/python bench/bench_clean.py [N] [PAIRS]` (default 1,000,000 rows, 5 pairs).
It writes N seeded, messy rows in the SOP's 13-field shape to a temporary CSV, then runs PAIRS
pairs of whole processes, as a user would meet them (interpreter start-up and imports included):
`python -c "pandas.read_csv(FILE, dtype=str)"` and `homeowner clean FILE --month 2027-02 --out DIR`.
Within a pair the two run back to back, in alternating order (a shared machine is noisy, and the
second of two runs finds the file in the page cache no less than the first); the figure is the
median of the pairs' ratios. Peak memory is each process's own maximum resident set (wait4).
Targets: ratio <= 2.0, peak memory of `homeowner clean` <= 1.5 GiB.
"""

from __future__ import annotations

import json
import os
import shutil
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
            np.char.add(
                np.char.add(np.char.add(np.char.add(yy, "-"), np.char.zfill(mm, 2)), "-"),
                np.char.zfill(dd, 2),
            ),
            np.char.add(
                np.char.add(
                    np.char.add(np.char.add(np.char.zfill(mm, 2), "/"), np.char.zfill(dd, 2)), "/"
                ),
                yy,
            ),
        ),
    )
    purchase = np.where(rng.random(n) < 0.01, "someday", purchase)
    value = rng.integers(50_000, 1_500_000, n)
    value_text = np.where(
        rng.random(n) < 0.5,
        np.char.add("$", np.char.add(value.astype(str), ".00")),
        value.astype(str),
    )
    value_text = np.where(rng.random(n) < 0.01, "", value_text)
    phone = np.char.add("+1 (512) 555-", np.char.zfill(rng.integers(0, 9999, n).astype(str), 4))
    return pd.DataFrame(
        {
            "First_Name": firsts[rng.integers(0, len(firsts), n)],
            "Last_Name": lasts[rng.integers(0, len(lasts), n)],
            "Address_1": np.char.add(
                np.char.add(house, " "), streets[rng.integers(0, len(streets), n)]
            ),
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


TARGET_RATIO = 2.0
TARGET_PEAK_MIB = 1536
READ_CSV = "import sys, pandas; pandas.read_csv(sys.argv[1], dtype=str)"


def timed(command: list[str]) -> tuple[float, float, float]:
    """Wall seconds, peak resident MiB and CPU seconds (user + system, every thread) of one whole
    process; fails loudly if the process fails."""
    started = time.perf_counter()
    child = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(child.pid, 0)
    seconds = time.perf_counter() - started
    child.returncode = os.waitstatus_to_exitcode(status)
    error = child.stderr.read().decode(errors="replace") if child.stderr else ""
    if child.returncode:
        raise SystemExit(f"{command[0]} exited {child.returncode}: {error.strip()}")
    return seconds, usage.ru_maxrss / 1024, usage.ru_utime + usage.ru_stime  # maxrss in KiB


def main() -> None:
    if sys.argv[1:2] == ["--generate"]:
        messy_rows(int(sys.argv[2])).to_csv(sys.argv[3], index=False, lineterminator="\r\n")
        return
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
    pairs = int(sys.argv[2]) if len(sys.argv) > 2 else 5
    homeowner = str(Path(sys.executable).with_name("homeowner"))
    print("load average before: {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))
    with tempfile.TemporaryDirectory(prefix="bench-clean-") as tmp:
        source = Path(tmp) / "cole_export.csv"
        out = Path(tmp) / "out"
        started = time.perf_counter()
        subprocess.run([sys.executable, __file__, "--generate", str(n), str(source)], check=True)
        print(
            f"generated {n:,} rows ({source.stat().st_size / 2**20:.0f} MiB) "
            f"in {time.perf_counter() - started:.1f} s"
        )
        read_command = [sys.executable, "-c", READ_CSV, str(source)]
        clean_command = [homeowner, "clean", str(source), "--month", MONTH, "--out", str(out)]
        timed(read_command)  # once untimed: the file and both programs in the page cache
        reads, cleans, ratios = [], [], []
        for i in range(pairs):
            shutil.rmtree(out, ignore_errors=True)
            if i % 2 == 0:
                read, clean = timed(read_command), timed(clean_command)
            else:
                clean, read = timed(clean_command), timed(read_command)
            reads.append(read)
            cleans.append(clean)
            ratios.append(clean[0] / read[0])
            print(
                f"pair {i + 1}: read_csv {read[0]:.2f} s (cpu {read[2]:.2f} s) {read[1]:.0f} MiB, "
                f"homeowner clean {clean[0]:.2f} s (cpu {clean[2]:.2f} s) {clean[1]:.0f} MiB, "
                f"ratio {ratios[-1]:.2f}"
            )
        summary = json.loads((out / "summary.json").read_text())
    ratio = statistics.median(ratios)
    peak = max(c[1] for c in cleans)
    print("load average after: {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))
    print(
        f"pandas.read_csv(dtype=str) process: median {statistics.median(r[0] for r in reads):.2f} s, "
        f"peak {max(r[1] for r in reads):.0f} MiB"
    )
    print(
        f"homeowner clean process:           median {statistics.median(c[0] for c in cleans):.2f} s, "
        f"peak {peak:.0f} MiB"
    )
    cpu_ratio = statistics.median(c[2] / r[2] for r, c in zip(reads, cleans, strict=True))
    print(f"cpu seconds ratio, median:         {cpu_ratio:.2f} (both use every core they get)")
    print(
        f"ratio, median of {pairs} pairs:      {ratio:.2f} "
        f"(range {min(ratios):.2f}-{max(ratios):.2f}; target <= {TARGET_RATIO})"
    )
    print(f"peak memory of homeowner clean:    {peak:.0f} MiB (target <= {TARGET_PEAK_MIB})")
    print("summary:", json.dumps({k: summary[k] for k in summary if k != "files"}))


if __name__ == "__main__":
    main()
