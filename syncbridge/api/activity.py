"""The reads and the drawing behind the dashboard's two charts: attempts finished per 5 minutes
over the last hour (throughput) and the share of them that failed (failure rate).

One statement for both backends: each finished attempt of the last hour is put in its bucket by
a ``CASE`` over the bucket edges (bound parameters from the store's clock), then counted by
bucket and outcome. The charts are plain SVG geometry computed here, drawn by the template: no
script, no external library.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import case, func, select

from syncbridge.db.queries import Store
from syncbridge.db.schema import attempts
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
    other: int = 0  # released or cancelled: neither a success nor a failure

    @property
    def finished(self) -> int:
        return self.succeeded + self.failed + self.other

    @property
    def failure_rate(self) -> float | None:
        judged = self.succeeded + self.failed
        return self.failed / judged if judged else None


def last_hour(store: Store, now: datetime | None = None) -> list[Bucket]:
    now = now or store.clock.now()
    start = now - BUCKET * BUCKETS
    edges = [start + BUCKET * (i + 1) for i in range(BUCKETS - 1)]
    index = case(
        *[(attempts.c.finished_at < edge, i) for i, edge in enumerate(edges)], else_=BUCKETS - 1
    )
    inner = (
        select(index.label("bucket"), attempts.c.outcome.label("outcome"))
        .where(attempts.c.finished_at >= start, attempts.c.finished_at <= now)
        .subquery()
    )
    query = select(inner.c.bucket, inner.c.outcome, func.count()).group_by(
        inner.c.bucket, inner.c.outcome
    )
    counts = [[0, 0, 0] for _ in range(BUCKETS)]
    with store.reading() as conn:
        for bucket, outcome, count in conn.execute(query).all():
            kind = 0 if outcome == AttemptOutcome.SUCCEEDED else 1 if outcome in FAILED else 2
            counts[int(bucket)][kind] += int(count)
    return [Bucket(start + BUCKET * i, *counts[i]) for i in range(BUCKETS)]


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
    """Bars: attempts finished per bucket (failed stacked on succeeded); line: failure rate."""
    peak = max((b.finished for b in buckets), default=0)
    slot = (WIDTH - 2 * PAD) / max(len(buckets), 1)
    usable = HEIGHT - 2 * PAD
    bars, points = [], []
    for i, bucket in enumerate(buckets):
        x = PAD + i * slot
        height = usable * bucket.finished / peak if peak else 0.0
        failed = usable * bucket.failed / peak if peak else 0.0
        top = HEIGHT - PAD - height
        label = (
            f"{bucket.start:%H:%M} UTC: {bucket.finished} finished, {bucket.succeeded} "
            f"succeeded, {bucket.failed} failed"
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
        sum(b.finished for b in buckets),
        failed_total / judged if judged else None,
    )
