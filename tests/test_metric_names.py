"""Every metric an alert (or, later, a dashboard) queries is one a real exporter exports.

The Debian-packaged exporters run here against real PostgreSQL, Redis and nginx servers and a
real Prometheus, with the files the stack generates for them. cAdvisor is
not packaged: its few metric names are listed from its documentation and marked as such.
The runtime's metrics come from the runtime's own exposition.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from components.monitoring.alerts import ALERTS, RULES_FILE
from components.monitoring.dashboards import BOARDS
from components.monitoring.log_dashboards import PROM_QUERIES
from components.monitoring.slo import SLOS, alert_rules, recording_rules
from components.render.alloy_config import ERROR_LINES_METRIC
from components.render.prometheus_yml import RULES_DIR
from tests.data_tier import ArchivingPrimary, Replica
from tests.servers import NginxServer, RedisServer, free_port, wait_for_port
from tests.stack_harness import stack_run, uploads

# Documented cAdvisor metrics (github.com/google/cadvisor/blob/master/docs/storage/prometheus.md)
CADVISOR = {
    "container_oom_events_total",
    "container_start_time_seconds",
    "container_cpu_usage_seconds_total",
    "container_memory_working_set_bytes",
}
# Loki's and Alloy's, which are not packaged either: names read in their sources at the pinned
# tags (Loki v3.7.6 pkg/loghttp/push/push.go: namespace "loki" + "distributor_lines_received_
# total"; Alloy v1.18.1 loki.process: stage.metrics prefix "loki_process_custom_" + the
# counter components/render/alloy_config.py defines). Not checked against running binaries.
LOGS_TRACES = {"loki_distributor_lines_received_total", ERROR_LINES_METRIC}
# The runtime's metrics: the list in docs/runtime-monitoring.md, which
# tests/test_monitoring_docs.py keeps equal to what the runtime really exposes.
RUNTIME = set(
    re.findall(
        r"^\| `(runtime_\w+)`",
        (Path(__file__).resolve().parents[1] / "docs/runtime-monitoring.md").read_text(),
        flags=re.M,
    )
)
assert "runtime_backup_failures_total" in RUNTIME
assert "runtime_pitr_last_backup_timestamp_seconds" in RUNTIME  # the sidecar's physical backups
# The Barman Cloud plugin's metrics (CloudNativePG, Kubernetes only): not runnable here, so
# listed in docs/kubernetes.md from the plugin's source at the pinned version, which the
# section must name; accepted only in alerts that run on Kubernetes alone.
_K8S_DOC = (Path(__file__).resolve().parents[1] / "docs/kubernetes.md").read_text()
_BARMAN_SECTION = _K8S_DOC.split("## The Barman Cloud plugin's metrics", 1)[1].split("\n## ")[0]
assert "cloudnative-pg/plugin-barman-cloud v0.14.0" in _BARMAN_SECTION
assert "internal/cnpgi/instance/metrics.go" in _BARMAN_SECTION
BARMAN_CLOUD = set(
    re.findall(r"^- `(barman_cloud_cloudnative_pg_io_\w+)`", _BARMAN_SECTION, flags=re.M)
)
assert "barman_cloud_cloudnative_pg_io_last_available_backup_timestamp" in BARMAN_CLOUD
# Series Prometheus itself synthesises.
SYNTHETIC = {"up", "ALERTS"}

_KEYWORDS = {
    "and", "or", "unless", "by", "on", "without", "ignoring", "group_left", "group_right",
    "bool", "offset",
}  # fmt: skip


def referenced_metrics(expr: str) -> set[str]:
    """Metric names in a PromQL expression (function names and label names excluded)."""
    text = re.sub(r'"[^"]*"', "", expr)
    text = re.sub(r"\{[^}]*\}", "", text)
    text = re.sub(r"\b(by|on|without|ignoring)\s*\([^)]*\)", "", text)
    text = re.sub(r"\[[^\]]*\]", "", text)
    names = set(re.findall(r"\b([a-zA-Z_:][a-zA-Z0-9_:]*)\b(?!\s*\()", text))
    return {n for n in names if n not in _KEYWORDS and not re.fullmatch(r"[0-9].*", n)}


def test_metric_name_extraction() -> None:
    expr = (
        'sum by (instance, job) (pg_stat_activity_count{state="x"}) / on (instance, job) '
        "max by (instance) (pg_settings_max_connections) > 0.8 and rate(a_total[5m]) > 0"
    )
    assert referenced_metrics(expr) == {
        "pg_stat_activity_count",
        "pg_settings_max_connections",
        "a_total",
    }


def scrape(port: int, path: str = "/metrics") -> set[str]:
    # postgres_exporter loads its version-specific metric maps during the first scrape
    urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10).read()
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as response:
        text = response.read().decode()
    return sample_names(text)


def sample_names(text: str) -> set[str]:
    """Series names exactly as Prometheus stores them from the text format.

    (prometheus-client's parser appends `_total` to counters that lack it, which Prometheus
    itself does not, so the names are read off the sample lines directly.)
    """
    return {
        re.split(r"[{\s]", line, maxsplit=1)[0]
        for line in text.splitlines()
        if line and not line.startswith("#")
    }


def _binary(name: str) -> str:
    path = shutil.which(name)
    assert path, f"{name} is not installed: run scripts/bootstrap"
    return path


class Running:
    def __init__(self, args: list[str], port: int, env: dict[str, str] | None = None) -> None:
        self.process = subprocess.Popen(
            args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        self.port = port
        wait_for_port(port)

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(10)


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Iterator[set[str]]:
    """Metric names the real exporters export, against real servers."""
    tmp = tmp_path_factory.mktemp("exporters")
    # an archiving primary with a streaming replica, configured as the stack configures them,
    # so the archiver, sender and slot series exist
    primary, redis_server = ArchivingPrimary(archive_timeout_seconds=60), RedisServer()
    replica: Replica | None = None
    running: list[Running] = []
    nginx = None
    try:
        primary.run_init_script()
        primary.pgbackrest("check")
        replica = Replica(primary)
        replica.wait_streaming()
        postgres = primary.server
        port = free_port()
        queries = tmp / "queries.yml"
        queries.write_text(
            uploads(stack_run("dev"), "postgres-exporter")["/etc/postgres_exporter/queries.yml"]
        )
        running.append(Running(
            [_binary("prometheus-postgres-exporter"), f"--web.listen-address=127.0.0.1:{port}",
             f"--extend.query-path={queries}"],
            port,
            # the stack's exporter logs in as dbUser, the cluster's superuser
            env={"DATA_SOURCE_NAME": f"postgresql://postgres:postgres-test-password@127.0.0.1:"
                                     f"{postgres.port}/postgres?sslmode=disable",
                 "PATH": "/usr/bin"},
        ))  # fmt: skip
        # the generated password file format, read by the real exporter
        address = f"redis://127.0.0.1:{redis_server.port}"
        secrets = tmp / "redis-passwords.json"
        secrets.write_text(json.dumps({address: redis_server.password}))
        port = free_port()
        running.append(Running(
            [_binary("prometheus-redis-exporter"), f"-redis.addr={address}",
             f"-redis.password-file={secrets}", f"-web.listen-address=127.0.0.1:{port}"],
            port,
        ))  # fmt: skip
        # the generated nginx.conf on loopback ports (upstreams down: / answers 502)
        nginx = NginxServer(uploads(stack_run("dev"), "nginx"), tmp / "nginx", upstreams={})
        port = free_port()
        running.append(Running(
            [_binary("prometheus-nginx-exporter"),
             f"-nginx.scrape-uri=http://127.0.0.1:{nginx.status}/stub_status",
             f"-web.listen-address=127.0.0.1:{port}"],
            port,
        ))  # fmt: skip
        port = free_port()
        running.append(Running(
            [_binary("prometheus-node-exporter"), f"--web.listen-address=127.0.0.1:{port}"], port
        ))  # fmt: skip
        port = free_port()
        prometheus_yml = tmp / "prometheus.yml"
        rules = tmp / "rules.yml"  # rule-group metrics exist only with rules loaded
        rules.write_text(uploads(stack_run("dev"), "prometheus")[f"{RULES_DIR}/{RULES_FILE}"])
        prometheus_yml.write_text(f"global: {{scrape_interval: 15s}}\nrule_files: [{rules}]\n")
        running.append(Running(
            [_binary("prometheus"), f"--config.file={prometheus_yml}",
             f"--storage.tsdb.path={tmp / 'tsdb'}", f"--web.listen-address=127.0.0.1:{port}"],
            port,
        ))  # fmt: skip
        names: set[str] = set()
        for exporter in running:
            names |= scrape(exporter.port)
        names |= _blackbox_probe(tmp, nginx.https)
        assert "pg_up" in names and "redis_up" in names and "nginx_up" in names
        assert "pg_replication_slots_active" in names, "the replica's slot must be seen"
        yield names
    finally:
        for exporter in running:
            exporter.stop()
        if nginx is not None:
            nginx.close()
        if replica is not None:
            replica.close()
        primary.close()
        redis_server.close()


def _blackbox_probe(tmp: Path, https: int) -> set[str]:
    """The generated blackbox config probing the real nginx over TLS."""
    files = uploads(stack_run("dev"), "blackbox")
    config = tmp / "blackbox.yml"
    config.write_text(files["/etc/blackbox_exporter/config.yml"])
    port = free_port()
    exporter = Running(
        [_binary("prometheus-blackbox-exporter"), f"--config.file={config}",
         f"--web.listen-address=127.0.0.1:{port}"],
        port,
    )  # fmt: skip
    try:
        target = f"https://127.0.0.1:{https}/"
        with urllib.request.urlopen(
            f"http://127.0.0.1:{port}/probe?module=https_2xx&target={target}", timeout=20
        ) as response:
            text = response.read().decode()
        samples = {
            s.name: s.value
            for family in text_string_to_metric_families(text)
            for s in family.samples
        }
        assert samples["probe_success"] == 1.0, "the generated probe must pass against nginx"
        assert samples["probe_ssl_earliest_cert_expiry"] > 0
        return sample_names(text)
    finally:
        exporter.stop()


@pytest.mark.req("UT-INFRA-04.1")
def test_every_alert_queries_metrics_that_exist(exported: set[str]) -> None:
    known = exported | CADVISOR | RUNTIME | SYNTHETIC | LOGS_TRACES
    for alert in ALERTS:
        # the plugin's series exist on Kubernetes only
        documented = BARMAN_CLOUD if alert.platforms == {"kubernetes"} else set()
        missing = referenced_metrics(alert.rendered_expr()) - known - documented
        assert not missing, f"{alert.name} queries metrics no exporter exports: {missing}"


def test_the_plugin_metrics_are_accepted_only_in_kubernetes_alerts(exported: set[str]) -> None:
    known = exported | CADVISOR | RUNTIME | SYNTHETIC | LOGS_TRACES
    readers = [a for a in ALERTS if referenced_metrics(a.rendered_expr()) & BARMAN_CLOUD]
    assert {a.name for a in readers} == {"BaseBackupMissing", "BaseBackupFailed"}
    for alert in readers:
        assert referenced_metrics(alert.rendered_expr()) - known, "not exported here"
        assert alert.platforms == {"kubernetes"}, alert.name


# Series the SLO recording rules (components/monitoring/slo.py) create.
RECORDED = {str(r["record"]) for s in SLOS for r in recording_rules(s)}


@pytest.mark.req("UT-INFRA-04.1")
def test_every_slo_rule_queries_metrics_that_exist(exported: set[str]) -> None:
    """The SLIs read real exporters' and the runtime's series; the alerts read the records."""
    known = exported | RUNTIME | SYNTHETIC
    assert {"probe_success", "runtime_db_query_duration_seconds_bucket"} <= known
    for slo in SLOS:
        for rule in recording_rules(slo):
            missing = referenced_metrics(str(rule["expr"])) - known - RECORDED
            assert not missing, f"{rule['record']} ({slo.name}) queries unknown metrics {missing}"
        for alert in alert_rules(slo, "https://example.com/runbooks.md"):
            missing = referenced_metrics(str(alert["expr"])) - RECORDED
            assert not missing, f"{alert['alert']} queries unrecorded series {missing}"


def test_nginx_stub_status_cannot_tell_good_requests_from_bad(exported: set[str]) -> None:
    """Why availability comes from the probes alone (docs/slo.md): the nginx exporter reading
    stub_status exports request and connection totals, no status codes."""
    nginx = {name for name in exported if name.startswith("nginx_")}
    assert nginx == {
        "nginx_up",
        "nginx_http_requests_total",  # one unlabelled total: good and bad alike
        *(f"nginx_connections_{s}" for s in ("accepted", "active", "handled")),
        *(f"nginx_connections_{s}" for s in ("reading", "waiting", "writing")),
    }


@pytest.mark.req("UT-INFRA-04.3")
def test_every_dashboard_queries_metrics_that_exist(exported: set[str]) -> None:
    known = exported | CADVISOR | RUNTIME | SYNTHETIC | RECORDED | LOGS_TRACES
    for board in BOARDS:
        for expr in board.exprs():
            missing = referenced_metrics(expr) - known
            assert not missing, f"{board.uid}: {expr!r} queries unknown metrics {missing}"
    for expr, _ in PROM_QUERIES.values():  # the logs dashboard's Prometheus panels
        assert not referenced_metrics(expr) - known, expr


def test_a_misspelt_metric_would_be_caught(exported: set[str]) -> None:
    assert referenced_metrics("pg_upp == 0") - exported == {"pg_upp"}


def test_the_wal_archiver_metrics_the_pitr_alerts_need_are_exported(exported: set[str]) -> None:
    """docs/runtime-pitr.md: the archiver is watched through postgres_exporter, not the runtime."""
    assert {
        "pg_stat_archiver_archived_count",
        "pg_stat_archiver_failed_count",
        "pg_stat_archiver_last_archive_age",
    } <= exported
