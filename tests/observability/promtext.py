"""Reading metrics in tests: from a registry or from scraped text, and the label rules."""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families

# The only label names a syncbridge_ metric may carry (``le``: histogram buckets).
ALLOWED_LABELS = {
    "job_type",
    "outcome",
    "state",
    "error_class",
    "upstream",
    "method",
    "status",
    "route",
    "deduplicated",
    "le",
}
SAMPLE_SUFFIXES = {
    "counter": ("_total",),
    "histogram": ("_bucket", "_count", "_sum"),
    "gauge": ("",),
    "summary": ("_count", "_sum", ""),
}


def parse(text: str) -> list[Metric]:
    return list(text_string_to_metric_families(text))


def value(families: Iterable[Metric], name: str, **labels: str) -> float | None:
    """The value of the sample ``name`` with exactly ``labels`` (ignoring ``instance`` etc.)."""
    for family in families:
        for sample in family.samples:
            if sample.name == name and sample.labels == labels:
                return float(sample.value)
    return None


def ours(families: Iterable[Metric]) -> list[Metric]:
    return [family for family in families if family.name.startswith("syncbridge_")]


def assert_bounded_labels(families: Iterable[Metric], forbidden: Iterable[str]) -> int:
    """No syncbridge_ label is named outside the allowed set or carries a forbidden value
    (a job id, an entity id). Returns how many samples were checked."""
    forbidden = {str(value) for value in forbidden}
    checked = 0
    for family in ours(families):
        for sample in family.samples:
            checked += 1
            assert set(sample.labels) <= ALLOWED_LABELS, (sample.name, sample.labels)
            leaked = forbidden.intersection(sample.labels.values())
            assert not leaked, f"{sample.name}{sample.labels} carries ids {leaked}"
    return checked


def exported_sample_names(families: Iterable[Metric]) -> set[str]:
    """Every sample name ``families`` can expose, whether or not a labelled child exists yet."""
    names: set[str] = set()
    for family in families:
        for suffix in SAMPLE_SUFFIXES.get(family.type, ("",)):
            names.add(family.name + suffix)
    return names
