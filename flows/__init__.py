"""Prefect flows over the curate library: the full pipeline and an incremental refresh.

Each stage is a Prefect task that passes URIs and small summaries; the partitions of a stage run
on one Dask cluster shared by the whole flow run (local worker processes, started by the first
stage worth them, or an existing scheduler). Prefect tasks themselves run in the flow's process,
so Dask workers never need the Prefect API: the flows run with no Prefect server configured (a
temporary one is started for the flow's own process, `flows.server`) and against a real server
when PREFECT_API_URL is set. `flows.serve` serves the refresh on a schedule (`curate schedule`).
"""

import os

# Prefect's temporary server sends a telemetry heartbeat that races other local servers for the
# SQLite file ("database is locked"); curate's flows keep it off unless the user set it.
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")

# Prefect gives its temporary server 20 s to start; a fresh database on a busy machine needs more
# (seen: CI timed out). Flows called in-process (`curate_pipeline(...)`) get the same allowance
# as `python -m flows...`, which starts the server itself (flows.server.prefect_api).
SERVER_STARTUP_S = 300
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", str(SERVER_STARTUP_S))
