"""nginx.conf: TLS termination, reverse proxy, security headers, rate limit, stub_status.

TLS follows Mozilla's "intermediate" profile as it applies to nginx 1.22+ with OpenSSL 3.0:
TLS 1.2 and 1.3 only, ECDHE AEAD ciphers only (no DHE), no session tickets, HSTS.
Upstreams are proxied through variables and Docker's resolver, so nginx starts (and stays up)
while an application upstream is still down: the request gets a 502, not the whole edge.
A request whose upstream name failed to resolve (no upstream contacted yet) is proxied once
more: Docker's DNS was seen answering SERVFAIL for a name it knew, under load
(docs/changes.md); a 502 after an upstream was contacted is never retried.
Paths are relative to nginx's configuration directory (/etc/nginx in the image).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from components.render.acme_sh import CHALLENGE_PREFIX, LIVE_CERT, LIVE_KEY

TLS_CERT_PATH = "tls/tls.crt"
TLS_KEY_PATH = "tls/tls.key"
# tlsMode acme: the client's volume (read-only here) and the HTTP-01 webroot volume. The
# webroot is absolute: `root` is relative to nginx's prefix, which is /etc/nginx in the
# upstream image but /usr/share/nginx in Debian's build (seen on the engine tier: 404).
# Outside /etc/nginx, which is the configuration volume the stack rewrites (docs/changes.md):
# the ACME client's volumes are mounted here, read-only, in nginx and in its config check.
ACME_DIR = "/etc/ssl/acme"
ACME_WEBROOT = "/var/www/acme-webroot"
STUB_STATUS_PORT = 8081

MOZILLA_INTERMEDIATE_CIPHERS = ":".join(
    (
        "ECDHE-ECDSA-AES128-GCM-SHA256",
        "ECDHE-RSA-AES128-GCM-SHA256",
        "ECDHE-ECDSA-AES256-GCM-SHA384",
        "ECDHE-RSA-AES256-GCM-SHA384",
        "ECDHE-ECDSA-CHACHA20-POLY1305",
        "ECDHE-RSA-CHACHA20-POLY1305",
    )
)

SECURITY_HEADERS = (
    ("Strict-Transport-Security", "max-age=63072000; includeSubDomains"),
    ("X-Content-Type-Options", "nosniff"),
    ("X-Frame-Options", "SAMEORIGIN"),
    ("Referrer-Policy", "strict-origin-when-cross-origin"),
    ("Permissions-Policy", "camera=(), microphone=(), geolocation=(), payment=()"),
    ("Cross-Origin-Opener-Policy", "same-origin"),
    ("Content-Security-Policy", "frame-ancestors 'self'; object-src 'none'; base-uri 'self'"),
)

# Docker's embedded DNS server, present in every container on a user-defined network.
DOCKER_RESOLVER = "127.0.0.11"
# The proxied upstreams, each `set $<name>_upstream` and retried by `@<name>_retry`.
UPSTREAMS = ("backend", "frontend", "grafana", "prometheus", "alertmanager")


@dataclass(frozen=True)
class NginxSettings:
    server_name: str
    https_port: int
    worker_processes: str
    rate_limit_rps: int
    rate_limit_burst: int
    backend_upstream: str
    frontend_upstream: str
    grafana_upstream: str
    prometheus_upstream: str
    alertmanager_upstream: str
    admin_allow_cidrs: Sequence[str]
    resolver: str = DOCKER_RESOLVER
    # Proxies in front of nginx (a Kubernetes Gateway): on connections from these networks
    # the client's address is taken from X-Forwarded-For, so the rate limit and the admin
    # allow-list see the client. Empty on Docker, where clients connect to nginx directly.
    real_ip_from: Sequence[str] = ()
    # tlsMode acme: the certificate comes from the ACME client's volume, and port 80 serves
    # its HTTP-01 challenge files (everything else there still redirects to HTTPS).
    acme: bool = False


def render_nginx_conf(s: NginxSettings) -> str:
    cert, key = (
        (f"{ACME_DIR}/{LIVE_CERT}", f"{ACME_DIR}/{LIVE_KEY}")
        if s.acme
        else (TLS_CERT_PATH, TLS_KEY_PATH)
    )
    challenge = (
        f"""
        location ^~ {CHALLENGE_PREFIX} {{
            root {ACME_WEBROOT};
            default_type text/plain;
            try_files $uri =404;
        }}"""
        if s.acme
        else ""
    )
    https_suffix = "" if s.https_port == 443 else f":{s.https_port}"
    headers = "\n".join(
        f'    add_header {name} "{value}" always;' for name, value in SECURITY_HEADERS
    )
    admin_allow = "\n".join(f"        allow {cidr};" for cidr in s.admin_allow_cidrs)
    # nginx refuses `burst=0`: no burst is the directive without it
    burst = f" burst={s.rate_limit_burst} nodelay" if s.rate_limit_burst else ""
    real_ip = ""
    if s.real_ip_from:
        trusted = "\n".join(f"    set_real_ip_from {cidr};" for cidr in s.real_ip_from)
        # recursive: the last address not from a trusted proxy, not whatever the client sent
        real_ip = (
            "\n    # Behind a proxy: the client's address from X-Forwarded-For, trusted only "
            f"from these.\n{trusted}\n    real_ip_header X-Forwarded-For;\n"
            "    real_ip_recursive on;\n"
        )
    upstream_vars = "\n".join(
        f"        set ${name}_upstream http://{getattr(s, f'{name}_upstream')};"
        for name in UPSTREAMS
    )
    retries = "".join(
        f"""
        location @{name}_retry {{
            if ($upstream_addr) {{
                return 502;
            }}
            proxy_pass ${name}_upstream;
        }}"""
        for name in UPSTREAMS
    )
    return f"""# Generated by the data-platform stack (render/nginx_conf.py). Do not edit.
worker_processes {s.worker_processes};
pid /var/run/nginx.pid;
error_log /dev/stderr warn;

events {{
    worker_connections 4096;
}}

http {{
    include mime.types;
    default_type application/octet-stream;
    server_tokens off;
    sendfile on;
    tcp_nopush on;
    keepalive_timeout 65;
    client_max_body_size 10m;

    log_format main escape=json '{{"time":"$time_iso8601","remote":"$remote_addr",'
        '"request":"$request","status":$status,"bytes":$body_bytes_sent,'
        '"duration":$request_time,"upstream":"$upstream_addr","request_id":"$request_id"}}';
    access_log /dev/stdout main;

    # Names are resolved per request through Docker's DNS, never once at start-up.
    resolver {s.resolver} valid=10s ipv6=off;
    resolver_timeout 5s;
{real_ip}
    limit_req_zone $binary_remote_addr zone=per_client:10m rate={s.rate_limit_rps}r/s;
    limit_req_status 429;
    limit_conn_status 429;

    map $http_upgrade $connection_upgrade {{
        default upgrade;
        '' close;
    }}

    proxy_http_version 1.1;
    proxy_set_header Host $host;
    proxy_set_header X-Real-IP $remote_addr;
    proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
    proxy_set_header X-Forwarded-Proto $scheme;
    proxy_set_header X-Request-ID $request_id;
    proxy_set_header Upgrade $http_upgrade;
    proxy_set_header Connection $connection_upgrade;
    proxy_connect_timeout 5s;
    proxy_read_timeout 60s;

    # Port 80: only a permanent redirect to HTTPS (308 keeps the method and body).
    server {{
        listen 80 default_server;
        server_name {s.server_name};{challenge}
        location / {{
            return 308 https://$host{https_suffix}$request_uri;
        }}
    }}

    server {{
        listen 443 ssl http2 default_server;
        server_name {s.server_name};

        ssl_certificate {cert};
        ssl_certificate_key {key};
        ssl_protocols TLSv1.2 TLSv1.3;
        ssl_ecdh_curve X25519:prime256v1:secp384r1;
        ssl_ciphers {MOZILLA_INTERMEDIATE_CIPHERS};
        ssl_prefer_server_ciphers off;
        ssl_session_timeout 1d;
        ssl_session_cache shared:TLS:10m;
        ssl_session_tickets off;

{headers}

        limit_req zone=per_client{burst};

{upstream_vars}

        location /api/ {{
            proxy_pass $backend_upstream;
            error_page 502 = @backend_retry;
        }}

        # Grafana is served at / internally; its root_url carries the /grafana/ prefix.
        location /grafana/ {{
            rewrite ^/grafana/(.*)$ /$1 break;
            proxy_pass $grafana_upstream;
            error_page 502 = @grafana_retry;
        }}

        # Prometheus has no login: only the admin networks reach it.
        location /prometheus/ {{
{admin_allow}
            deny all;
            rewrite ^/prometheus/(.*)$ /$1 break;
            proxy_pass $prometheus_upstream;
            error_page 502 = @prometheus_retry;
        }}

        # Alertmanager has no login either (silences, the alert list): admin networks only.
        # Its --web.external-url carries the /alertmanager/ prefix, like Prometheus's.
        location /alertmanager/ {{
{admin_allow}
            deny all;
            rewrite ^/alertmanager/(.*)$ /$1 break;
            proxy_pass $alertmanager_upstream;
            error_page 502 = @alertmanager_retry;
        }}

        location / {{
            proxy_pass $frontend_upstream;
            error_page 502 = @frontend_retry;
        }}

        # An upstream's name that did not resolve (nothing contacted: $upstream_addr is
        # empty) is proxied once more; a 502 after an upstream was contacted is final.{retries}
    }}

    # stub_status for the nginx exporter: never published, private networks only.
    server {{
        listen {STUB_STATUS_PORT};
        server_name _;
        access_log off;
        allow 127.0.0.1;
        allow 10.0.0.0/8;
        allow 172.16.0.0/12;
        allow 192.168.0.0/16;
        deny all;
        location = /stub_status {{
            stub_status;
        }}
        location = /healthz {{
            return 200 "ok\\n";
        }}
    }}
}}
"""
