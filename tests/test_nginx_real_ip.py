"""nginx behind the Kubernetes Gateway sees the client, not the Gateway, and only through it.

The k8s stack's nginx files (its ConfigMap and Secret, at the paths its pod mounts them) run in
a real nginx. The trusted proxy is 127.0.0.2 (`k8sTrustedProxyCidrs`), an untrusted source is
127.0.0.3: Linux routes all of 127.0.0.0/8 to loopback, and curl binds the source address.
"""

from __future__ import annotations

import http.server
import json
import shutil
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.servers import NginxServer, free_port
from tests.stack_harness import K8S_CONFIG, StackRun, run_stack, stack_run, unwrap, uploads

PROXY = "127.0.0.2"  # stands in for the Gateway's pod
OUTSIDER = "127.0.0.3"  # anything else that reaches nginx
ADMIN_NET = "192.0.2.0/24"


def nginx_files(run: StackRun) -> dict[str, str]:
    """The nginx pod's files by path: its mounts resolved against its ConfigMap and Secret."""
    sources: dict[str, dict[str, str]] = {}
    for kind, key in (("ConfigMap", "data"), ("Secret", "stringData")):
        for r in run.of_type(f"kubernetes:core/v1:{kind}"):
            inputs = unwrap(r.inputs)
            if inputs["metadata"]["name"] == "nginx":
                sources["config" if kind == "ConfigMap" else "secrets"] = inputs[key]
    (template,) = [
        unwrap(r.inputs)["spec"]["template"]
        for r in run.of_type("kubernetes:apps/v1:Deployment")
        if unwrap(r.inputs)["metadata"]["name"] == "nginx"
    ]
    (container,) = template["spec"]["containers"]
    return {
        m["mountPath"]: sources[m["name"]][m["subPath"]]
        for m in container["volumeMounts"]
        if m["name"] in sources
    }


class Upstream:
    """Prometheus stand-in: answers 200 with the client headers nginx passed on."""

    def __init__(self) -> None:
        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = json.dumps({"x-real-ip": self.headers.get("X-Real-IP")}).encode()
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.port = free_port()
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def edge(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NginxServer]:
    """The k8s stack's nginx trusting PROXY, admin network ADMIN_NET, 1 request/s (burst 1)
    per client."""
    run = run_stack(
        "k8s",
        {
            **K8S_CONFIG,
            "k8sTrustedProxyCidrs": json.dumps([f"{PROXY}/32"]),
            "adminAllowCidrs": json.dumps([ADMIN_NET]),
            "rateLimitRps": "1",
            "rateLimitBurst": "1",
        },
    )
    upstream = Upstream()
    nginx = NginxServer(
        nginx_files(run), tmp_path_factory.mktemp("nginx"), upstreams={"prometheus": upstream.port}
    )
    try:
        yield nginx
    finally:
        nginx.close()
        upstream.close()


def get(nginx: NginxServer, source: str, forwarded: str | None, *more: str) -> list[str]:
    """Status codes of GET /prometheus/ (once, or once per extra URL) from `source`."""
    header = ["-H", f"X-Forwarded-For: {forwarded}"] if forwarded else []
    url = f"https://localhost:{nginx.https}/prometheus/"
    requests = [url, *[u for extra in more for u in ("-o", "/dev/null", extra)]]
    result = nginx.curl(
        *header, "-o", "/dev/null", "-w", "%{http_code}\\n", *requests, source=source
    )
    return result.stdout.split()


def test_a_client_behind_the_gateway_is_allowed_or_denied_by_its_own_address(
    edge: NginxServer,
) -> None:
    assert get(edge, PROXY, "192.0.2.7") == ["200"]
    assert get(edge, PROXY, "198.51.100.9") == ["403"]
    # the Gateway appends the address it saw: a forged first entry changes nothing
    assert get(edge, PROXY, "192.0.2.8, 198.51.100.10") == ["403"]
    assert get(edge, PROXY, "198.51.100.11, 192.0.2.9") == ["200"]


def test_the_upstream_sees_the_client_as_x_real_ip(edge: NginxServer) -> None:
    url = f"https://localhost:{edge.https}/prometheus/"
    answer = edge.curl("-H", "X-Forwarded-For: 192.0.2.30", url, source=PROXY)
    assert json.loads(answer.stdout) == {"x-real-ip": "192.0.2.30"}


def test_a_source_that_is_not_a_trusted_proxy_cannot_claim_an_address(edge: NginxServer) -> None:
    assert get(edge, OUTSIDER, "192.0.2.40") == ["403"]
    assert get(edge, OUTSIDER, None) == ["403"]


def test_the_rate_limit_counts_each_client_behind_the_gateway_separately(
    edge: NginxServer,
) -> None:
    url = f"https://localhost:{edge.https}/prometheus/"
    # one curl, one connection, five requests of one client at 1 request/s, burst 1
    codes = get(edge, PROXY, "192.0.2.50", *[url] * 4)
    assert len(codes) == 5 and codes[0] == "200" and "429" in codes, codes
    # another client through the same Gateway has its own allowance
    assert get(edge, PROXY, "192.0.2.51") == ["200"]


def test_nginx_accepts_the_k8s_configuration(tmp_path: Path) -> None:
    files = nginx_files(stack_run("k8s"))
    conf = files["/etc/nginx/nginx.conf"]
    assert "set_real_ip_from 10.244.0.0/16;" in conf  # Pulumi.k8s.yaml's pod network
    assert "real_ip_header X-Forwarded-For;" in conf and "real_ip_recursive on;" in conf
    # nginx resolves the cluster resolver's name at start-up; there is no cluster DNS here
    files["/etc/nginx/nginx.conf"] = conf.replace(
        "resolver kube-dns.kube-system.svc.cluster.local ", "resolver 127.0.0.1 "
    )
    conf_dir = tmp_path / "etc/nginx"
    for path, content in files.items():
        target = tmp_path / path.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(content)
    shutil.copy("/etc/nginx/mime.types", conf_dir / "mime.types")
    nginx = shutil.which("nginx")
    assert nginx, "nginx is not installed: run scripts/bootstrap"
    result = subprocess.run(
        [nginx, "-t", "-c", str(conf_dir / "nginx.conf"), "-p", str(conf_dir)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr


def test_docker_nginx_trusts_no_forwarded_address() -> None:
    """On Docker clients connect to nginx itself: a forwarded address is never believed."""
    for stack in ("dev", "prod"):
        conf = uploads(stack_run(stack), "nginx")["/etc/nginx/nginx.conf"]
        assert "set_real_ip_from" not in conf and "real_ip_header" not in conf
