"""Generated credentials and keys, secret from the moment they exist."""

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


def generated_key(name: str, parent: pulumi.Resource) -> pulumi.Output[str]:
    """32 random bytes, base64: an AES-256 key (the runtime's backup.encryption_key), secret.

    Generated once and kept in the stack's state; replacing the resource makes a new key that
    cannot read the backups the old one wrote (docs/runtime-backups.md, "The stack's key").
    """
    key = random.RandomBytes(name, length=32, opts=pulumi.ResourceOptions(parent=parent))
    return pulumi.Output.secret(key.base64)
