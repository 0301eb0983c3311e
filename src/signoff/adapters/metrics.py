"""Prometheus metrics, one registry per process (so tests can build many apps)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from signoff.domain.requests import Request


class PrometheusObserver:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "signoff_requests_total",
            "Requests submitted, by policy and outcome (status right after submission).",
            ["policy", "outcome"],
            registry=self.registry,
        )
        self.decisions = Counter(
            "signoff_decisions_total",
            "Requests decided, by policy and final decision.",
            ["policy", "decision"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "signoff_decision_latency_seconds",
            "Time from submission to decision.",
            ["policy"],
            buckets=(0.01, 0.1, 1, 10, 60, 300, 900, 1800, 3600, 14400, 86400),
            registry=self.registry,
        )

        self.scheduled = Counter(
            "signoff_scheduled_events_total",
            "Events fired by deadlines: reminders, escalations, timeouts, expiries.",
            ["event"],
            registry=self.registry,
        )
        self.due_depth = Gauge(
            "signoff_due_requests",
            "Requests whose next deadline has passed and which no sweep has handled yet.",
            registry=self.registry,
        )
        self.worker_lag = Gauge(
            "signoff_worker_lag_seconds",
            "Age of the oldest overdue deadline (0 when the worker is keeping up).",
            registry=self.registry,
        )

        self.deliveries = Counter(
            "signoff_outbox_deliveries_total",
            "Outbox delivery attempts by channel and outcome (delivered, failed, dead).",
            ["channel", "outcome"],
            registry=self.registry,
        )

        self.executions = Counter(
            "signoff_executions_total",
            "Actions Signoff ran on targets, by target and outcome (ok, failed, not_run).",
            ["target", "outcome"],
            registry=self.registry,
        )
        self.execution_seconds = Histogram(
            "signoff_execution_seconds",
            "How long executions on targets took, by target.",
            ["target"],
            registry=self.registry,
        )

        self.findings = Gauge(
            "signoff_flow_findings",
            "Findings about the approval flow over the last 30 days, by kind (always "
            "approved, quick approvals, never denies, times out, over-notified, never "
            "matches, noisy requester): see /flow or `signoff report`.",
            ["kind"],
            registry=self.registry,
        )

    def delivery(self, channel: str, outcome: str) -> None:
        self.deliveries.labels(channel, outcome).inc()

    def executed(self, target: str, outcome: str, seconds: float) -> None:
        self.executions.labels(target, outcome).inc()
        self.execution_seconds.labels(target).observe(seconds)

    def fired(self, event: str) -> None:
        self.scheduled.labels(event).inc()

    def submitted(self, request: Request) -> None:
        self.requests.labels(request.policy_name, request.status.value).inc()

    def decided(self, request: Request) -> None:
        self.decisions.labels(request.policy_name, request.status.value).inc()
        if request.decided_at is not None:
            seconds = (request.decided_at - request.created_at).total_seconds()
            self.latency.labels(request.policy_name).observe(max(0.0, seconds))

    def render(self) -> bytes:
        return generate_latest(self.registry)
