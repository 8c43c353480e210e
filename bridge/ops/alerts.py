"""The in-process tenant MOS alert: evaluates :mod:`quality.alerting`'s rule over the store.

Runs on the store thread every ``alert_eval_interval_s``. Alerts are recorded in the store's
``alerts`` table (one firing row per tenant and rule, enforced by a unique index), which is also
the state that survives a restart: a firing alert is not fired again after one. On PostgreSQL
many bridges share the table, and only the instance holding the leader advisory lock evaluates;
if it dies, its connection and lock go with it and another instance takes over.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import asdict, dataclass
from typing import Any

from bridge.core.isotime import epoch_of, iso_utc
from bridge.ops.store import AlertRecord, ReportStore
from quality.alerting import OK, AlertRule, AlertState, Phase, Transition, step


@dataclass(frozen=True)
class AlertNotice:
    """One alert event, as logged and POSTed to the alert webhook."""

    alert: str
    status: str  # "firing" or "resolved"
    tenant: str
    id: int
    mos: float
    calls: int
    threshold: float
    resolve_at: float
    window_s: float
    for_s: float
    fired_at: str
    resolved_at: str | None
    summary: str
    source: str = "mosbridge"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Evaluation:
    leader: bool
    notices: list[AlertNotice]
    firing: frozenset[str]  # tenants whose alert fires after this evaluation


class AlertEvaluator:
    def __init__(self, rule: AlertRule) -> None:
        self.rule = rule
        self._states: dict[str, AlertState] = {}

    def evaluate(self, store: ReportStore, now: float) -> Evaluation:
        """Evaluate every tenant with calls in the window or an alert in flight, at ``now`` (Unix s)."""
        rule = self.rule
        # Re-taken every time: the lock is the connection's, and the connection may be new.
        if not store.try_leader_lock():
            self._states.clear()
            return Evaluation(False, [], frozenset())
        rows = {a.tenant: a for a in store.firing_alerts() if a.rule == rule.name}
        for tenant, row in rows.items():
            if self._states.get(tenant, OK).phase is not Phase.FIRING:
                self._states[tenant] = AlertState(Phase.FIRING, epoch_of(row.fired_at))
        for tenant, state in list(self._states.items()):
            if state.phase is Phase.FIRING and tenant not in rows:
                self._states[tenant] = OK  # resolved by someone else
        windows: dict[str, list[float]] = defaultdict(list)
        for p in store.mos_points(iso_utc(now - rule.window_s), iso_utc(now)):
            windows[p.tenant].append(p.mos)
        notices = []
        for tenant in sorted(set(windows) | set(self._states)):
            values = windows.get(tenant, [])
            mean = sum(values) / len(values) if values else None
            state, transition = step(rule, self._states.get(tenant, OK), len(values), mean, now)
            if transition is Transition.FIRED and mean is not None:
                record = store.open_alert(tenant, rule.name, iso_utc(now), mean, len(values), rule.threshold)
                if record is not None:
                    notices.append(self._notice(record, "firing", mean, len(values)))
            elif (transition is Transition.RESOLVED and mean is not None and tenant in rows
                  and store.resolve_alert(rows[tenant].id, iso_utc(now), mean)):
                notices.append(self._notice(rows[tenant], "resolved", mean, len(values), iso_utc(now)))
            if state == OK:
                self._states.pop(tenant, None)
            else:
                self._states[tenant] = state
        firing = frozenset(t for t, s in self._states.items() if s.phase is Phase.FIRING)
        return Evaluation(True, notices, firing)

    def _notice(self, record: AlertRecord, status: str, mean: float, calls: int,
                resolved_at: str | None = None) -> AlertNotice:
        rule = self.rule
        window = f"{rule.window_s / 60:g} min"
        if status == "firing":
            summary = (f"tenant {record.tenant}: mean MOS {mean:.2f} over the last {window} ({calls} calls), "
                       f"below {rule.threshold:g} for {rule.for_s / 60:g} min")
        else:
            summary = (f"tenant {record.tenant}: mean MOS back to {mean:.2f} over the last {window} ({calls} calls), "
                       f"at or above {rule.resolve_at:g}")
        return AlertNotice(alert=rule.name, status=status, tenant=record.tenant, id=record.id, mos=mean, calls=calls,
                           threshold=rule.threshold, resolve_at=rule.resolve_at, window_s=rule.window_s,
                           for_s=rule.for_s, fired_at=record.fired_at, resolved_at=resolved_at, summary=summary)
