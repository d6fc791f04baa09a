"""The policy pack: each rule of `rules` (policy/rules/) as a `ResourceValidationPolicy`.

The Pulumi CLI runs __main__.py (which imports this module) with the pack's folder on
`sys.path`, hence `import rules`. Nothing here decides anything: a policy only asks `rules`
for messages and reports them, so the tests (which must not construct a `PolicyPack`: it
starts a gRPC server and blocks) cover every decision by importing `rules` alone.
"""

from __future__ import annotations

import os

from pulumi_policy import (
    EnforcementLevel,
    PolicyPack,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
)

import rules


def _stack(urn: str) -> str:
    """The stack being previewed: from the resource's URN, else the engine's PULUMI_STACK.

    With neither, "" is returned and the production rules apply (unknown means strict).
    """
    return rules.stack_of(urn) or os.environ.get("PULUMI_STACK", "")


def _policy(rule: rules.Rule) -> ResourceValidationPolicy:
    def validate(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
        resource = rules.Resource(args.resource_type, args.name, args.props)
        for message in rule.violations(resource, _stack(args.urn)):
            report_violation(message, None)

    return ResourceValidationPolicy(
        name=rule.name,
        description=rule.description,
        enforcement_level=EnforcementLevel(rule.enforcement),
        validate=validate,
    )


PolicyPack(
    name="data-platform-guardrails",
    enforcement_level=EnforcementLevel.MANDATORY,
    policies=[_policy(rule) for rule in rules.RULES],
)
