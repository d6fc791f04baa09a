"""Apply the stack's recorded `docker:*` resources to a real engine through the Docker API.

The Pulumi program runs under mocks (tests/stack_harness.py) and records what it asks the
Docker provider for. This applier does what the provider (pulumi-docker 5.x) does with those
inputs, so that the containers the stack declares, exactly as declared, run on a real engine:
networks and volumes first, then each container once the containers it depends on exist
(and, where `wait` is set, report healthy), uploads written into the created container before
it starts, and removal in reverse order with the recorded grace period. docs/engine-tests.md
has the input-by-input mapping table and what differs from the provider.
"""

from __future__ import annotations

import contextlib
import io
import json
import tarfile
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import docker
import docker.errors

from tests.stack_harness import Registration, StackRun, mock_image_id, mock_name, unwrap

CONTAINER = "docker:index/container:Container"
NETWORK = "docker:index/network:Network"
VOLUME = "docker:index/volume:Volume"
REMOTE_IMAGE = "docker:index/remoteImage:RemoteImage"
IMAGE = "docker:index/image:Image"
MB = 1024 * 1024
# Labels the applier adds, so that what it created can be found and removed again.
OWNER_LABEL = "platform.engine-test"
# The provider's `wait` inspects the container, then sleeps a second, until it is healthy
# (terraform-provider-docker, resource_docker_container_funcs.go: `time.Sleep(time.Second)`):
# a waited-on service is seen healthy up to a second after it is, and its dependents are
# created no sooner. The applier polls the same way, so start times are the provider's.
WAIT_POLL_SECONDS = 1.0


class ApplyError(RuntimeError):
    """A container could not be created, started or made healthy as its record asks."""


def duration_ns(value: str) -> int:
    """A provider duration ("5s", "500ms", "1m") in nanoseconds, as the Docker API wants."""
    units = {"ms": 1_000_000, "s": 1_000_000_000, "m": 60_000_000_000, "h": 3_600_000_000_000}
    for suffix in ("ms", "s", "m", "h"):
        if value.endswith(suffix) and value[: -len(suffix)].replace(".", "", 1).isdigit():
            return int(float(value[: -len(suffix)]) * units[suffix])
    raise ValueError(f"healthcheck duration {value!r}: expected a number with ms, s, m or h")


@dataclass
class ServiceTiming:
    """When the applier asked for each step (time.monotonic() seconds)."""

    created: float = 0.0
    started: float = 0.0
    healthy: float | None = None  # None: the record has no `wait`

    @property
    def create_to_healthy(self) -> float | None:
        return None if self.healthy is None else self.healthy - self.created


@dataclass
class Plan:
    """The records of one stack run, resolved to engine names."""

    run: StackRun
    omit: frozenset[str] = frozenset()
    containers: dict[str, Registration] = field(init=False)  # service -> record
    deps: dict[str, set[str]] = field(init=False)  # service -> services it depends on

    def __post_init__(self) -> None:
        # services and one-shot containers (nginx-config-apply, ...): tests.stack_harness
        self.containers = {s: r for s, r in self.run.workloads().items() if s not in self.omit}
        self.deps = {s: self.run.container_dependencies(s) - self.omit for s in self.containers}

    def order(self) -> list[str]:
        """Services in an order where each comes after its dependencies (ties by name)."""
        done: list[str] = []
        pending = dict(self.deps)
        while pending:
            ready = sorted(s for s, d in pending.items() if d <= set(done))
            if not ready:
                raise ApplyError(f"dependency cycle among {sorted(pending)}")
            done.extend(ready)
            for s in ready:
                del pending[s]
        return done

    def image_refs(self) -> dict[str, str]:
        """A container record's `image` input -> the image reference the engine knows.

        A RemoteImage's `imageId` (what the mocks return) becomes its `name` (a stand-in is
        tagged with that name); an Image's `imageName` stays as it is (built under that tag).
        """
        refs: dict[str, str] = {}
        for r in self.run.of_type(REMOTE_IMAGE):
            refs[mock_image_id(r.type, r.name)] = unwrap(r.inputs)["name"]
        for r in self.run.of_type(IMAGE):
            name = unwrap(r.inputs)["imageName"]
            refs[name] = name
        return refs


def container_name(record: Registration) -> str:
    """The provider's container name is Pulumi's auto-name (record name + random suffix);
    the applier uses the record name alone, so tests can find it."""
    return record.name


def upload_tar(uploads: Iterable[Mapping[str, Any]]) -> bytes:
    """A tar to extract at `/`: one entry per upload, its full path as the name, with the
    owner, group and mode the record declares (the provider's defaults: root, 0644, 0744
    when `executable`)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for upload in uploads:
            data = upload["content"].encode()
            info = tarfile.TarInfo(upload["file"].lstrip("/"))
            info.size = len(data)
            if "permissions" in upload:
                info.mode = int(upload["permissions"], 8)
            else:
                info.mode = 0o744 if upload.get("executable") else 0o644
            info.uid = int(upload.get("owner", 0))
            info.gid = int(upload.get("group", 0))
            info.mtime = int(time.time())
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _inputs(inputs: Mapping[str, Any]) -> str:
    """A record's inputs, comparable across two stack runs."""
    return json.dumps(unwrap(inputs), sort_keys=True, default=str)


def _device(device: Mapping[str, Any]) -> str:
    host = device["hostPath"]
    return f"{host}:{device.get('containerPath', host)}:{device.get('permissions', 'rwm')}"


def healthcheck(spec: Mapping[str, Any]) -> dict[str, Any]:
    """The record's healthcheck as the API's HealthConfig, `start_interval` included."""
    config: dict[str, Any] = {"Test": list(spec["tests"])}
    for key, api in (
        ("interval", "Interval"),
        ("timeout", "Timeout"),
        ("startPeriod", "StartPeriod"),
        ("startInterval", "StartInterval"),
    ):
        if key in spec:
            config[api] = duration_ns(spec[key])
    if "retries" in spec:
        config["Retries"] = int(spec["retries"])
    return config


class Applier:
    """Creates and removes one stack run's networks, volumes and containers on an engine.

    `images` maps an image reference the records use to the local tag to run instead
    (default: the same name); `omit` names services that cannot run here (nothing may
    depend on them with `wait`); `prefix` is prepended to every engine object's name, so
    two appliers can share an engine.
    """

    def __init__(
        self,
        client: docker.DockerClient,
        run: StackRun,
        *,
        images: Mapping[str, str] | None = None,
        omit: Iterable[str] = (),
        prefix: str = "",
        log: Callable[[str], None] = lambda _: None,
    ) -> None:
        self.client = client
        self.api = client.api
        self.plan = Plan(run, frozenset(omit))
        self.images = dict(images or {})
        self.prefix = prefix
        self.log = log
        self.timings: dict[str, ServiceTiming] = {}
        # one-shot (`attach`) containers: exit code and output, as the provider's
        # `exit_code` and `container_logs`
        self.exits: dict[str, tuple[int, str]] = {}
        self.applied_at = 0.0  # wall clock (time.time()) when the last `up` began
        self._lock = threading.Lock()

    # -- names ---------------------------------------------------------------------------

    def name(self, recorded: str) -> str:
        return f"{self.prefix}{recorded}"

    def container(self, service: str) -> str:
        """The engine's name of a service's container."""
        return self.name(container_name(self.plan.containers[service]))

    def network_names(self) -> dict[str, str]:
        return {
            r.name: self.name(mock_name(r.type, r.name)) for r in self.plan.run.of_type(NETWORK)
        }

    def volume_names(self) -> dict[str, str]:
        return {r.name: self.name(mock_name(r.type, r.name)) for r in self.plan.run.of_type(VOLUME)}

    # -- apply ---------------------------------------------------------------------------

    def up(self) -> dict[str, ServiceTiming]:
        """Networks, volumes, then every container as soon as its dependencies are done
        (independent ones in parallel, as Pulumi's engine creates them)."""
        self.applied_at = time.time()
        self.create_networks()
        self.create_volumes()
        order = self.plan.order()
        futures: dict[str, Future[None]] = {}
        with ThreadPoolExecutor(max_workers=len(order)) as pool:
            for service in order:
                deps = [futures[d] for d in self.plan.deps[service]]
                futures[service] = pool.submit(self._after, deps, service)
            errors = [f.exception() for f in futures.values() if f.exception()]
        if errors:
            raise ApplyError("; ".join(str(e) for e in errors))
        return self.timings

    def _after(self, deps: list[Future[None]], service: str) -> None:
        for dep in deps:
            if dep.exception() is not None:
                raise ApplyError(f"{service}: not created, a dependency failed")
        self.create(service)

    def create_networks(self) -> None:
        for r in self.plan.run.of_type(NETWORK):
            inputs = unwrap(r.inputs)
            name = self.name(mock_name(r.type, r.name))
            if not self.client.networks.list(names=[name]):
                self.client.networks.create(
                    name,
                    driver=inputs.get("driver", "bridge"),
                    internal=bool(inputs.get("internal", False)),
                    labels={OWNER_LABEL: self.prefix or "-"},
                )

    def create_volumes(self) -> None:
        for r in self.plan.run.of_type(VOLUME):
            self.client.volumes.create(
                self.name(mock_name(r.type, r.name)), labels={OWNER_LABEL: self.prefix or "-"}
            )

    def create(self, service: str) -> str:
        """Create, upload into, start and (where `wait`) wait for one service's container,
        as the provider's Create does; returns the container id."""
        inputs = unwrap(self.plan.containers[service].inputs)
        timing = ServiceTiming()
        with self._lock:
            self.timings[service] = timing
        timing.created = time.monotonic()
        cid = self.prepare(service)
        self.api.start(cid)
        timing.started = time.monotonic()
        self.log(f"{service}: started")
        if inputs.get("attach"):
            self.run_to_end(service, cid, inputs)
        if inputs.get("wait"):
            self.wait_healthy(service, float(inputs.get("waitTimeout", 60)))
            timing.healthy = time.monotonic()
            self.log(f"{service}: healthy after {timing.healthy - timing.created:.2f}s")
        return cid

    def prepare(self, service: str, overrides: Mapping[str, Any] | None = None) -> str:
        """Create a service's container from its record (`overrides` replacing inputs),
        connect its other networks and write its uploads, not started; its id."""
        inputs = {**unwrap(self.plan.containers[service].inputs), **(overrides or {})}
        config, networks = self.container_config(inputs)
        cid = self._create_container(self.container(service), config, inputs.get("healthcheck"))
        for net_name, aliases in networks[1:]:
            self.api.connect_container_to_network(cid, net_name, aliases=aliases)
        if inputs.get("uploads"):
            self.api.put_archive(cid, "/", upload_tar(inputs["uploads"]))
        return cid

    def _create_container(
        self, name: str, config: dict[str, Any], check: Mapping[str, Any] | None
    ) -> str:
        """POST /containers/create. The SDK's own HealthConfig drops `StartInterval`, so the
        health check is set on the request body directly."""
        body = self.api.create_container_config(**config)
        if check is not None:
            body["Healthcheck"] = healthcheck(check)
        created: dict[str, Any] = self.api.create_container_from_config(body, name)
        return str(created["Id"])

    def run_to_end(self, service: str, cid: str, inputs: Mapping[str, Any]) -> None:
        """The provider's `attach`: wait for the exit and keep the output (`logs`), without
        failing on the exit code; then what the program does with `exit_code`
        (components/docker/platform.py `require_exit_zero`): a non-zero exit fails."""
        code = int(self.api.wait(cid)["StatusCode"])
        logs = self.api.logs(cid).decode(errors="replace") if inputs.get("logs") else ""
        self.exits[service] = (code, logs)
        self.log(f"{service}: exited {code}")
        if code != 0:
            raise ApplyError(f"{service}: exited {code}:\n{logs.strip()}")

    def update(self, run: StackRun) -> list[str]:
        """A `pulumi up` from this stack run to `run`: every container whose recorded inputs
        changed is replaced the provider's way (stop and remove, then create: its
        `DeleteBeforeReplace`), in dependency order; the others are left running. A
        config-reload container is replaced with its config-apply container (its label holds
        that container's id, new after the replacement). Returns the replaced workloads."""
        old = self.plan
        new = Plan(run, old.omit)
        replaced: list[str] = []
        for service in new.order():
            before = old.containers.get(service)
            changed = before is None or _inputs(before.inputs) != _inputs(
                new.containers[service].inputs
            )
            apply = service.removesuffix("-config-reload") + "-config-apply"
            if changed or (service.endswith("-config-reload") and apply in replaced):
                replaced.append(service)
        self.plan = new
        self.create_networks()
        self.create_volumes()
        for service in new.order():
            if service in replaced:
                self.remove(service)
                self.create(service)
        return replaced

    def pid_mode(self, recorded: str | None) -> str | None:
        """`container:<id>` names the recorded id of another container (the mocks' id is the
        record's name + "-id"): here, the engine's name of that container."""
        if not recorded or not recorded.startswith("container:"):
            return recorded
        owner = recorded.removeprefix("container:").removesuffix("-id")
        return f"container:{self.name(owner)}"

    def wait_healthy(self, service: str, timeout: float) -> None:
        """The provider's `wait`: poll until healthy; fail on unhealthy, exit or timeout."""
        deadline = time.monotonic() + timeout
        name = self.container(service)
        while True:
            state = self.api.inspect_container(name)["State"]
            health = state.get("Health", {}).get("Status")
            if health == "healthy":
                return
            if health is None:
                raise ApplyError(f"{service}: `wait` is set but the container has no health check")
            if not state["Running"] and not state["Restarting"]:
                raise ApplyError(f"{service}: exited ({state['ExitCode']}) before it was healthy")
            if health == "unhealthy" or time.monotonic() > deadline:
                probes = state.get("Health", {}).get("Log") or [{}]
                logs = self.api.logs(name, tail=15).decode(errors="replace")
                raise ApplyError(
                    f"{service}: {health} after {timeout:.0f}s (wait_timeout); last probe: "
                    f"{probes[-1].get('Output', '')!r}; last log lines:\n{logs}"
                )
            time.sleep(WAIT_POLL_SECONDS)

    def container_config(
        self, inputs: Mapping[str, Any]
    ) -> tuple[dict[str, Any], list[tuple[str, list[str]]]]:
        """create_container's arguments for a record, and its networks with their aliases."""
        refs = self.plan.image_refs()
        recorded = refs.get(inputs["image"], inputs["image"])
        networks = [
            (self.name(n["name"]), list(n.get("aliases", [])))
            for n in inputs.get("networksAdvanced", [])
        ]
        ports = [
            (
                int(p["internal"]),
                p.get("protocol", "tcp"),
                p.get("ip", "0.0.0.0"),
                int(p["external"]),
            )
            for p in inputs.get("ports", [])
        ]
        binds = []
        for v in inputs.get("volumes", []):
            source = self.name(v["volumeName"]) if "volumeName" in v else v["hostPath"]
            binds.append(f"{source}:{v['containerPath']}:{'ro' if v.get('readOnly') else 'rw'}")
        restart = {"Name": inputs.get("restart", "no")}
        if restart["Name"] == "on-failure":
            restart["MaximumRetryCount"] = int(inputs.get("maxRetryCount", 0))
        capabilities = inputs.get("capabilities", {})
        host_config = self.api.create_host_config(
            binds=binds or None,
            port_bindings={f"{i}/{proto}": (ip, ext) for i, proto, ip, ext in ports} or None,
            restart_policy=restart,
            mem_limit=int(inputs["memory"]) * MB if "memory" in inputs else None,
            memswap_limit=int(inputs["memorySwap"]) * MB if "memorySwap" in inputs else None,
            cap_add=capabilities.get("adds"),
            cap_drop=capabilities.get("drops"),
            security_opt=inputs.get("securityOpts"),
            log_config={
                "Type": inputs.get("logDriver", "json-file"),
                "Config": inputs.get("logOpts", {}),
            },
            devices=[_device(d) for d in inputs.get("devices", [])] or None,
            network_mode=networks[0][0] if networks else inputs.get("networkMode"),
            pid_mode=self.pid_mode(inputs.get("pidMode")),
        )
        config: dict[str, Any] = {
            "image": self.images.get(recorded, recorded),
            "command": inputs.get("command"),
            "entrypoint": inputs.get("entrypoints"),
            "environment": inputs.get("envs"),
            "user": inputs.get("user"),
            "working_dir": inputs.get("workingDir"),
            "labels": {
                **{lb["label"]: lb["value"] for lb in inputs.get("labels", [])},
                OWNER_LABEL: self.prefix or "-",
            },
            "stop_timeout": int(inputs["stopTimeout"]) if "stopTimeout" in inputs else None,
            "ports": [(i, proto) for i, proto, _, _ in ports] or None,
            "host_config": host_config,
            "networking_config": self.api.create_networking_config(
                {networks[0][0]: self.api.create_endpoint_config(aliases=networks[0][1] or None)}
            )
            if networks
            else None,
        }
        return config, networks

    def one_shot(self, service: str) -> bool:
        """Whether the record runs once to its end (`attach`): a config apply or reload."""
        return bool(unwrap(self.plan.containers[service].inputs).get("attach"))

    def waits(self, service: str) -> bool:
        """Whether the record asks the provider to wait until the container is healthy."""
        return bool(unwrap(self.plan.containers[service].inputs).get("wait"))

    def start_all(self) -> None:
        """Start the (stopped) containers again in dependency order, waiting where the
        record waits: a host's reboot, or `pulumi up` after a stop, with nothing replaced."""
        for service in self.plan.order():
            if self.one_shot(service):
                continue  # a one-shot ran once (restart "no"): a reboot does not run it again
            self.api.start(self.container(service))
            if self.waits(service):
                inputs = unwrap(self.plan.containers[service].inputs)
                self.wait_healthy(service, float(inputs.get("waitTimeout", 60)))

    def stop_all(self) -> None:
        """Stop every container in reverse dependency order with its record's grace period
        (what a host's shutdown through the stack's order does), keeping them."""
        for service in reversed(self.plan.order()):
            if self.one_shot(service):
                continue  # exited already
            inputs = unwrap(self.plan.containers[service].inputs)
            self.api.stop(self.container(service), timeout=int(inputs.get("stopTimeout", 10)))

    # -- remove --------------------------------------------------------------------------

    def remove(self, service: str, grace: int | None = None) -> None:
        """The provider's Delete: stop with the record's grace period (or `grace` seconds),
        then remove (the volumes stay: they are resources of their own)."""
        inputs = unwrap(self.plan.containers[service].inputs)
        name = self.container(service)
        if grace is None:
            grace = int(inputs.get("destroyGraceSeconds", 10))
        try:
            self.api.stop(name, timeout=grace)
            self.api.remove_container(name)
        except docker.errors.NotFound:
            pass

    def down(self, *, volumes: bool = True, grace: int | None = None) -> None:
        """Every container in reverse dependency order, then networks (and volumes).
        `grace` shortens every stop (a test's teardown, where a clean stop is not checked)."""
        for service in reversed(self.plan.order()):
            self.remove(service, grace)
        for name in self.network_names().values():
            for net in self.client.networks.list(names=[name]):
                net.remove()
        if volumes:
            for name in self.volume_names().values():
                with contextlib.suppress(docker.errors.NotFound):
                    self.client.volumes.get(name).remove()
