"""tlsMode acme against Pebble, as processes on loopback: the acme stack's nginx.conf in a
real nginx, the client's script (render/acme_sh.py) driving Debian's lego, Pebble validating
HTTP-01 through nginx's port 80 (pebble-challtestsrv resolves the domain to 127.0.0.1).

The tests run in order on one edge: the placeholder, the first issuance, a forced renewal
under load, a renewal with Pebble down. Why processes and not the engine tier: docs/acme.md.
"""

from __future__ import annotations

import datetime
import http.server
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509

from components.monitoring.alerts import ALERTS, promtool_tests_yaml
from components.render.acme_sh import AcmeScript, render_acme_sh
from tests.certs import key_pem, new_key, self_signed
from tests.servers import NginxServer, PebbleServer, free_port
from tests.stack_harness import PROD_CONFIG, run_stack, uploads
from tests.tls_load import TlsLoad

DOMAIN = "platform.example.com"  # prod's; Pebble's DNS answers 127.0.0.1 for it
EMAIL = "ops@example.com"
ACME = {
    "tlsMode": "acme",
    "acmeEmail": EMAIL,
    # one loopback client sends 200+ requests/s: the per-client limit must not answer 429
    "rateLimitRps": "100000",
    "rateLimitBurst": "100000",
}
FORCE_DAYS = 100_000  # `renew --days` beyond any lifetime: renew now
RATE, SECONDS = 250, 20
# busybox's ash, the shell of the lego image (Alpine), when installed; else the system's sh
SHELL = ["busybox", "sh"] if shutil.which("busybox") else ["sh"]


class Ok(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", "3")
        self.end_headers()
        self.wfile.write(b"ok\n")

    def log_message(self, *_: object) -> None:
        pass


@dataclass
class Edge:
    root: Path
    nginx: NginxServer
    pebble: PebbleServer
    data: Path  # the certificates volume (lego's --path)
    webroot: Path
    placeholder_serial: int

    def script(self, renew_days: int = 30) -> Path:
        """The client's script as the stack renders it, with this edge's paths, Debian's
        lego, and the reload sent to this nginx's master."""
        path = self.root / f"acme-{renew_days}.sh"
        path.write_text(
            render_acme_sh(
                AcmeScript(
                    lego=str(shutil.which("lego")),
                    domain=DOMAIN,
                    email=EMAIL,
                    directory_url=self.pebble.directory_url,
                    renew_days=renew_days,
                    data_dir=str(self.data),
                    webroot=str(self.webroot),
                    placeholder_cert=str(self.root / "placeholder.crt"),
                    placeholder_key=str(self.root / "placeholder.key"),
                    reload_command=f"kill -HUP {self.nginx.process.pid}",
                    random_sleep=False,
                )
            )
        )
        return path

    def run(self, script: Path) -> subprocess.CompletedProcess[str]:
        return run_script(script, "once", self.pebble.tls_ca)

    def verified_certificate(self) -> x509.Certificate:
        """What a real TLS client (openssl s_client) gets for DOMAIN, verified against
        Pebble's root; fails if the chain does not verify."""
        roots = self.root / "pebble-root.pem"
        roots.write_text(self.pebble.root_pem())
        result = subprocess.run(
            [
                "openssl",
                "s_client",
                "-connect",
                f"127.0.0.1:{self.nginx.https}",
                "-servername",
                DOMAIN,
                "-verify_hostname",
                DOMAIN,
                "-CAfile",
                str(roots),
                "-verify_return_error",
                "-showcerts",
            ],
            input="",
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
        pem = result.stdout[result.stdout.index("-----BEGIN CERTIFICATE-----") :]
        return x509.load_pem_x509_certificate(pem.encode())


def run_script(script: Path, mode: str, ca: Path | None) -> subprocess.CompletedProcess[str]:
    """The script under SHELL; lego trusts `ca` only (what acmeCaBundle does)."""
    env = {"PATH": "/usr/bin:/bin"}
    if ca is not None:
        env["LEGO_CA_CERTIFICATES"] = str(ca)  # acmeCaBundle
    return subprocess.run(
        [*SHELL, str(script), mode], capture_output=True, text=True, env=env, timeout=180
    )


@pytest.fixture(scope="module")
def edge(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Edge]:
    root = tmp_path_factory.mktemp("acme")
    config = {k: v for k, v in PROD_CONFIG.items() if not k.startswith("tls")}
    files = uploads(run_stack("prod", {**config, **ACME}), "nginx")
    upstream = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), Ok)
    threading.Thread(target=upstream.serve_forever, daemon=True).start()
    # the certificates volume and the webroot, moved from the containers' paths to this
    # run's (the master, root, reads the certificates; the workers, nobody here, read the
    # webroot and cannot enter pytest's 0700 directories: it moves to a 0755 one)
    data = root / "ssl-acme"
    webroot = Path(tempfile.mkdtemp(prefix="acme-webroot-"))
    webroot.chmod(0o755)
    conf = files["/etc/nginx/nginx.conf"]
    assert "root /var/www/acme-webroot;" in conf and "/etc/ssl/acme/" in conf
    files["/etc/nginx/nginx.conf"] = conf.replace(
        "root /var/www/acme-webroot;", f"root {webroot};"
    ).replace("/etc/ssl/acme/", f"{data}/")
    key = new_key()
    placeholder = self_signed(key, DOMAIN, valid_for=datetime.timedelta(days=90))
    (root / "placeholder.crt").write_text(placeholder)
    (root / "placeholder.key").write_text(key_pem(key))
    serial = x509.load_pem_x509_certificate(placeholder.encode()).serial_number
    # the seed's pass before nginx starts: nginx needs a certificate to start its TLS server
    seeded = run_script(_bare_script(root, data, webroot), "seed", None)
    assert seeded.returncode == 0, seeded.stderr
    nginx = NginxServer(files, root, upstreams={"backend": upstream.server_address[1]})
    pebble = None
    try:
        pebble = PebbleServer(root, http_port=nginx.http)
        yield Edge(root, nginx, pebble, data, webroot, serial)
    finally:
        if pebble is not None:
            pebble.close()
        nginx.close()
        upstream.shutdown()
        shutil.rmtree(webroot)


def _bare_script(root: Path, data: Path, webroot: Path) -> Path:
    """The script for its `seed` step alone (no directory, no nginx yet)."""
    path = root / "seed.sh"
    path.write_text(
        render_acme_sh(
            AcmeScript(
                lego="lego",
                domain=DOMAIN,
                email=EMAIL,
                directory_url="https://unused.invalid/dir",
                renew_days=30,
                data_dir=str(data),
                webroot=str(webroot),
                placeholder_cert=str(root / "placeholder.crt"),
                placeholder_key=str(root / "placeholder.key"),
                reload_command="false",
            )
        )
    )
    return path


def _served_serial(edge: Edge) -> int:
    load = TlsLoad(edge.nginx.https, DOMAIN, "/api/ping", rate=5, seconds=0.2).start().wait()
    assert not load.failures, load.failures
    (serial,) = load.serials
    return serial


def _served_after_reload(edge: Edge, old: int) -> int:
    """The serial new connections get once the reload is through: SIGHUP returns at once,
    and connections accepted before the new workers start still get the old certificate."""
    deadline = time.monotonic() + 10
    while (serial := _served_serial(edge)) == old and time.monotonic() < deadline:
        time.sleep(0.05)
    return serial


def test_nginx_starts_on_the_placeholder_before_any_issuance(edge: Edge) -> None:
    assert _served_serial(edge) == edge.placeholder_serial
    assert not (edge.data / "certificates").exists()


def test_the_first_issuance_goes_through_nginx_and_replaces_the_placeholder(edge: Edge) -> None:
    result = edge.run(edge.script())
    assert result.returncode == 0, result.stderr[-3000:]
    assert "certificate installed and nginx reloaded" in result.stderr
    assert _served_after_reload(edge, edge.placeholder_serial) != edge.placeholder_serial
    certificate = edge.verified_certificate()
    names = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    assert names.value.get_values_for_type(x509.DNSName) == [DOMAIN]
    assert "Pebble" in certificate.issuer.rfc4514_string()
    assert certificate.serial_number != edge.placeholder_serial
    # Pebble fetched the token from nginx's port 80, which served it from the webroot
    log = (edge.root / "pebble.log").read_text()
    assert f"{DOMAIN}:{edge.nginx.http}/.well-known/acme-challenge/" in log, log[-2000:]
    # a second pass with 30 days to go renews nothing and does not reload
    again = edge.run(edge.script())
    assert again.returncode == 0 and "reloaded" not in again.stderr, again.stderr[-2000:]


def test_a_forced_renewal_under_load_drops_no_request(edge: Edge) -> None:
    before = edge.verified_certificate().serial_number
    load = TlsLoad(edge.nginx.https, DOMAIN, "/api/ping", rate=RATE, seconds=SECONDS).start()
    threading.Event().wait(5)
    renewed = edge.run(edge.script(renew_days=FORCE_DAYS))
    result = load.wait()
    assert renewed.returncode == 0, renewed.stderr[-3000:]
    assert "certificate installed and nginx reloaded" in renewed.stderr
    assert _served_after_reload(edge, before) != before
    after = edge.verified_certificate().serial_number
    print(
        f"forced renewal under load: {result.sent} requests in {result.seconds:.1f} s "
        f"({result.rate:.0f}/s), {len(result.failures)} failed, serials seen "
        f"{dict(result.serials)}; before {before:x}, after {after:x}"
    )
    assert result.failures == [], result.failures[:5]
    assert result.rate >= 200 and result.ok == result.sent
    assert after != before
    assert set(result.serials) == {before, after}, "the load saw the switch"


def test_with_pebble_down_the_renewal_fails_and_the_old_certificate_keeps_serving(
    edge: Edge, tmp_path: Path
) -> None:
    if not (edge.data / "certificates" / f"{DOMAIN}.crt").exists():  # this test alone
        assert edge.run(edge.script()).returncode == 0
        _served_after_reload(edge, edge.placeholder_serial)
    serving = _served_serial(edge)
    edge.pebble.stop()
    try:
        load = TlsLoad(edge.nginx.https, DOMAIN, "/api/ping", rate=50, seconds=5).start()
        failed = edge.run(edge.script(renew_days=FORCE_DAYS))
        result = load.wait()
    finally:
        edge.pebble.start()
    assert failed.returncode != 0 and "renewal failed" in failed.stderr, failed.stderr[-2000:]
    assert result.failures == [] and set(result.serials) == {serving}
    # (restarted, Pebble has a new root: the serial is compared without verifying the chain)
    assert _served_serial(edge) == serving
    # Prometheus then sees the certificate stay inside the renewal window: the acme stack's
    # own rule (as uploaded to Prometheus) fires on its promtool case, and stays quiet on the
    # other one
    _promtool_renewal_cases(tmp_path)


def _promtool_renewal_cases(tmp_path: Path) -> None:
    config = {k: v for k, v in PROD_CONFIG.items() if not k.startswith("tls")}
    files = uploads(run_stack("prod", {**config, **ACME}), "prometheus")
    rules = next(text for path, text in files.items() if path.endswith("/platform-alerts.yml"))
    (tmp_path / "rules.yml").write_text(rules)
    (alert,) = [a for a in ALERTS if a.name == "AcmeRenewalFailing"]
    tests = promtool_tests_yaml("rules.yml", [alert])
    for name, content in tests.items():
        (tmp_path / name).write_text(content)
    result = subprocess.run(
        ["promtool", "test", "rules", *tests], cwd=tmp_path, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr
