"""Grafana dashboards: valid for Grafana's dashboard model, fixed uids, provisioned by the stack."""

from __future__ import annotations

import json
from typing import Any

import pytest
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models.dashboard import Dashboard as DashboardModel

from components.monitoring.dashboards import BOARDS, build
from components.render.grafana_provisioning import DASHBOARDS_DIR, PROMETHEUS_DATASOURCE_UID
from tests.stack_harness import stack_run, uploads


def round_trip(data: dict[str, object]) -> dict[str, object]:
    """Decode with grafana-foundation-sdk's typed dashboard model (Grafana 11.3's schema) and
    encode again: a field the schema does not know, or a value of the wrong shape, is lost."""
    model = DashboardModel.from_json(data)
    encoded: dict[str, object] = json.loads(json.dumps(model, cls=JSONEncoder))
    return encoded


def panels(data: dict[str, object]) -> list[dict[str, Any]]:
    found = data["panels"]
    assert isinstance(found, list)
    return found


@pytest.mark.req("UT-INFRA-04.3")
@pytest.mark.parametrize("board", BOARDS, ids=lambda b: b.uid)
def test_dashboard_matches_grafanas_dashboard_model(board) -> None:
    data = build(board)
    assert round_trip(data) == data


def test_the_model_check_catches_a_wrong_field() -> None:
    data = build(BOARDS[0])
    data["refrsh"] = "5s"
    assert round_trip(data) != data


@pytest.mark.req("UT-INFRA-04.3")
@pytest.mark.parametrize("board", BOARDS, ids=lambda b: b.uid)
def test_panels_use_the_provisioned_datasource_and_fit_the_grid(board) -> None:
    data = build(board)
    ids = [p["id"] for p in panels(data)]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    for panel in panels(data):
        grid = panel["gridPos"]
        assert grid["x"] >= 0 and grid["x"] + grid["w"] <= 24, panel["title"]
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == {"type": "prometheus", "uid": PROMETHEUS_DATASOURCE_UID}
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["expr"] and target["datasource"]["uid"] == PROMETHEUS_DATASOURCE_UID


def test_dashboards_have_fixed_unique_uids_and_cover_the_platform() -> None:
    uids = [b.uid for b in BOARDS]
    assert len(set(uids)) == len(uids)
    assert all(8 <= len(uid) <= 40 for uid in uids)
    assert set(uids) == {
        "platform-overview",
        "platform-postgres",
        "platform-redis",
        "platform-nginx",
        "platform-host",
        "platform-runtime",
        "platform-slo",
    }


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_grafana_is_provisioned_with_every_dashboard(stack: str) -> None:
    files = uploads(stack_run(stack), "grafana")
    for board in BOARDS:
        assert json.loads(files[f"{DASHBOARDS_DIR}/{board.uid}.json"]) == build(board)
    provider = files["/etc/grafana/provisioning/dashboards/platform.yml"]
    assert f"path: {DASHBOARDS_DIR}" in provider
    datasource = files["/etc/grafana/provisioning/datasources/prometheus.yml"]
    assert f"uid: {PROMETHEUS_DATASOURCE_UID}" in datasource
