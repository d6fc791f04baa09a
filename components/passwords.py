"""Generated credentials, secret from the moment they exist."""

from __future__ import annotations

import pulumi
import pulumi_random as random


def generated_password(name: str, parent: pulumi.Resource) -> pulumi.Output[str]:
    """A 32-character alphanumeric password, marked secret wherever it flows.

    The engine marks `RandomPassword.result` secret on a real `pulumi up`, but nothing in the
    SDK does, so the program marks it itself. Alphanumeric keeps it safe inside URLs (DSNs),
    redis.conf and shell-free health probes.
    """
    password = random.RandomPassword(
        name, length=32, special=False, opts=pulumi.ResourceOptions(parent=parent)
    )
    return pulumi.Output.secret(password.result)
