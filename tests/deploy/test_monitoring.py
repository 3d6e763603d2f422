"""deploy/prometheus and deploy/grafana: the alert rules pass `promtool check rules` and
their own unit tests, and every Crier series they name is one the service exports."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from flask import Flask
from prometheus_client import REGISTRY

from app.metrics import StateCollector

ROOT = Path(__file__).resolve().parents[2]
PROMETHEUS = ROOT / "deploy" / "prometheus"
DASHBOARD = ROOT / "deploy" / "grafana" / "crier-dashboard.json"
SUFFIXES = ("_bucket", "_count", "_sum", "_total", "_created")

promtool = pytest.mark.skipif(
    shutil.which("promtool") is None,
    reason="promtool missing: `apt-get install -y prometheus` (.ci/run installs it)",
)


def run_promtool(*args: str) -> str:
    result = subprocess.run(
        ["promtool", *args], cwd=PROMETHEUS, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


@promtool
def test_alert_rules_pass_promtool_check() -> None:
    assert "SUCCESS: 9 rules found" in run_promtool("check", "rules", "alerts.yml")


@promtool
def test_alert_rules_fire_as_their_unit_tests_expect() -> None:
    assert "SUCCESS" in run_promtool("test", "rules", "alerts_test.yml")


@promtool
def test_scrape_config_is_valid() -> None:
    run_promtool("check", "config", "prometheus.yml")


def exported_names(app: Flask) -> set[str]:
    names = {metric.name for metric in REGISTRY.collect() if metric.name.startswith("crier_")}
    names |= {metric.name for metric in StateCollector(app).collect()}
    return names


def base_name(series: str) -> str:
    for suffix in SUFFIXES:
        if series.endswith(suffix):
            return series[: -len(suffix)]
    return series


def named_series(expressions: list[str]) -> set[str]:
    return {base_name(n) for e in expressions for n in re.findall(r"\bcrier_[a-z_]+", e)}


def test_alerts_cover_the_issue_and_name_real_series(app: Flask) -> None:
    groups = yaml.safe_load((PROMETHEUS / "alerts.yml").read_text())["groups"]
    rules = {r["alert"]: r["expr"] for g in groups for r in g["rules"]}
    for wanted in (
        "CrierPublishLatenessHigh",
        "CrierUnconfirmedTargets",
        "CrierFailuresRising",
        "CrierQueueGrowing",
        "CrierBeatSilent",
        "CrierAccountsNeedReconnect",
    ):
        assert wanted in rules
    used = named_series(list(rules.values()))
    assert used and used <= exported_names(app), used - exported_names(app)


def test_dashboard_panels_name_real_series(app: Flask) -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    expressions = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    used = named_series(expressions)
    assert used <= exported_names(app), used - exported_names(app)
    # Every series the service exports has a panel.
    assert exported_names(app) - {"crier_broker_up", "crier_database_up"} <= used | {
        "crier_broker_up",
        "crier_database_up",
    }
    assert len({p["id"] for p in dashboard["panels"]}) == len(dashboard["panels"])
