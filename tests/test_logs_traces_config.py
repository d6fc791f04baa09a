"""Loki, Tempo and Alloy configurations against their projects' references at the pinned
versions (no Loki, Tempo or Alloy binary can be installed here; docs/logs-traces.md says
what that leaves unchecked). Key lists: tests/data/*-keys.txt, made by
tests/data/extract_reference_keys.py from the git tags named in their file names."""

from __future__ import annotations

import http.server
import json
import re
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from components.alloy import PORT as ALLOY_PORT
from components.alloy import AlloyArgs, alloy_spec
from components.config import ConfigError
from components.loki import PORT as LOKI_PORT
from components.render.alloy_config import Block, alloy_blocks
from components.render.loki_yml import loki_config
from components.render.tempo_yml import tempo_config
from runtime.settings import load_settings
from tests.stack_harness import run_stack, stack_run, unwrap, uploads

DATA = Path(__file__).parent / "data"
# Alloy blocks documented in shared include files, not the component's own page: not checked.
ALLOY_SHARED = {
    "otelcol.exporter.otlphttp": {"endpoint", "tls", "insecure"},
    "otelcol.receiver.otlp": {"endpoint", "traces"},
    "otelcol.processor.batch": {"traces"},
}


def _keys(name: str) -> set[str]:
    return set((DATA / name).read_text().split("\n")) - {""}


def _paths(node: Any, prefix: str = "") -> Iterator[str]:
    if isinstance(node, dict):
        for k, v in node.items():
            yield prefix + k
            yield from _paths(v, prefix + k + ".")
    elif isinstance(node, list):
        for item in node:
            yield from _paths(item, prefix)


def test_every_loki_key_exists_in_lokis_reference() -> None:
    known = _keys("loki-3.7.6-keys.txt")
    used = {p.rsplit(".", 1)[-1] for p in _paths(loki_config(31))}
    assert used - known == set()
    assert "retention_enabld" not in known  # the check can fail


def test_every_tempo_key_path_exists_in_tempos_manifest() -> None:
    # omitempty in cmd/tempo/app/config.go at v2.10.8, so the manifest (defaults) leaves it out
    known = _keys("tempo-2.10.8-keys.txt") | {"stream_over_http_enabled"}
    # receivers are OpenTelemetry Collector configuration (the manifest shows `receivers: {}`)
    used = {p for p in _paths(tempo_config(7)) if not p.startswith("distributor.receivers.")}
    assert used - known == set()


def _alloy_names(block: Block, component: str) -> Iterator[tuple[str, str]]:
    for name in block.attrs:
        yield component, name
    for child in block.blocks:
        yield component, child.name
        yield from _alloy_names(child, component)


def test_every_alloy_argument_and_block_is_in_its_components_reference() -> None:
    known = _keys("alloy-1.18.1-keys.txt")
    for block in alloy_blocks("http://loki:3100/loki/api/v1/push", "http://tempo:4318", "dev"):
        for component, name in _alloy_names(block, block.name):
            if name in ALLOY_SHARED.get(component, set()):
                continue
            assert f"{component}: {name}" in known, (component, name)


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_the_stack_uploads_these_configurations_with_its_retention(stack: str) -> None:
    run = stack_run(stack)
    loki = yaml.safe_load(uploads(run, "loki")["/etc/loki/platform.yml"])
    assert loki["limits_config"]["retention_period"] == "744h"
    assert loki["compactor"]["retention_enabled"] is True
    tempo = yaml.safe_load(uploads(run, "tempo")["/etc/tempo/platform.yml"])
    assert tempo["compactor"]["compaction"]["block_retention"] == "168h"
    alloy = uploads(run, "alloy")["/etc/alloy/platform.alloy"]
    assert 'url = "http://loki:3100/loki/api/v1/push"' in alloy
    assert 'endpoint = "http://tempo:4318"' in alloy


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_grafana_links_logs_to_traces_and_back(stack: str) -> None:
    files = uploads(stack_run(stack), "grafana")
    sources = yaml.safe_load(files["/etc/grafana/provisioning/datasources/prometheus.yml"])
    by_uid = {d["uid"]: d for d in sources["datasources"]}
    assert set(by_uid) == {"prometheus", "loki", "tempo"}
    derived = by_uid["loki"]["jsonData"]["derivedFields"][0]
    # keys of Grafana's DerivedFieldConfig and TraceToLogsOptionsV2 (Grafana's loki/types.ts,
    # TraceToLogsSettings.tsx)
    assert set(derived) <= {"name", "matcherRegex", "matcherType", "url", "urlDisplayLabel",
                            "datasourceUid"}  # fmt: skip
    assert derived["datasourceUid"] == "tempo" and derived["url"] == "$${__value.raw}"
    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    line = json.dumps({"event": "x", "trace_id": trace_id, "span_id": "00f067aa0ba902b7"})
    found = re.search(derived["matcherRegex"], line)
    assert found is not None and found.group(1) == trace_id
    to_logs = by_uid["tempo"]["jsonData"]["tracesToLogsV2"]
    assert set(to_logs) <= {"datasourceUid", "tags", "spanStartTimeShift",
                            "spanEndTimeShift", "filterByTraceID", "filterBySpanID", "query",
                            "customQuery"}  # fmt: skip
    assert to_logs["datasourceUid"] == "loki" and to_logs["filterByTraceID"] is True


def _serve(status: int) -> tuple[http.server.HTTPServer, int]:
    class Ready(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(status if self.path == "/-/ready" else 404)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Ready)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, server.server_address[1]


@pytest.mark.parametrize(("status", "healthy"), [(200, True), (503, False)])
def test_alloys_bash_probe_speaks_http_to_its_ready_endpoint(status: int, healthy: bool) -> None:
    spec = alloy_spec(AlloyArgs("grafana/alloy:v1.18.1", 256, "dev", "http://l", "http://t"))
    assert spec.health is not None
    command = list(spec.health.command)
    server, port = _serve(status)
    try:
        command[-1] = command[-1].replace(f"/{ALLOY_PORT};", f"/{port};")
        done = subprocess.run(command, capture_output=True, timeout=10)
    finally:
        server.shutdown()
    assert (done.returncode == 0) is healthy, done.stderr


def test_alloys_probe_fails_when_nothing_listens() -> None:
    spec = alloy_spec(AlloyArgs("grafana/alloy:v1.18.1", 256, "dev", "http://l", "http://t"))
    assert spec.health is not None
    command = list(spec.health.command)
    command[-1] = command[-1].replace(f"/{ALLOY_PORT};", "/1;")
    assert subprocess.run(command, capture_output=True, timeout=10).returncode != 0


def test_loki_probes_itself_and_alloy_waits_for_it() -> None:
    """Loki 3.7's `-health` flag (cmd/loki/health.go at v3.7.6) GETs the URL and exits 0 on
    200: Docker probes Loki with it, so `wait` holds Alloy until /ready says 200. Grafana
    does not wait: its data sources connect on the first query."""
    run = stack_run("dev")
    inputs = unwrap(run.containers()["loki"].inputs)
    health = inputs["healthcheck"]
    assert health["tests"] == ["CMD", "/usr/bin/loki", "-health",
                               f"-health.url=http://127.0.0.1:{LOKI_PORT}/ready"]  # fmt: skip
    # longer than the binary's own 5 s HTTP timeout, so Loki's verdict is the one Docker sees
    assert int(health["timeout"].rstrip("s")) > 5
    assert inputs["wait"] is True and inputs["waitTimeout"] >= 30
    assert "loki" in run.container_dependencies("alloy")
    assert not {"loki", "tempo"} & run.container_dependencies("grafana")


def test_app_config_tells_the_runtime_where_to_send_traces() -> None:
    telemetry = stack_run("dev").outputs["app_config"]["telemetry"]
    assert telemetry == {"otlp_endpoint": "http://alloy:4318", "sampling_ratio": 0.1,
                         "log_level": "INFO"}  # fmt: skip
    # the runtime's settings loader accepts exactly that
    loaded = load_settings({"telemetry": telemetry}, env={}, require=()).telemetry
    assert (loaded.otlp_endpoint, loaded.sampling_ratio) == ("http://alloy:4318", 0.1)


def test_logs_traces_off_runs_none_of_it_and_turns_tracing_off() -> None:
    run = run_stack("dev", {"logsTraces": "false"})
    assert not {"loki", "tempo", "alloy"} & set(run.containers())
    assert run.outputs["app_config"]["telemetry"]["otlp_endpoint"] == ""
    files = uploads(run, "grafana")
    sources = yaml.safe_load(files["/etc/grafana/provisioning/datasources/prometheus.yml"])
    assert [d["uid"] for d in sources["datasources"]] == ["prometheus"]
    assert not any(path.endswith("platform-logs.json") for path in files)
    prometheus = uploads(run, "prometheus")
    scrape = next(text for path, text in prometheus.items() if path.endswith("prometheus.yml"))
    assert "loki:3100" not in scrape and "alloy:12345" not in scrape
    assert "alloy" not in run.container_dependencies("runtime")


def test_a_bad_logs_traces_setting_is_refused_with_key_value_and_rule() -> None:
    with pytest.raises(ConfigError) as err:
        run_stack("dev", {"traceSamplingPercent": "150", "runtimeLogLevel": "LOUD"})
    text = str(err.value)
    assert "data-platform:traceSamplingPercent: got 150; allowed: an integer from 0 to 100" in text
    assert "data-platform:runtimeLogLevel: got 'LOUD'; allowed: one of DEBUG, INFO" in text
