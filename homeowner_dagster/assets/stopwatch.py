"""Where a step's time went (browser, cleaning, database, API calls), as materialization metadata.

The demo's benchmark adds these up across runs; the rest of a run's wall time is Dagster's own.
"""

import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager


class Stopwatch:
    STAGES = ("browser", "cleaning", "database", "api")

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        began = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] += time.perf_counter() - began

    def metadata(self) -> dict[str, float]:
        return {f"seconds_{k}": round(v, 3) for k, v in sorted(self.seconds.items())}
