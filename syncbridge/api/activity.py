"""The dashboard's two charts: attempts started per 5 minutes over the last hour, by how they
ended (throughput), and the share of the ended ones that failed (failure rate).

Counted by start rather than by end so that the read stays small on a table of millions of
attempts (``Store.attempts_started``: an index on ``started_at``, which is written once). The
charts are plain SVG geometry computed here, drawn by the template: no script, no external
library.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from syncbridge.db.queries import Store
from syncbridge.states import AttemptOutcome

BUCKETS = 12
BUCKET = timedelta(minutes=5)
FAILED = frozenset(
    {
        AttemptOutcome.ERROR,
        AttemptOutcome.FAILED,
        AttemptOutcome.TIMEOUT,
        AttemptOutcome.LEASE_EXPIRED,
    }
)
WIDTH, HEIGHT, PAD = 560, 150, 4


@dataclass(frozen=True)
class Bucket:
    start: datetime
    succeeded: int = 0
    failed: int = 0
    running: int = 0
    other: int = 0  # released or cancelled: neither a success nor a failure

    @property
    def started(self) -> int:
        return self.succeeded + self.failed + self.running + self.other

    @property
    def failure_rate(self) -> float | None:
        judged = self.succeeded + self.failed
        return self.failed / judged if judged else None


def last_hour(store: Store, now: datetime | None = None) -> list[Bucket]:
    now = now or store.clock.now()
    start = now - BUCKET * BUCKETS
    edges = [start + BUCKET * n for n in range(BUCKETS)] + [now]
    return [
        Bucket(
            edges[n],
            succeeded=counts[AttemptOutcome.SUCCEEDED],
            failed=sum(counts[outcome] for outcome in FAILED),
            running=counts[AttemptOutcome.RUNNING],
            other=counts[AttemptOutcome.RELEASED] + counts[AttemptOutcome.CANCELLED],
        )
        for n, counts in enumerate(store.attempts_started(edges))
    ]


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    failed_y: float  # the failed part is drawn on top of the succeeded one
    failed_height: float
    label: str


@dataclass(frozen=True)
class Chart:
    width: int
    height: int
    bars: list[Bar]
    line: str  # SVG polyline points of the failure rate, "" when nothing was judged
    points: list[tuple[float, float, str]]
    peak: int
    total: int
    failure_rate: float | None


def chart(buckets: list[Bucket]) -> Chart:
    """Bars: attempts started per bucket (the failed part on top); line: failure rate."""
    peak = max((b.started for b in buckets), default=0)
    slot = (WIDTH - 2 * PAD) / max(len(buckets), 1)
    usable = HEIGHT - 2 * PAD
    bars, points = [], []
    for i, bucket in enumerate(buckets):
        x = PAD + i * slot
        height = usable * bucket.started / peak if peak else 0.0
        failed = usable * bucket.failed / peak if peak else 0.0
        top = HEIGHT - PAD - height
        label = (
            f"{bucket.start:%H:%M} UTC: {bucket.started} started, {bucket.succeeded} "
            f"succeeded, {bucket.failed} failed, {bucket.running} running"
        )
        bars.append(
            Bar(
                round(x + 1, 1),
                round(top, 1),
                round(slot - 2, 1),
                round(height, 1),
                round(top, 1),
                round(failed, 1),
                label,
            )
        )
        if bucket.failure_rate is not None:
            y = HEIGHT - PAD - usable * bucket.failure_rate
            rate = f"{bucket.start:%H:%M} UTC: {bucket.failure_rate:.0%} failed"
            points.append((round(x + slot / 2, 1), round(y, 1), rate))
    judged = sum(b.succeeded + b.failed for b in buckets)
    failed_total = sum(b.failed for b in buckets)
    return Chart(
        WIDTH,
        HEIGHT,
        bars,
        " ".join(f"{x},{y}" for x, y, _ in points),
        points,
        peak,
        sum(b.started for b in buckets),
        failed_total / judged if judged else None,
    )
