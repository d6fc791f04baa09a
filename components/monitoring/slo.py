"""Service-level objectives: the specification's targets as SLOs, error budgets and burn rates.

The SRE workbook's practice (Sloth and Pyrra generate the same from a short definition): each
SLI is a ratio of good to total events; recording rules keep its error ratio over every window
an alert or a dashboard reads; multi-window, multi-burn-rate alerts page when the budget burns
fast (2 % of it in 1 h, confirmed by 5 m; 5 % in 6 h, confirmed by 30 m) and open a ticket when
it burns steadily (10 % in 3 d, confirmed by 6 h). Every threshold is computed from the
objective and the period, never written by hand, and each alert comes with generated promtool
cases: it fires at its threshold within the expected time, and stays quiet at a sustainable
burn and during a blip that only its short window sees.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Literal

import yaml

from components.monitoring.promtool import RUNBOOK_URL, promtool_test_files, runbook_link

RULES_FILE = "platform-slos.yml"
PERIOD = "30d"  # the window each objective and its error budget are defined over
# The histogram bounds the runtime exposes (runtime/histogram.py, which components may not
# import); an objective's threshold must be one of them, since `le` is an exact label.
# tests/test_slo_runtime.py checks them against the runtime's real exposition.
QUERY_BUCKETS_MS = (1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000)
BACKUP_BUCKETS_SECONDS = (1, 2, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)

_SECONDS = {"m": 60, "h": 3600, "d": 86400}


def seconds(duration: str) -> int:
    """`5m` -> 300 (the Prometheus durations this module uses)."""
    return int(duration[:-1]) * _SECONDS[duration[-1]]


def le(bound_seconds: float) -> str:
    """The `le` label a Prometheus client writes for a bucket bound (0.1 -> "0.1", 5 -> "5.0")."""
    return repr(float(bound_seconds))


def _number(value: Decimal) -> str:
    """A decimal as PromQL writes it: 0.0144, 14.4, 1 (no exponent, no trailing zeros)."""
    return format(value.normalize(), "f")


@dataclass(frozen=True, kw_only=True)
class BurnPolicy:
    """One multi-window burn-rate alert: the share of the budget it tolerates per long window."""

    suffix: str
    severity: Literal["critical", "warning"]
    kind: Literal["page", "ticket"]
    long: str
    short: str
    budget_spent: Decimal  # share of the period's budget spent over `long` at the threshold

    def factor(self, period: str = PERIOD) -> Decimal:
        """The burn rate at which `budget_spent` of the budget goes in `long` (1h page: 14.4)."""
        return self.budget_spent * seconds(period) / seconds(self.long)


POLICIES: tuple[BurnPolicy, ...] = (
    BurnPolicy(suffix="BurnFast", severity="critical", kind="page", long="1h", short="5m",
               budget_spent=Decimal("0.02")),
    BurnPolicy(suffix="BurnMedium", severity="critical", kind="page", long="6h", short="30m",
               budget_spent=Decimal("0.05")),
    BurnPolicy(suffix="BurnSlow", severity="warning", kind="ticket", long="3d", short="6h",
               budget_spent=Decimal("0.10")),
)  # fmt: skip


def windows(policies: Sequence[BurnPolicy] = POLICIES, period: str = PERIOD) -> tuple[str, ...]:
    """Every window a recording rule is needed for: the alerts' and the whole period."""
    found = {w for p in policies for w in (p.long, p.short)} | {period}
    return tuple(sorted(found, key=seconds))


def _duration_text(total_seconds: float) -> str:
    days, rest = divmod(round(total_seconds), 86400)
    hours = rest // 3600
    if days and hours:
        return f"{days} d {hours} h"
    return f"{days} d" if days else f"{hours} h"


@dataclass(frozen=True, kw_only=True)
class Slo:
    """An objective over `PERIOD`, its SLI as a PromQL error ratio, and which alerts it has.

    `error_ratio` is a template with `{w}` for the window: the share of bad events in it.
    """

    name: str  # the `slo` label
    alert_prefix: str
    title: str
    sli: str  # one sentence: what counts as good, out of what
    objective: Decimal  # e.g. Decimal("0.999")
    error_ratio: str
    action: str  # what the operator checks first (runbook)
    # Rare events (a daily backup) make a 5-minute or 1-hour ratio one event's verdict: no pages.
    page: bool = True
    # How the promtool cases write one step's share of bad events as input series.
    test_series: Literal["counters", "probe"] = "counters"
    good_series: str = ""
    total_series: str = ""

    @property
    def budget(self) -> Decimal:
        return 1 - self.objective

    def policies(self) -> tuple[BurnPolicy, ...]:
        return tuple(p for p in POLICIES if self.page or p.kind != "page")

    def threshold(self, policy: BurnPolicy) -> Decimal:
        """The error ratio over both windows above which the alert fires."""
        return policy.factor() * self.budget

    def record(self, window: str) -> str:
        return f"slo:sli_error:ratio_rate{window}"

    def selector(self, window: str) -> str:
        return f'{self.record(window)}{{slo="{self.name}"}}'

    def alert_name(self, policy: BurnPolicy) -> str:
        return f"Slo{self.alert_prefix}{policy.suffix}"

    def objective_text(self) -> str:
        return f"{_number(self.objective * 100)} %"

    def expr(self, policy: BurnPolicy) -> str:
        limit = _number(self.threshold(policy))
        return f"{self.selector(policy.long)} > {limit} and {self.selector(policy.short)} > {limit}"

    def summary(self, policy: BurnPolicy) -> str:
        factor = policy.factor()
        lasts = seconds(PERIOD) / float(factor)
        return (
            f"{self.title} SLO ({self.objective_text()} over {_duration_text(seconds(PERIOD))}): "
            f"the error budget burns "
            f"at more than {_number(factor)}x the sustainable rate over {policy.long} and "
            f"{policy.short}; {_number(policy.budget_spent * 100)} % of it went in "
            f"{policy.long}, and at this rate all of it is gone within {_duration_text(lasts)}."
        )

    def annotations(self, policy: BurnPolicy, runbook_url: str) -> dict[str, str]:
        anchor = self.alert_name(policy).lower()
        return {"summary": self.summary(policy), "runbook_url": runbook_link(runbook_url, anchor)}


def slos(
    availability: str = "99.9",
    query_latency_ms: int = 100,
    query_latency_target: str = "99",
    backup_seconds: int = 5,
    backup_target: str = "90",
) -> tuple[Slo, ...]:
    """The platform's SLOs for the given objectives (percent strings, as in the settings)."""
    query_le = le(query_latency_ms / 1000)
    backup_le = le(backup_seconds)
    return (
        Slo(
            name="availability",
            alert_prefix="Availability",
            title="Availability",
            sli="The share of the blackbox exporter's probes of the public HTTPS endpoint "
            "that succeed.",
            objective=Decimal(availability) / 100,
            error_ratio="1 - sum(sum_over_time(probe_success[{w}])) / "
            "sum(count_over_time(probe_success[{w}]))",
            action="Check the EndpointDown and NginxDown alerts, nginx's logs, its certificate "
            "and the upstreams it proxies; the Grafana SLO dashboard shows when the errors "
            "started.",
            test_series="probe",
        ),
        Slo(
            name="query-latency",
            alert_prefix="QueryLatency",
            title=f"Query latency ({query_latency_ms} ms)",
            sli=f"The share of database queries the runtime's pools run that finish within "
            f"{query_latency_ms} ms (runtime_db_query_duration_seconds).",
            objective=Decimal(query_latency_target) / 100,
            error_ratio="1 - sum(rate(runtime_db_query_duration_seconds_bucket"
            f'{{le="{query_le}"}}[{{w}}])) / '
            "sum(rate(runtime_db_query_duration_seconds_count[{w}]))",
            action="Find the slow statements (pg_stat_activity, the postgres logs), lock waits "
            "and CPU or I/O saturation (Grafana: PostgreSQL, Host and containers).",
            good_series=f'runtime_db_query_duration_seconds_bucket{{le="{query_le}"}}',
            total_series="runtime_db_query_duration_seconds_count",
        ),
        Slo(
            name="backup",
            alert_prefix="Backup",
            title=f"Backups ({backup_seconds} s)",
            sli=f"The share of backup runs that succeed within {backup_seconds} s "
            "(runtime_backup_duration_seconds).",
            objective=Decimal(backup_target) / 100,
            error_ratio="1 - sum(rate(runtime_backup_duration_seconds_bucket"
            f'{{outcome="success",le="{backup_le}"}}[{{w}}])) / '
            "sum(rate(runtime_backup_duration_seconds_count[{w}]))",
            action="`python -m runtime backup list` shows recent runs and failure reasons; a "
            "slow run points at database growth, disk or object-store throughput.",
            page=False,
            good_series="runtime_backup_duration_seconds_bucket"
            f'{{outcome="success",le="{backup_le}"}}',
            total_series='runtime_backup_duration_seconds_count{outcome="success"}',
        ),
    )


SLOS = slos()


def recording_rules(slo: Slo) -> list[dict[str, object]]:
    exprs = {
        "slo:objective:ratio": f"vector({_number(slo.objective)})",
        **{slo.record(w): slo.error_ratio.replace("{w}", w) for w in windows()},
        "slo:error_budget_remaining:ratio": f"1 - {slo.selector(PERIOD)} / {_number(slo.budget)}",
    }
    return [{"record": r, "expr": e, "labels": {"slo": slo.name}} for r, e in exprs.items()]


# What an alert's expression is made of; tests pass broken ones to see the cases fail.
ExprFor = Callable[[Slo, BurnPolicy], str]


def alert_rules(slo: Slo, runbook_url: str, expr: ExprFor = Slo.expr) -> list[dict[str, object]]:
    return [
        {
            "alert": slo.alert_name(p),
            "expr": expr(slo, p),
            "labels": {"severity": p.severity, "slo": slo.name},
            "annotations": slo.annotations(p, runbook_url),
        }
        for p in slo.policies()
    ]


def rules_yaml(
    objectives: Sequence[Slo] = SLOS, runbook_url: str = RUNBOOK_URL, expr: ExprFor = Slo.expr
) -> str:
    doc = {
        "groups": [
            {
                "name": f"slo-{s.name}",
                "rules": recording_rules(s) + alert_rules(s, runbook_url, expr),
            }
            for s in objectives
        ]
    }
    header = "# Generated by components/monitoring/slo.py. Do not edit.\n"
    return header + yaml.safe_dump(doc, sort_keys=False, width=120)


def rule_count(objectives: Sequence[Slo] = SLOS) -> int:
    return sum(len(recording_rules(s)) + len(s.policies()) for s in objectives)


# -- promtool cases ---------------------------------------------------------------------------
# A scenario is a list of (steps, share of bad events per step). Counter SLIs get a total
# counter growing by 1000 a step and a good counter growing by 1000 * (1 - share); the probe
# SLI gets `probe_success` at 1 - share, the share of that step's probes that failed as
# avg_over_time sees it.

Phase = tuple[int, float]
_PER_STEP = 1000


def _fmt(value: float) -> str:
    return format(value, ".6f").rstrip("0").rstrip(".") or "0"


def _counter(phases: Sequence[Phase], good: bool) -> str:
    """Each phase's `steps` samples; the increment into a phase's first sample is its own."""
    parts, value = [], 0.0
    for index, (steps, share) in enumerate(phases):
        step = _PER_STEP * (1 - share) if good else _PER_STEP
        start = value if index == 0 else value + step
        parts.append(f"{_fmt(start)}+{_fmt(step)}x{steps - 1}")
        value = start + step * (steps - 1)
    return " ".join(parts)


def _series(slo: Slo, phases: Sequence[Phase]) -> list[dict[str, str]]:
    if slo.test_series == "probe":
        probe = 'probe_success{job="blackbox",instance="https://nginx/"}'
        values = " ".join(f"{_fmt(1 - share)}x{steps - 1}" for steps, share in phases)
        return [{"series": probe, "values": values}]
    labels = '{job="runtime",instance="runtime:9180"}'
    good = slo.good_series.replace("{", labels[:-1] + ",", 1)
    total = slo.total_series
    total = total.replace("{", labels[:-1] + ",", 1) if "{" in total else total + labels
    return [
        {"series": good, "values": _counter(phases, good=True)},
        {"series": total, "values": _counter(phases, good=False)},
    ]


def _interval(policy: BurnPolicy) -> str:
    """The coarsest of 1m, 5m, 30m steps giving the short window six samples (at least 1m):
    promtool evaluates every rule at every step, and the 3-day ticket needs a week of them."""
    fitting = [i for i in ("30m", "5m") if seconds(i) * 6 <= seconds(policy.short)]
    return fitting[0] if fitting else "1m"


def _steps(duration: float, interval: str) -> int:
    return math.ceil(duration / seconds(interval))


@dataclass(frozen=True)
class PromtoolCase:
    slo: Slo
    policy: BurnPolicy
    kind: Literal["fires", "quiet at a sustainable burn", "quiet during a blip"]


def cases(objectives: Sequence[Slo] = SLOS) -> list[PromtoolCase]:
    kinds: tuple[Literal["fires", "quiet at a sustainable burn", "quiet during a blip"], ...] = (
        "fires",
        "quiet at a sustainable burn",
        "quiet during a blip",
    )
    return [PromtoolCase(s, p, k) for s in objectives for p in s.policies() for k in kinds]


def _test(case: PromtoolCase, runbook_url: str) -> dict[str, object]:
    slo, policy = case.slo, case.policy
    interval = _interval(policy)
    step = seconds(interval)
    long, short = seconds(policy.long), seconds(policy.short)
    threshold = float(slo.threshold(policy))
    history = _steps(long, interval)  # healthy before: the long window starts at zero
    name = slo.alert_name(policy)
    firing = [
        {
            "exp_labels": {"severity": policy.severity, "slo": slo.name},
            "exp_annotations": slo.annotations(policy, runbook_url),
        }
    ]
    expr_tests: list[dict[str, object]] = []
    if case.kind == "fires":
        # 10 % above the threshold: the long window crosses it after long / 1.1; the alert
        # must be quiet at three quarters of that and firing once the long window has passed.
        share = 1.1 * threshold
        phases: list[Phase] = [(history, 0.0), (_steps(long, interval) + 2, share)]
        checks = [
            (history * step + round(0.75 * long / 1.1), []),
            (history * step + long, firing),
        ]
    elif case.kind == "quiet at a sustainable burn":
        # 1x (the budget lasts exactly the period), or 0.8x of a threshold at or below 1x
        share = min(float(slo.budget), 0.8 * threshold)
        burn_for = _steps(long + 2 * short, interval)
        phases = [(history, 0.0), (burn_for, share)]
        checks = [((history + burn_for - 1) * step, [])]
    else:
        # Bad events worth the geometric mean of what each window tolerates (at most 80 % of
        # the short window): the short window's ratio exceeds the threshold (an expression
        # test shows it), the long window's stays below it.
        budget_seconds = min(math.sqrt(long * short) * threshold, 0.8 * short)
        blip_steps = math.ceil(budget_seconds / step)
        share = budget_seconds / (blip_steps * step)
        assert blip_steps * step <= short and share <= 1, (name, blip_steps, share)
        phases = [(history, 0.0), (blip_steps, share), (_steps(short, interval), 0.0)]
        seen_at = (history + blip_steps) * step
        checks = [(seen_at, []), (seen_at + short // 2, [])]
        expr_tests.append(
            {
                "expr": f"{slo.selector(policy.short)} > bool {_number(slo.threshold(policy))}",
                "eval_time": f"{seen_at}s",
                "exp_samples": [{"labels": f'{{slo="{slo.name}"}}', "value": 1}],
            }
        )
    test: dict[str, object] = {
        "interval": interval,
        "name": f"{name} {case.kind}",
        "input_series": _series(slo, phases),
        "alert_rule_test": [
            {"eval_time": f"{at}s", "alertname": name, "exp_alerts": expected}
            for at, expected in checks
        ],
    }
    if expr_tests:
        test["promql_expr_test"] = expr_tests
    return test


def promtool_tests_yaml(
    rules_path: str, objectives: Sequence[Slo] = SLOS, runbook_url: str = RUNBOOK_URL
) -> dict[str, str]:
    """promtool test files by name, one per sample interval (as alerts.py does)."""
    tests: dict[str, list[dict[str, object]]] = {}
    for case in cases(objectives):
        tests.setdefault(_interval(case.policy), []).append(_test(case, runbook_url))
    return promtool_test_files("slo-tests", rules_path, tests)


def runbooks_markdown(objectives: Sequence[Slo] = SLOS) -> str:
    """The SLO alerts' section of docs/runbooks.md."""
    lines = [
        "",
        "## Service-level objectives",
        "",
        "Burn-rate alerts generated from `components/monitoring/slo.py` (see docs/slo.md): a "
        "page (critical) when the error budget burns fast, a ticket (warning) when it burns "
        "steadily. The thresholds below are for the default objectives.",
    ]
    for s in objectives:
        for p in s.policies():
            lines += [
                "",
                f"### {s.alert_name(p)}",
                "",
                f"- **Severity:** {p.severity} ({p.kind})",
                f"- **Meaning:** {s.summary(p)}",
                f"- **SLI:** {s.sli}",
                f"- **Expression:** `{s.expr(p)}`",
                f"- **First action:** {s.action}",
            ]
    return "\n".join(lines) + "\n"
