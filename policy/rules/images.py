"""Image pinning, on both platforms: what a resource runs and what it pulls."""

from __future__ import annotations

import re
from collections.abc import Mapping

from rules.base import Resource, get, plain
from rules.docker import BUILT_IMAGE
from rules.kubernetes import CNPG_CLUSTER, WORKLOADS, pod_containers, pod_spec

_DIGEST = re.compile(r"@sha256:[0-9a-f]{64}$")


def _image_tag(reference: str) -> str | None:
    last = reference.rsplit("/", 1)[-1].split("@", 1)[0]
    return last.split(":", 1)[1] if ":" in last else None


def _run_references(resource: Resource) -> list[str]:
    """The images a resource runs: an image resource's name, a pod's containers' images."""
    if resource.type in WORKLOADS:
        return [str(get(c, "image")) for c in pod_containers(pod_spec(resource))]
    if resource.type == CNPG_CLUSTER:
        return [str(get(get(resource.props, "spec"), "imageName"))]
    return [str(get(resource.props, "imageName" if resource.type == BUILT_IMAGE else "name"))]


def check_image_tag(resource: Resource, stack: str) -> list[str]:
    found = []
    for reference in _run_references(resource):
        tag = _image_tag(reference)
        if tag == "latest":
            found.append(
                f"image '{reference}' uses ':latest'; pin a version such as 'redis:7.4.2-alpine'"
            )
        elif tag is None and not _DIGEST.search(reference):
            found.append(
                f"image '{reference}' has no tag; pin a version such as 'redis:7.4.2-alpine'"
            )
    return found


def _pulled_references(resource: Resource) -> list[str]:
    """Images pulled from a registry: a RemoteImage's name, a built image's base images
    (its build arguments named *_IMAGE, such as the PostgreSQL image's POSTGRES_IMAGE)."""
    if resource.type != BUILT_IMAGE:
        return [str(get(resource.props, "name"))]
    args = get(get(resource.props, "build"), "args")
    if not isinstance(args, Mapping):
        return []
    return [str(plain(v)) for k, v in sorted(args.items()) if str(k).endswith("_IMAGE")]


def check_image_digest(resource: Resource, stack: str) -> list[str]:
    return [
        f"image '{reference}' is pinned to a tag only; in {stack or 'an unnamed stack'} pin it "
        "to a digest too ('name:tag@sha256:...', from `docker buildx imagetools inspect`) so a "
        "re-pushed tag cannot change what runs"
        for reference in _pulled_references(resource)
        if not _DIGEST.search(reference)
    ]
