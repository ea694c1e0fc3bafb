"""The soak's verdict: judging each client's outcome, reading the server's log, the table.

``SoakPlan`` is what a run throws at the server; ``SoakReport.failures`` names every target the
run missed (the promise it checks: every session ends cleanly whatever the client does).
"""

from __future__ import annotations

import collections
import json
from dataclasses import dataclass, field
from typing import Any

from bench.soak_clients import Outcome

_EXPLAINING = {"done": 1000, "closing": 1001}
_LIBRARY_CODES = (1002, 1007, 1009)


@dataclass(frozen=True)
class SoakPlan:
    seed: int = 1
    #: Sessions before the RSS baseline (every kind of client, in proportion). 1,000, not 100:
    #: with the phoneme demo model (two workers, ~1 GB each) the heap grows to its working size
    #: over the first ~1,000 sessions and then stays flat. After 100, the default storm showed
    #: +3.3 % and a doubled storm +4.5 % (the same plateau, ~2,245 MB); after 1,000, +0.4 %.
    warm_up: int = 1000
    clean: int = 1000
    polite: int = 500
    abrupt: int = 3000  # split evenly: before start, mid-stream, after eof
    hostile_messages: int = 10_000
    concurrency: int = 32
    max_sessions: int = 64
    overload_extra: int = 32
    drain_storm: int = 300
    drain_live: int = 4
    server_args: tuple[str, ...] = ()


@dataclass
class SoakReport:
    jobs: collections.Counter[str] = field(default_factory=collections.Counter)
    hostile_messages: int = 0
    hangs: int = 0
    client_errors: list[str] = field(default_factory=list)
    tcp_drops: int = 0
    internal_errors: int = 0
    closes_without_event: collections.Counter[int] = field(default_factory=collections.Counter)
    library_closes: collections.Counter[int] = field(default_factory=collections.Counter)
    refused_with_free_slots: int = 0
    overload_refused: int = 0
    overload_admitted: int = 0
    readmitted_after_overload: int = 0
    accepted: int = 0
    summaries: int = 0
    summary_reasons: collections.Counter[str] = field(default_factory=collections.Counter)
    tracebacks: int = 0
    leaked_sessions: int = -1
    gauge_zero_after_s: float = float("nan")
    rss_before_mb: float = 0.0
    rss_after_mb: float = 0.0
    drain_s: float = float("nan")  # the server's own drain_started → drain_finished
    exit_s: float = float("nan")  # SIGTERM → process exit, as ECS sees it
    drain_exit_code: int | None = None
    drain_live_ok: int = 0
    crashed: bool = False

    @property
    def rss_growth(self) -> float:
        return self.rss_after_mb / self.rss_before_mb - 1 if self.rss_before_mb else float("nan")

    def failures(self, plan: SoakPlan) -> list[str]:
        """Every target the run missed (empty: all met)."""
        checks = {
            "the server crashed": self.crashed,
            "hangs": self.hangs,
            "fewer hostile messages than planned": self.hostile_messages < plan.hostile_messages,
            "client errors": len(self.client_errors),
            "TCP drops without a close frame": self.tcp_drops,
            "internal_error events or 1011 closes": self.internal_errors,
            "closes without an event": sum(self.closes_without_event.values()),
            "503 while slots were free": self.refused_with_free_slots,
            "tracebacks in the server log": self.tracebacks,
            "leaked sessions": self.leaked_sessions != 0,
            "sessions without a summary line": self.accepted != self.summaries,
            "gauge not 0 within 1 s": not self.gauge_zero_after_s <= 1.0,
            "RSS grew 3 % or more": not self.rss_growth < 0.03,
            "overload did not refuse": self.overload_refused != plan.overload_extra,
            "MAX_SESSIONS not re-admitted after overload": self.readmitted_after_overload
            != plan.max_sessions,
            "drain took 2 s or more": not self.drain_s < 2.0,
            "drain exit status not 0": self.drain_exit_code != 0,
            "live streams without final + 1001 at drain": self.drain_live_ok != plan.drain_live,
        }
        return [name for name, failed in checks.items() if failed]


# ---------------------------------------------------------------------------- judging
def judge(outcome: Outcome, report: SoakReport) -> None:
    if outcome.kind == "skipped":
        return
    report.jobs[outcome.kind] += 1
    if outcome.kind == "http_junk" and not (outcome.hung or outcome.error):
        return  # no WebSocket, no session: only hangs and crashes count
    report.hostile_messages += outcome.messages
    if outcome.hung:
        report.hangs += 1
        return
    if outcome.status is not None:
        report.refused_with_free_slots += 1  # the storm never exceeds MAX_SESSIONS
        return
    if outcome.error:
        report.client_errors.append(f"{outcome.kind}: {outcome.error}")
        return
    report.accepted += 1
    if outcome.aborted:
        return
    codes = {event.get("code") for event in outcome.events}
    if "internal_error" in codes or outcome.close_code == 1011:
        report.internal_errors += 1
    if outcome.close_code is None:
        report.tcp_drops += 1
        return
    if outcome.kind == "polite":
        return  # the client closed: the server only answers its close frame
    last = outcome.events[-1] if outcome.events else {}
    explained = _EXPLAINING.get(last.get("type", "")) == outcome.close_code or (
        last.get("type") == "error" and last.get("close_code") == outcome.close_code
    )
    if explained:
        return
    if outcome.close_code in _LIBRARY_CODES:
        report.library_closes[outcome.close_code] += 1
    else:
        report.closes_without_event[outcome.close_code] += 1


def read_server_log(lines: list[str], report: SoakReport) -> None:
    for line in lines:
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            if "Traceback" in line:
                report.tracebacks += 1
            continue
        if not isinstance(record, dict):
            continue
        if "exception" in record or "Traceback" in line:
            report.tracebacks += 1
        if record.get("event") == "drain_finished":
            report.drain_s = float(record["duration_s"])
        if record.get("event") == "session_summary":
            report.summaries += 1
            report.summary_reasons[str(record.get("close_reason"))] += 1


# ---------------------------------------------------------------------------- report
def table(plan: SoakPlan, report: SoakReport, seconds: float) -> str:
    def counter(values: collections.Counter[Any]) -> str:
        return ", ".join(f"{k}: {v}" for k, v in sorted(values.items())) or "0"

    jobs = report.jobs
    abrupt = sum(v for k, v in jobs.items() if k.startswith("abrupt"))
    rows = [
        ("seed", plan.seed),
        (
            "sessions: clean / polite mid-stream / abrupt (RST)",
            f"{jobs['clean']} / {jobs['polite']} / {abrupt}",
        ),
        (
            "abrupt by phase",
            counter(collections.Counter({k[7:]: v for k, v in jobs.items() if k.startswith("abrupt")})),
        ),
        ("hostile messages (connections)", f"{report.hostile_messages} ({jobs['hostile']})"),
        ("non-WebSocket junk connections (HTTP, TLS)", jobs["http_junk"]),
        ("crashes", int(report.crashed)),
        ("hangs", report.hangs),
        ("leaked sessions (gauge after settle)", report.leaked_sessions),
        ("sessions accepted / summary lines", f"{report.accepted} / {report.summaries}"),
        ("active-session gauge 0 after last disconnect", f"{report.gauge_zero_after_s * 1000:.0f} ms"),
        ("closes without event (by code)", counter(report.closes_without_event)),
        ("library closes, documented (by code)", counter(report.library_closes)),
        ("TCP drops without close frame", report.tcp_drops),
        ("internal_error / 1011", report.internal_errors),
        ("tracebacks in the server log", report.tracebacks),
        ("503 with free slots", report.refused_with_free_slots),
        ("overload: extra handshakes refused 503", f"{report.overload_refused} of {plan.overload_extra}"),
        ("re-admitted after overload", f"{report.readmitted_after_overload} of {plan.max_sessions}"),
        (
            "RSS before / after (growth)",
            f"{report.rss_before_mb:.0f} / {report.rss_after_mb:.0f} MB ({report.rss_growth:+.1%})",
        ),
        (
            "SIGTERM after abrupt storm: drain / exit status",
            f"{report.drain_s:.2f} s / {report.drain_exit_code}",
        ),
        ("SIGTERM → process exit (interpreter teardown included)", f"{report.exit_s:.2f} s"),
        ("live streams at SIGTERM with final + 1001", f"{report.drain_live_ok} of {plan.drain_live}"),
        ("client errors", len(report.client_errors)),
        ("summary close reasons", counter(report.summary_reasons)),
        ("wall time", f"{seconds:.0f} s"),
    ]
    width = max(len(name) for name, _ in rows)
    lines = [f"| {'measure':<{width}} | value |", f"|{'-' * (width + 2)}|-------|"]
    lines += [f"| {name:<{width}} | {value} |" for name, value in rows]
    return "\n".join(lines)
