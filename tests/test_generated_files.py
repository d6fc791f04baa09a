"""The files the stack generates, checked by the real tools that will read them.

The files come from the stack run under mocks (the exact uploads `pulumi up` would place in
the containers), written under a temporary root at their container paths.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import redis
import yaml

from components.config import ConfigError
from components.render.nginx_conf import NginxSettings, render_nginx_conf
from components.render.prometheus_yml import RULES_DIR
from tests.servers import NginxServer, free_port, wait_for_port
from tests.stack_harness import run_stack, stack_run, uploads

STACKS = ("dev", "prod")


def _tool(name: str) -> str:
    path = shutil.which(name)
    assert path, f"{name} is not installed: run scripts/bootstrap"
    return path


def materialise(files: dict[str, str], root: Path) -> None:
    for path, content in files.items():
        target = root / path.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(content)


def run_tool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, timeout=60)


# -- nginx ----------------------------------------------------------------------------------


def nginx_test(conf_dir: Path) -> subprocess.CompletedProcess[str]:
    shutil.copy("/etc/nginx/mime.types", conf_dir / "mime.types")
    return run_tool(_tool("nginx"), "-t", "-c", str(conf_dir / "nginx.conf"), "-p", str(conf_dir))


@pytest.mark.parametrize("stack", STACKS)
def test_nginx_accepts_the_generated_configuration(stack: str, tmp_path: Path) -> None:
    files = uploads(stack_run(stack), "nginx")
    assert "BEGIN CERTIFICATE" in files["/etc/nginx/tls/tls.crt"]
    assert "PRIVATE KEY" in files["/etc/nginx/tls/tls.key"]
    materialise(files, tmp_path)
    result = nginx_test(tmp_path / "etc/nginx")
    assert result.returncode == 0, result.stderr
    assert "test is successful" in result.stderr


def test_nginx_test_fails_on_a_broken_configuration(tmp_path: Path) -> None:
    """The check above can fail: the same harness rejects a broken file."""
    files = uploads(stack_run("dev"), "nginx")
    files["/etc/nginx/nginx.conf"] = files["/etc/nginx/nginx.conf"].replace(
        "ssl_protocols TLSv1.2 TLSv1.3;", "ssl_protocols TLSv1.2 TLSv1.3"
    )
    materialise(files, tmp_path)
    assert nginx_test(tmp_path / "etc/nginx").returncode != 0


def test_nginx_conf_follows_the_tls_and_header_policy() -> None:
    conf = uploads(stack_run("prod"), "nginx")["/etc/nginx/nginx.conf"]
    assert "ssl_protocols TLSv1.2 TLSv1.3;" in conf
    assert "TLSv1.1" not in conf and "TLSv1 " not in conf
    ciphers = next(line for line in conf.splitlines() if "ssl_ciphers" in line)
    assert "DHE-" not in ciphers.replace("ECDHE-", "")
    assert "return 308 https://$host$request_uri;" in conf
    assert "limit_req_status 429;" in conf
    assert "worker_processes auto;" in conf
    for header in (
        "Strict-Transport-Security",
        "X-Content-Type-Options",
        "X-Frame-Options",
        "Referrer-Policy",
        "Content-Security-Policy",
    ):
        assert f"add_header {header}" in conf
    # upstreams through variables: nginx starts while an application is down
    assert "proxy_pass $backend_upstream;" in conf and "resolver 127.0.0.11" in conf
    assert "stub_status;" in conf


def test_dev_redirect_keeps_the_nonstandard_https_port() -> None:
    conf = uploads(stack_run("dev"), "nginx")["/etc/nginx/nginx.conf"]
    assert "return 308 https://$host:8443$request_uri;" in conf


def test_nginx_serves_tls_and_proxies_while_upstreams_are_down(tmp_path: Path) -> None:
    """A real nginx with the generated file: starts with no upstream alive, 502s, 308s, 429s."""
    nginx = NginxServer(uploads(stack_run("dev"), "nginx"), tmp_path, upstreams={})
    try:
        site = f"https://localhost:{nginx.https}"
        redirect = nginx.curl(
            "-o", "/dev/null", "-w", "%{http_code} %{redirect_url}",
            "-H", "Host: localhost", f"http://127.0.0.1:{nginx.http}/x?y=1",
        )  # fmt: skip
        assert redirect.stdout == "308 https://localhost:8443/x?y=1"
        api = nginx.curl("-o", "/dev/null", "-D", "-", f"{site}/api/health")
        assert api.stdout.startswith("HTTP/2 502"), api.stdout
        assert "strict-transport-security: max-age=63072000" in api.stdout.lower()
        tls11 = nginx.curl("--tls-max", "1.1", f"{site}/")
        assert tls11.returncode != 0, "TLS 1.1 must be refused"
        # one curl, one connection, 100 requests: well past rate 20/s + burst 40
        burst = nginx.curl("-w", "%{http_code}\\n", *[f"{site}/", "-o", "/dev/null"] * 100)
        codes = burst.stdout.split()
        assert len(codes) == 100 and "429" in codes, codes
        stub = nginx.curl(f"http://127.0.0.1:{nginx.status}/stub_status")
        assert "Active connections" in stub.stdout
    finally:
        nginx.close()


def test_render_rejects_nothing_silently() -> None:
    """worker_processes and the rate come straight from config into the file."""
    conf = render_nginx_conf(
        NginxSettings(
            server_name="example.org",
            https_port=443,
            worker_processes="4",
            rate_limit_rps=7,
            rate_limit_burst=3,
            backend_upstream="b:1",
            frontend_upstream="f:2",
            grafana_upstream="g:3",
            prometheus_upstream="p:4",
            alertmanager_upstream="a:5",
            admin_allow_cidrs=["10.1.0.0/16"],
        )
    )
    assert "worker_processes 4;" in conf and "rate=7r/s" in conf and "burst=3" in conf
    assert "allow 10.1.0.0/16;" in conf


def test_nginx_accepts_a_rate_limit_without_burst(tmp_path: Path) -> None:
    """rateLimitBurst allows 0, and nginx refuses `burst=0`: no burst is written as none."""
    files = uploads(run_stack("dev", {"rateLimitBurst": "0"}), "nginx")
    assert "limit_req zone=per_client;" in files["/etc/nginx/nginx.conf"]
    materialise(files, tmp_path)
    result = nginx_test(tmp_path / "etc/nginx")
    assert result.returncode == 0, result.stderr


# -- prometheus and alertmanager ------------------------------------------------------------


@pytest.mark.parametrize("stack", STACKS)
def test_promtool_accepts_prometheus_yml(stack: str, tmp_path: Path) -> None:
    files = uploads(stack_run(stack), "prometheus")
    config = files["/etc/prometheus/prometheus.yml"]
    rules = {p: text for p, text in files.items() if p.startswith(RULES_DIR)}
    assert rules, "the alert rules are uploaded with Prometheus"
    materialise(rules, tmp_path)
    path = tmp_path / "prometheus.yml"
    path.write_text(config.replace(RULES_DIR, f"{tmp_path}{RULES_DIR}"))
    result = run_tool(_tool("promtool"), "check", "config", str(path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "rules found" in result.stdout, result.stdout
    for job in ("prometheus", "alertmanager", "grafana", "postgres", "redis", "nginx", "node",
                "cadvisor", "blackbox"):  # fmt: skip
        assert f"job_name: {job}" in config


def test_listed_application_endpoints_are_scraped_as_job_app_and_promtool_accepts_it(
    tmp_path: Path,
) -> None:
    targets = ["orders:9100", "billing.internal:9100"]
    files = uploads(run_stack("dev", {"appMetricsTargets": targets}), "prometheus")
    config = files["/etc/prometheus/prometheus.yml"]
    jobs = {job["job_name"]: job for job in yaml.safe_load(config)["scrape_configs"]}
    assert jobs["app"]["static_configs"] == [{"targets": targets}]
    assert jobs["app"]["metrics_path"] == "/metrics"
    default = uploads(stack_run("dev"), "prometheus")["/etc/prometheus/prometheus.yml"]
    assert "job_name: app" not in default, "no app job while appMetricsTargets is empty"
    materialise({p: text for p, text in files.items() if p.startswith(RULES_DIR)}, tmp_path)
    path = tmp_path / "prometheus.yml"
    path.write_text(config.replace(RULES_DIR, f"{tmp_path}{RULES_DIR}"))
    result = run_tool(_tool("promtool"), "check", "config", str(path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "rules found" in result.stdout, result.stdout


@pytest.mark.parametrize(
    ("value", "allowed"),
    [
        ('["orders"]', "a list of host:port like ['orders:9100'] ('orders' is not)"),
        (
            '["orders:9100", "orders:99999"]',
            "host:port like ['orders:9100'] ('orders:99999' is not)",
        ),
        ('"orders:9100"', "a JSON list of strings"),
    ],
)
def test_a_bad_application_metrics_target_is_refused_in_one_line(value: str, allowed: str) -> None:
    with pytest.raises(ConfigError) as raised:
        run_stack("dev", {"appMetricsTargets": value})
    (problem,) = str(raised.value).splitlines()[1:]
    assert problem.strip().startswith("data-platform:appMetricsTargets: got ")
    assert allowed in problem


def test_promtool_rejects_a_broken_prometheus_yml(tmp_path: Path) -> None:
    config = uploads(stack_run("dev"), "prometheus")["/etc/prometheus/prometheus.yml"]
    path = tmp_path / "prometheus.yml"
    path.write_text(config.replace("scrape_interval: 15s", "scrape_interval: often"))
    assert run_tool(_tool("promtool"), "check", "config", str(path)).returncode != 0


@pytest.mark.parametrize("stack", STACKS)
def test_amtool_accepts_alertmanager_yml(stack: str, tmp_path: Path) -> None:
    config = uploads(stack_run(stack), "alertmanager")["/etc/alertmanager/alertmanager.yml"]
    path = tmp_path / "alertmanager.yml"
    path.write_text(config)
    result = run_tool(_tool("amtool"), "check-config", str(path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert ("webhook_configs" in config) == (stack == "prod")


def test_amtool_rejects_a_broken_alertmanager_yml(tmp_path: Path) -> None:
    config = uploads(stack_run("dev"), "alertmanager")["/etc/alertmanager/alertmanager.yml"]
    path = tmp_path / "alertmanager.yml"
    path.write_text(config.replace("receiver: critical", "receiver: nobody"))
    assert run_tool(_tool("amtool"), "check-config", str(path)).returncode != 0


# -- redis ------------------------------------------------------------------------------------


def test_redis_runs_with_the_generated_conf(tmp_path: Path) -> None:
    """A real redis-server loads redis.conf: password required, maxmemory and policy applied."""
    run = stack_run("dev")
    files = uploads(run, "redis")
    conf = tmp_path / "redis.conf"
    # /data is the container's volume; everything else is the file as generated
    conf.write_text(
        files["/usr/local/etc/redis/redis.conf"].replace("dir /data", f"dir {tmp_path}")
    )
    port = free_port()
    process = subprocess.Popen(
        [_tool("redis-server"), str(conf), "--port", str(port), "--bind", "127.0.0.1"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        wait_for_port(port)
        password = files["/run/secrets/redis-password"]
        with pytest.raises(redis.AuthenticationError):
            redis.Redis(port=port, password="wrong").ping()
        client = redis.Redis(port=port, password=password)
        assert client.config_get("maxmemory")["maxmemory"] == str(256 * 1024 * 1024)
        assert client.config_get("maxmemory-policy")["maxmemory-policy"] == "allkeys-lru"
        assert client.config_get("appendonly")["appendonly"] == "yes"
        assert run.outputs["app_config"]["redis"]["password"] == password
    finally:
        process.terminate()
        process.wait(10)
