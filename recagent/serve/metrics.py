"""Prometheus metrics of one service process, in a registry of its own (no global state):
requests by route and status, latency, degraded answers by reason, LLM tokens, and the
pool's queue depth and running jobs read live from `Admission`."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from recagent.serve.limits import Admission
from recagent.types import Trace

LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0,
                   120.0)


class ServiceMetrics:
    def __init__(self, admission: Admission) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter("recagent_http_requests", "HTTP requests answered",
                                ["method", "route", "status"], registry=r)
        self.latency = Histogram("recagent_http_request_duration_seconds",
                                 "Seconds from request to response", ["route"],
                                 buckets=LATENCY_BUCKETS, registry=r)
        self.answers = Counter("recagent_answers", "Recommendation lists answered",
                               ["kind"], registry=r)
        self.degraded = Counter("recagent_degraded_answers",
                                "Answers that fell back to the non-LLM order, by reason",
                                ["reason"], registry=r)
        self.degraded_steps = Counter(
            "recagent_degraded_steps", "LLM steps asked for that failed (the answer shipped "
            "without them), by step (rank, explain, extract, plan) and reason",
            ["step", "reason"], registry=r)
        self.tokens = Counter("recagent_llm_tokens", "LLM tokens spent by answers",
                              ["kind"], registry=r)
        self.rejected = Counter("recagent_rejected_requests",
                                "Requests refused with 429 (pool and queue full)", registry=r)
        queue = Gauge("recagent_queue_depth", "Jobs waiting for a slot", registry=r)
        queue.set_function(lambda: admission.queued)
        running = Gauge("recagent_jobs_running", "Jobs running in the pool", registry=r)
        running.set_function(lambda: admission.running)

    def answered(self, kind: str, trace: Trace | None) -> None:
        """One list shipped (kind: recommend, message, feedback, remove)."""
        self.answers.labels(kind).inc()
        if trace is None:
            return
        for failed in trace.degradations:
            self.degraded_steps.labels(failed.step, failed.reason).inc()
        if trace.degraded:
            self.degraded.labels(trace.degraded_reason or "unknown").inc()
        usage = trace.usage
        self.tokens.labels("prompt").inc(usage.prompt_tokens)
        self.tokens.labels("completion").inc(usage.completion_tokens)

    def render(self) -> bytes:
        return generate_latest(self.registry)
