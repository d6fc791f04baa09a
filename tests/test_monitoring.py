"""MonitoringService: settings, container-aware memory, CPU, service status (real servers)."""

from __future__ import annotations

import http.server
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import psutil
import pytest

from runtime.contracts import MetricsData
from runtime.errors import ConfigError
from runtime.monitoring import (
    CgroupMemoryReader,
    CpuSampler,
    HttpProbe,
    MemoryReading,
    MonitoringService,
    PostgresProbe,
    RedisProbe,
    ServiceProber,
    TcpProbe,
    probe_for_url,
)
from runtime.settings import AlertingSettings, MonitoringSettings, Settings, load_settings
from tests.servers import BlackHole, PostgresServer, RedisServer, free_port

MiB = 1024 * 1024


# -- settings (the `monitoring` and `alerting` sections of runtime.settings) ---------------
def from_env(env: dict[str, str]) -> Settings:
    return load_settings({}, env=env, require=())


def test_settings_defaults_and_environment() -> None:
    defaults = from_env({})
    assert (defaults.monitoring, defaults.alerting) == (MonitoringSettings(), AlertingSettings())
    settings = from_env(
        {
            "MONITORING_INTERVAL": "5",
            "ALERT_COOLDOWN": "120",
            "HEALTH_CHECK_TIMEOUT": "2.5",
            "SIDECAR_PORT": "9999",
            "HEALTH_PROBES": "grafana=http://grafana:3000/api/health, prom=tcp://prometheus:9090",
        }
    )
    assert settings.monitoring.interval_seconds == 5
    assert settings.alerting.cooldown_seconds == 120
    assert settings.monitoring.health_check_timeout_seconds == 2.5
    assert settings.monitoring.sidecar_port == 9999
    assert dict(settings.monitoring.health_probes) == {
        "grafana": "http://grafana:3000/api/health",
        "prom": "tcp://prometheus:9090",
    }


@pytest.mark.parametrize(
    ("variable", "value", "allowed"),
    [
        ("MONITORING_INTERVAL", "0", "> 0"),
        ("MONITORING_INTERVAL", "soon", "> 0"),
        ("ALERT_COOLDOWN", "-1", ">= 0"),
        ("HEALTH_CHECK_TIMEOUT", "nan", "> 0"),
        ("SIDECAR_PORT", "70000", "port"),
        ("ALERT_CPU_THRESHOLD", "101", "[0, 100]"),
        ("BACKUP_SCHEDULE", "every night", "cron"),
        ("ALERTMANAGER_URL", "ftp://am:9093", "http or https"),
        ("HEALTH_PROBES", "grafana", "name=http"),
        ("HEALTH_PROBES", "db=tcp://db", "tcp://host:port"),
    ],
)
def test_settings_reject_bad_values_naming_variable_value_and_allowed(
    variable: str, value: str, allowed: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        from_env({variable: value})
    message = str(caught.value)
    assert message.startswith(f"{variable}: got ")
    assert value in message
    assert allowed in message


def test_secrets_never_in_repr_or_errors() -> None:
    settings = from_env(
        {
            "DATABASE_URL": "postgresql://app:pg-s3cret@db:5432/app",
            "REDIS_URL": "redis://:rd-s3cret@redis:6379/0",
            "ALERT_WEBHOOK_URL": "https://hooks.example.com/services/T0K3N-s3cret",
        }
    )
    for text in (repr(settings), str(settings)):
        assert "s3cret" not in text and "T0K3N" not in text
    with pytest.raises(ConfigError) as caught:
        from_env({"DATABASE_URL": "host=db password=pg-s3cret port"})
    assert "s3cret" not in str(caught.value)
    assert "DATABASE_URL" in str(caught.value)
    with pytest.raises(ConfigError) as caught:
        from_env({"ALERT_WEBHOOK_URL": "gopher://hooks/T0K3N-s3cret"})
    assert "s3cret" not in str(caught.value)
    with pytest.raises(ConfigError) as caught:
        from_env({"HEALTH_PROBES": "api=ftp://u:pr0be-s3cret@api/"})
    assert "s3cret" not in str(caught.value) and "api=ftp://u:***@api/" in str(caught.value)


# -- memory: cgroup v1 / v2 ----------------------------------------------------------------


def _tree(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


@pytest.mark.req("UT-INFRA-04.1")
def test_cgroup_v2_memory_subtracts_inactive_file(tmp_path: Path) -> None:
    root = _tree(
        tmp_path / "cg",
        {
            "cgroup.controllers": "cpu memory",
            "memory.current": f"{600 * MiB}\n",
            "memory.max": f"{1024 * MiB}\n",
            "memory.stat": f"anon {400 * MiB}\nfile {200 * MiB}\ninactive_file {100 * MiB}\n",
        },
    )
    reader = CgroupMemoryReader(root, tmp_path / "none", host_total_bytes=16 * 1024 * MiB)
    reading = reader.read()
    assert (reading.source, reading.used_bytes, reading.limit_bytes) == (
        "cgroup-v2",
        500 * MiB,
        1024 * MiB,
    )
    assert reading.percent == pytest.approx(500 / 1024 * 100)
    # No limit ("max"): measured against the host's memory, not reported as 0 % or 100 %.
    (root / "memory.max").write_text("max\n")
    assert reader.read().percent == pytest.approx(500 / (16 * 1024) * 100)


@pytest.mark.req("UT-INFRA-04.1")
def test_cgroup_v1_memory_uses_own_cgroup_from_proc_self_cgroup(tmp_path: Path) -> None:
    own = "memory/docker/abc123"
    root = _tree(
        tmp_path / "cg",
        {
            # the hierarchy's root (the host) and this process's cgroup below it
            "memory/memory.usage_in_bytes": f"{9000 * MiB}\n",
            "memory/memory.limit_in_bytes": "9223372036854771712\n",
            f"{own}/memory.usage_in_bytes": f"{300 * MiB}\n",
            f"{own}/memory.limit_in_bytes": f"{512 * MiB}\n",
            f"{own}/memory.stat": f"cache {60 * MiB}\ntotal_inactive_file {44 * MiB}\n",
        },
    )
    proc = _tree(tmp_path, {"self-cgroup": "5:memory:/docker/abc123\n0::/\n"}) / "self-cgroup"
    reading = CgroupMemoryReader(root, proc, host_total_bytes=16 * 1024 * MiB).read()
    assert (reading.source, reading.used_bytes, reading.limit_bytes) == (
        "cgroup-v1",
        256 * MiB,
        512 * MiB,
    )
    assert reading.percent == 50.0
    # In a container the mount point *is* the cgroup and /docker/abc123 is not under it.
    proc.write_text("5:memory:/elsewhere\n")
    unlimited = CgroupMemoryReader(root, proc, host_total_bytes=18000 * MiB).read()
    assert unlimited.percent == pytest.approx(50.0)  # 9000 MiB of the host's 18000 MiB


def test_without_cgroup_files_memory_is_the_hosts(tmp_path: Path) -> None:
    reading = CgroupMemoryReader(tmp_path, tmp_path / "none").read()
    assert reading.source == "host"
    meminfo = dict(
        (line.split(":")[0], int(line.split()[1]) * 1024)
        for line in Path("/proc/meminfo").read_text().splitlines()
    )
    expected = 100 * (meminfo["MemTotal"] - meminfo["MemAvailable"]) / meminfo["MemTotal"]
    assert reading.percent == pytest.approx(expected, abs=5.0)


@pytest.mark.req("PT-INFRA-04.1")
def test_real_cgroup_memory_tracks_an_allocation_within_5_percent() -> None:
    reader = CgroupMemoryReader()  # the real /sys/fs/cgroup and /proc/self/cgroup
    service = MonitoringService(memory_reader=reader, cpu_sampler=CpuSampler(0.01))
    before, before_pct = reader.read(), service.collect_metrics().memory_usage
    cgroup_files = ("/sys/fs/cgroup/memory.current", "/sys/fs/cgroup/memory/memory.usage_in_bytes")
    if not any(Path(f).exists() for f in cgroup_files):
        pytest.skip("no cgroup memory controller on this machine")
    assert before.source in ("cgroup-v1", "cgroup-v2")
    size = 256 * MiB
    block = bytearray(size)
    block[::4096] = b"\x01" * (size // 4096)  # touch every page so it is charged
    after, after_pct = reader.read(), service.collect_metrics().memory_usage
    del block
    grown = after.used_bytes - before.used_bytes
    assert grown == pytest.approx(size, rel=0.05)  # the independent reading: what we allocated
    assert after_pct - before_pct == pytest.approx(100 * size / after.limit_bytes, rel=0.05)


# -- CPU -----------------------------------------------------------------------------------


def _proc_stat() -> tuple[float, float]:
    """Busy and total jiffies straight from /proc/stat (the independent reading)."""
    fields = [float(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    user, nice, system, idle, iowait, irq, softirq, steal = fields[:8]
    total = user + nice + system + idle + iowait + irq + softirq + steal
    return total - idle - iowait, total


@pytest.fixture
def busy_process() -> Iterator[subprocess.Popen[bytes]]:
    proc = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        yield proc
    finally:
        proc.kill()
        proc.wait(5)


@pytest.mark.req("UT-INFRA-04.1")
def test_first_cpu_reading_is_not_psutils_meaningless_zero(busy_process: object) -> None:
    # psutil keeps the previous sample per thread: a thread's first call compares two
    # readings taken microseconds apart and reports 0.0 (or 50/100 if a jiffy ticked in
    # between) whatever the load. Ours samples over `min_window` the first time.
    results: dict[str, float] = {}

    def first_calls() -> None:
        results["psutil"] = psutil.cpu_percent()
        started = time.monotonic()
        results["ours"] = CpuSampler(min_window=0.3).percent()
        results["window"] = time.monotonic() - started

    worker = threading.Thread(target=first_calls)
    worker.start()
    worker.join(10)
    ours = results["ours"]
    assert results["window"] >= 0.3
    assert ours > 10.0  # one of the two cores spins


@pytest.mark.req("PT-INFRA-04.1")
def test_cpu_agrees_with_proc_stat_within_5_percent(busy_process: object) -> None:
    service = MonitoringService()
    service.collect_metrics()
    busy0, total0 = _proc_stat()
    time.sleep(1.0)
    busy1, total1 = _proc_stat()
    ours = service.collect_metrics().cpu_usage  # CPU since the previous call
    independent = 100 * (busy1 - busy0) / (total1 - total0)
    assert ours == pytest.approx(independent, abs=5.0)
    assert ours > 10.0


def test_cpu_sampler_rejects_bad_window() -> None:
    with pytest.raises(ValueError, match="min_window"):
        CpuSampler(0)


# -- service status from real probes ---------------------------------------------------------


class _Health(http.server.BaseHTTPRequestHandler):
    status = 200

    def do_GET(self) -> None:
        self.send_response(type(self).status)
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def health_server() -> Iterator[http.server.ThreadingHTTPServer]:
    handler = type("Health", (_Health,), {"status": 200})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.req("UT-INFRA-04.1")
def test_status_of_real_postgres_and_redis(
    postgres_server: PostgresServer, fresh_redis: RedisServer
) -> None:
    prober = ServiceProber(
        [PostgresProbe("postgres", postgres_server.dsn), RedisProbe("redis", fresh_redis.url)],
        timeout=2.0,
    )
    pg, rd = prober.check()
    assert (pg.service_name, pg.status, rd.status) == ("postgres", "running", "running")
    assert pg.uptime_seconds >= 0 and rd.uptime_seconds >= 0
    assert pg.health_check_url is not None and postgres_server.password not in pg.health_check_url
    assert rd.health_check_url is not None and fresh_redis.password not in rd.health_check_url
    fresh_redis.kill9()
    assert prober.check()[1].status == "stopped"
    assert prober.check()[1].uptime_seconds == 0
    fresh_redis.start()
    assert prober.check()[1].status == "running"


def test_wrong_password_and_black_hole_are_errors(
    postgres_server: PostgresServer, black_hole: BlackHole
) -> None:
    wrong = postgres_server.dsn.replace(postgres_server.password, "wrong")
    hung = f"redis://:x@127.0.0.1:{black_hole.port}/0"
    prober = ServiceProber([PostgresProbe("pg", wrong), RedisProbe("hung", hung)], timeout=0.5)
    pg, rd = prober.check()
    assert pg.status == "error"
    assert rd.status == "error"
    assert prober.last_results["hung"].elapsed_ms < 5000  # bounded by the timeout, no retries


def test_stopped_postgres_is_stopped(fresh_postgres: PostgresServer) -> None:
    probe = PostgresProbe("pg", fresh_postgres.dsn)
    assert ServiceProber([probe], 2.0).check()[0].status == "running"
    fresh_postgres.stop()
    assert ServiceProber([probe], 2.0).check()[0].status == "stopped"


def test_http_and_tcp_probes(health_server: http.server.ThreadingHTTPServer) -> None:
    port = health_server.server_address[1]
    url = f"http://127.0.0.1:{port}/health"
    prober = ServiceProber(
        [probe_for_url("web", url), TcpProbe("tcp", "127.0.0.1", port)], timeout=2.0
    )
    web, tcp = prober.check()
    assert (web.status, web.health_check_url, tcp.status) == ("running", url, "running")
    health_server.RequestHandlerClass.status = 503  # type: ignore[attr-defined]
    assert prober.check()[0].status == "error"
    closed = ServiceProber([HttpProbe("gone", f"http://127.0.0.1:{free_port()}/")], 1.0)
    assert closed.check()[0].status == "stopped"
    with pytest.raises(ValueError, match="allowed: postgresql, redis, http"):
        probe_for_url("x", "ftp://host/")


# -- collect_metrics --------------------------------------------------------------------------


@pytest.mark.req("UT-INFRA-04.1")
def test_collect_metrics_returns_the_contract(
    postgres_server: PostgresServer, redis_server: RedisServer
) -> None:
    service = MonitoringService(
        [PostgresProbe("postgres", postgres_server.dsn), RedisProbe("redis", redis_server.url)],
        health_check_timeout=2.0,
    )
    before = datetime.now(UTC)
    data = service.collect_metrics()
    assert isinstance(data, MetricsData)
    assert before <= data.timestamp <= datetime.now(UTC)
    assert 0.0 <= data.cpu_usage <= 100.0
    assert 0.0 < data.memory_usage <= 100.0
    assert data.response_time_ms >= 0
    assert [s.status for s in service.last_statuses] == ["running", "running"]
    assert service.service_status("redis").status == "running"
    with pytest.raises(KeyError, match="allowed: postgres, redis"):
        service.service_status("mongo")


class _BrokenReader(CgroupMemoryReader):
    def read(self) -> MemoryReading:
        raise PermissionError("memory.current: permission denied")


@pytest.mark.req("ET-INFRA-04.1")
def test_collection_failure_is_counted_not_raised_by_a_round() -> None:
    service = MonitoringService(memory_reader=_BrokenReader())
    assert service.run_once() is None
    assert service.errors["memory"] == 1
    assert service.last_collection_failed
    sample = {s.metric: s.value for s in service.samples(None)}
    assert sample["collection_failed"] == 1.0


def test_host_memory_matches_psutil() -> None:
    reading = CgroupMemoryReader("/nonexistent", "/nonexistent").read()
    assert reading.percent == pytest.approx(psutil.virtual_memory().percent, abs=5.0)


def test_public_names_from_runtime() -> None:
    import runtime

    assert runtime.MonitoringService is MonitoringService
    assert runtime.Settings is Settings


def test_postgres_probe_through_a_pool_recovers_after_a_restart(
    fresh_postgres: PostgresServer,
) -> None:
    import psycopg_pool

    pool = psycopg_pool.ConnectionPool(fresh_postgres.dsn, min_size=1, max_size=2, open=False)
    pool.open(wait=True, timeout=10)
    try:
        prober = ServiceProber([PostgresProbe("postgres", fresh_postgres.dsn, pool=pool)], 2.0)
        assert prober.check()[0].status == "running"
        fresh_postgres.kill9()
        assert prober.check()[0].status == "stopped"
        fresh_postgres.start()
        # the pooled connection died with the server: one probe may see it, then it recovers
        statuses = [prober.check()[0].status for _ in range(3)]
        assert statuses[-1] == "running"
    finally:
        pool.close()


@pytest.mark.req("UT-INFRA-04.1", "PT-INFRA-04.1")
def test_disk_usage_agrees_with_df_within_5_percent(tmp_path: Path) -> None:
    service = MonitoringService(disk_paths=["/", str(tmp_path)])
    service.collect_metrics()
    root = service.last_disks[0]
    size, used, avail = (
        int(v)
        for v in subprocess.run(
            ["df", "-B1", "--output=size,used,avail", "/"],
            capture_output=True,
            text=True,
            check=True,
        )
        .stdout.splitlines()[1]
        .split()
    )
    assert root.total_bytes == pytest.approx(size, rel=0.05)
    assert root.used_bytes == pytest.approx(used, rel=0.05)
    assert root.percent == pytest.approx(100 * used / (used + avail), abs=5.0)
    assert {s.labels["path"] for s in service.samples(None) if s.metric == "disk_usage"} == {
        "/",
        str(tmp_path),
    }
    broken = MonitoringService(disk_paths=[str(tmp_path / "missing")])
    broken.collect_metrics()  # the MetricsData contract has no disk: still collected
    assert broken.errors["disk"] == 1


def test_disk_paths_setting() -> None:
    assert from_env({"DISK_PATHS": "/, /backups"}).monitoring.disk_paths == ("/", "/backups")
    with pytest.raises(ConfigError, match="DISK_PATHS: got 'backups'"):
        from_env({"DISK_PATHS": "backups"})
