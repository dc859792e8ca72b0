"""`homeowner preflight`: every configured service probed read-only with the real credentials.

Cole per state login, Email Bison per client workspace, DeBounce, Clay, Slack and the database;
one line per check (service, client, check, ok / failed / skipped, what to do), where a real
answer that differs from what the project expects (drift) names the code that relies on it.
The same probes run weekly as the `preflight` job (preflight/job.py).
"""

from homeowner_dagster.preflight.findings import Finding
from homeowner_dagster.preflight.runner import Report, run_preflight
from homeowner_dagster.preflight.services import Services

__all__ = ["Finding", "Report", "Services", "run_preflight"]
