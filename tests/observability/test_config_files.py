"""config/ and docker-compose.yml: they parse, they agree with each other, and every metric they
name is one syncbridge exports."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from syncbridge.clock import FakeClock
from syncbridge.config import Settings, load_settings
from syncbridge.db.engine import make_engine
from syncbridge.db.queries import Store
from syncbridge.metrics import DatabaseCollector, Metrics
from tests.observability.promtext import exported_sample_names

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "config"
DASHBOARD = CONFIG / "grafana" / "dashboards" / "syncbridge.json"
ALERTS = CONFIG / "alerts.yml"
METRIC = re.compile(r"\bsyncbridge_[a-z0-9_]+\b")
DURATION = re.compile(r"^\d+[smhd]$")
REQUIRED_ALERTS = {
    "SyncbridgeDLQGrowing",
    "SyncbridgeOldestPendingJobTooOld",
    "SyncbridgeNoWorkerHeartbeat",
    "SyncbridgeLeaseExpirationsSpiking",
    "SyncbridgeUpstream5xxRate",
    "SyncbridgeEffectUnansweredForAnHour",
}
SERVICES = {"postgres", "mocks", "worker-1", "worker-2", "api", "prometheus", "grafana"}


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


@pytest.fixture(scope="module")
def exported() -> set[str]:
    store = Store(make_engine("sqlite://"), FakeClock())  # never queried: describe() only
    families = [*Metrics().registry.collect(), *DatabaseCollector(store).describe()]
    return exported_sample_names(families)


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    document: dict[str, Any] = load_yaml(ROOT / "docker-compose.yml")
    return document


def dashboard_exprs() -> list[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    return [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]


def alert_rules() -> list[dict[str, Any]]:
    return [rule for group in load_yaml(ALERTS)["groups"] for rule in group["rules"]]


def option(command: list[str], name: str) -> str:
    return command[command.index(name) + 1]


# -- metric names --------------------------------------------------------------------------------


def test_every_metric_in_the_dashboard_exists(exported: set[str]) -> None:
    named = {name for expr in dashboard_exprs() for name in METRIC.findall(expr)}
    assert named, "the dashboard names no syncbridge metric"
    assert named <= exported, f"unknown metrics in the dashboard: {sorted(named - exported)}"


def test_every_metric_in_the_alerts_exists(exported: set[str]) -> None:
    named = {name for rule in alert_rules() for name in METRIC.findall(rule["expr"])}
    assert named <= exported, f"unknown metrics in the alert rules: {sorted(named - exported)}"


# -- the dashboard -------------------------------------------------------------------------------


def test_dashboard_covers_what_operators_watch() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    panels = [p for p in dashboard["panels"] if p["type"] != "row"]
    assert len({p["id"] for p in dashboard["panels"]}) == len(dashboard["panels"])
    for panel in panels:
        assert panel["targets"] and panel["datasource"]["uid"] == "${datasource}", panel["title"]
    text = " ".join(dashboard_exprs())
    for needle in (
        "rate(syncbridge_jobs_finished_total",  # throughput
        "histogram_quantile(0.95, sum by (le, job_type) (rate(syncbridge_attempt_duration",
        "syncbridge_retries_total",
        'syncbridge_jobs_finished_total{state=~"failed|dead"}',  # failure rate
        "syncbridge_lease_expirations_total",
        "syncbridge_jobs_recovered_total",
        "syncbridge_queue_depth",
        'delta(syncbridge_queue_depth{state="dead"}',  # DLQ growth
        'syncbridge_upstream_requests_total{status=~"5..|no_response"}',
    ):
        assert needle in text, needle


def test_grafana_provisioning_points_at_the_dashboard() -> None:
    datasources = load_yaml(CONFIG / "grafana" / "provisioning" / "datasources" / "prometheus.yml")
    [source] = datasources["datasources"]
    assert source["uid"] == "prometheus" and source["url"] == "http://prometheus:9090"
    dashboard = json.loads(DASHBOARD.read_text())
    [variable] = dashboard["templating"]["list"]
    assert variable["current"]["value"] == source["uid"]
    providers = load_yaml(CONFIG / "grafana" / "provisioning" / "dashboards" / "syncbridge.yml")
    assert providers["providers"][0]["options"]["path"] == "/var/lib/grafana/dashboards"


# -- alert rules ---------------------------------------------------------------------------------


def test_alert_rules_parse_and_are_complete() -> None:
    rules = alert_rules()
    assert {rule["alert"] for rule in rules} >= REQUIRED_ALERTS
    for rule in rules:
        assert set(rule) <= {"alert", "expr", "for", "labels", "annotations"}, rule["alert"]
        assert DURATION.match(rule["for"]), rule["alert"]
        assert rule["labels"]["severity"] in {"critical", "warning", "info"}
        assert rule["annotations"]["summary"] and rule["annotations"]["description"]
        expr = rule["expr"]
        for opening, closing in ("()", "{}", "[]"):
            assert expr.count(opening) == expr.count(closing), (rule["alert"], opening)
        assert expr.count('"') % 2 == 0, rule["alert"]


PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(PROMTOOL is None, reason="promtool is not installed")


def promtool(*args: str, cwd: Path = CONFIG) -> None:
    assert PROMTOOL is not None
    run = subprocess.run([PROMTOOL, *args], cwd=cwd, capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stdout + run.stderr


@needs_promtool
def test_promtool_checks_the_rules() -> None:
    promtool("check", "rules", str(ALERTS))


@needs_promtool
def test_promtool_runs_the_rule_unit_tests() -> None:
    promtool("test", "rules", "alerts.test.yml")


@needs_promtool
def test_promtool_checks_the_prometheus_config(tmp_path: Path) -> None:
    config = load_yaml(CONFIG / "prometheus.yml")
    config["rule_files"] = [str(ALERTS)]  # the compose stack mounts it at /etc/prometheus
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    promtool("check", "config", str(tmp_path / "prometheus.yml"))


# -- prometheus.yml and docker-compose.yml -------------------------------------------------------


def test_prometheus_scrapes_every_process_of_the_stack(compose: dict[str, Any]) -> None:
    config = load_yaml(CONFIG / "prometheus.yml")
    assert config["rule_files"] == ["/etc/prometheus/alerts.yml"]
    targets = {
        target
        for job in config["scrape_configs"]
        for static in job["static_configs"]
        for target in static["targets"]
    }
    services = compose["services"]
    expected = {
        f"{name}:{option(services[name]['command'], '--metrics-port')}"
        for name in ("worker-1", "worker-2")
    } | {f"api:{option(services['api']['command'], '--port')}"}
    assert targets == expected


def test_compose_runs_the_whole_stack(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert set(services) >= SERVICES
    assert services["postgres"]["image"].startswith("postgres:")
    assert services["prometheus"]["image"].startswith("prom/prometheus:")
    assert services["grafana"]["image"].startswith("grafana/grafana:")
    assert services["mocks"]["command"][:3] == ["syncbridge", "mocks", "serve"]
    assert option(services["mocks"]["command"], "--host") == "0.0.0.0"
    assert services["api"]["command"][:2] == ["syncbridge", "serve"]
    assert option(services["api"]["command"], "--host") == "0.0.0.0"
    ports = {name: service.get("ports", []) for name, service in services.items()}
    assert "8000:8000" in ports["api"] and "9090:9090" in ports["prometheus"]
    assert "3000:3000" in ports["grafana"]
    assert {"8101:8101", "8102:8102"} <= set(ports["mocks"])
    host_ports = [p.rsplit(":", 2)[-2] for published in ports.values() for p in published]
    assert len(host_ports) == len(set(host_ports)), "two services publish the same host port"
    for name in ("worker-1", "worker-2"):
        command = services[name]["command"]
        assert command[:2] == ["syncbridge", "worker"]
        metrics_port = option(command, "--metrics-port")
        assert any(p.endswith(f":{metrics_port}") for p in ports[name])
        assert services[name]["depends_on"]["migrate"]["condition"] == (
            "service_completed_successfully"
        )
    for name in ("migrate", "mocks", "worker-1", "worker-2", "api"):
        environment = services[name]["environment"]
        assert "@postgres:5432/" in environment["SYNCBRIDGE_DATABASE_URL"]
        assert environment["SYNCBRIDGE_CRM_URL"] == "http://mocks:8101"
        assert (ROOT / services[name]["build"]["dockerfile"]).is_file()
    for name in ("prometheus", "grafana"):
        for volume in services[name]["volumes"]:
            source = volume.split(":")[0]
            assert (ROOT / source).exists(), f"{name} mounts missing {source}"


# -- the example settings ------------------------------------------------------------------------


def test_example_settings_file_is_valid_and_shows_the_defaults(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for key in list(os.environ):
        if key.startswith("SYNCBRIDGE_"):
            monkeypatch.delenv(key)
    loaded = load_settings(CONFIG / "syncbridge.example.toml")
    assert loaded.model_dump() == Settings().model_dump()
