"""``syncbridge bench``: throughput, latency, enqueue rate, backlog and sync benchmarks.

Every scenario runs in a database of its own, created next to the configured one (a new
PostgreSQL database on the same server, or a new SQLite file in the same directory) and dropped
afterwards, so a benchmark never reads or changes real jobs. Workers are real
``syncbridge worker`` processes; every guarantee (attempt rows, fencing, leases, logs) stays on.
"""

from syncbridge.bench.result import BenchError, Result

__all__ = ["BenchError", "Result"]
