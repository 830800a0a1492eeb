"""Preemptions under way, from plan to room made: the lifecycle, pure (no I/O).

A plan names a preemptor, the node it was nominated to and its victims.
Each victim is asked to checkpoint and is evicted once its class's grace
period has passed. A plan ends in one of four ways:

- **done**: every victim has gone; the preemptor competes again first;
- **cancelled**: the preemptor was placed elsewhere, deleted, or lost the
  right to preempt; victims not yet evicted are released (the caller removes
  their checkpoint request) and may be chosen by other plans;
- **expired**: the victims did not leave within their grace period plus a
  margin; the plan is dropped and the preemptor plans again;
- **refused too often**: an eviction refused (a PodDisruptionBudget, an API
  error) is retried with exponential backoff, and after a few refusals the
  plan is dropped and re-planned instead of retried forever.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# Victims get their grace period plus this long to leave before the plan is re-made.
EXPIRY_MARGIN_S = 30.0
REFUSAL_BACKOFF_S = 1.0
REFUSAL_BACKOFF_MAX_S = 30.0
MAX_REFUSALS = 4


@dataclass
class Plan:
    """One preemption under way."""

    preemptor: str
    node: str
    started: float
    expires: float
    due: dict[str, float]  # victim uid -> when to evict (monotonic)
    evicted: set[str] = field(default_factory=set)
    refusals: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Ended:
    """A plan that ended: why, and the victims to release (not evicted)."""

    plan: Plan
    why: str  # done | cancelled | expired | refused
    release: tuple[str, ...]


class Preemptions:
    """Plans by preemptor, and which plan claimed each victim."""

    def __init__(self) -> None:
        self.plans: dict[str, Plan] = {}
        self.victim_of: dict[str, str] = {}

    def __contains__(self, preemptor: object) -> bool:
        return preemptor in self.plans

    def __len__(self) -> int:
        return len(self.plans)

    def nodes(self) -> set[str]:
        """Nodes with a preemption under way."""
        return {p.node for p in self.plans.values()}

    def claimed(self) -> set[str]:
        """Victims chosen by some plan."""
        return set(self.victim_of)

    def node_of(self, preemptor: str) -> str | None:
        """The node nominated for ``preemptor``."""
        plan = self.plans.get(preemptor)
        return plan.node if plan else None

    def start(self, preemptor: str, node: str, victims: dict[str, float], now: float) -> Plan:
        """Begin a plan; ``victims`` maps each victim to its grace period in seconds."""
        if preemptor in self.plans:
            self.cancel(preemptor)
        longest = max(victims.values(), default=0.0)
        plan = Plan(preemptor, node, now, now + longest + EXPIRY_MARGIN_S,
                    {v: now + g for v, g in victims.items()})  # fmt: skip
        for v in victims:
            self.victim_of[v] = preemptor
        self.plans[preemptor] = plan
        return plan

    def _end(self, preemptor: str, why: str) -> Ended | None:
        plan = self.plans.pop(preemptor, None)
        if plan is None:
            return None
        release = tuple(v for v in plan.due if v not in plan.evicted)
        for v in plan.due:
            if self.victim_of.get(v) == preemptor:
                del self.victim_of[v]
        return Ended(plan, why, release)

    def cancel(self, preemptor: str) -> Ended | None:
        """The preemptor no longer needs the room (placed elsewhere, deleted, not allowed)."""
        return self._end(preemptor, "cancelled")

    def victim_gone(self, uid: str) -> None:
        """A victim left the cluster (evicted, finished or deleted)."""
        preemptor = self.victim_of.pop(uid, None)
        plan = self.plans.get(preemptor or "")
        if plan is not None:
            plan.due.pop(uid, None)
            plan.evicted.discard(uid)
            plan.refusals.pop(uid, None)

    def due(self, now: float) -> list[tuple[Plan, str]]:
        """Victims whose grace period has passed and that were not sent an eviction yet."""
        out = []
        for plan in self.plans.values():
            for uid, when in plan.due.items():
                if when <= now and uid not in plan.evicted:
                    plan.evicted.add(uid)
                    out.append((plan, uid))
        return out

    def refused(self, preemptor: str, uid: str, now: float) -> Ended | None:
        """An eviction was refused: back off exponentially, or give the plan up."""
        plan = self.plans.get(preemptor)
        if plan is None or uid not in plan.due:
            return None
        n = plan.refusals[uid] = plan.refusals.get(uid, 0) + 1
        if n >= MAX_REFUSALS:
            return self._end(preemptor, "refused")
        plan.evicted.discard(uid)
        delay = min(REFUSAL_BACKOFF_MAX_S, REFUSAL_BACKOFF_S * 2 ** (n - 1))
        plan.due[uid] = now + delay
        plan.expires = max(plan.expires, now + delay + EXPIRY_MARGIN_S)
        return None

    def settle(self, now: float) -> list[Ended]:
        """Plans that are done (no victims left) or expired, removed and returned."""
        out = []
        for preemptor, plan in list(self.plans.items()):
            if not plan.due:
                ended = self._end(preemptor, "done")
            elif now >= plan.expires:
                ended = self._end(preemptor, "expired")
            else:
                continue
            if ended is not None:
                out.append(ended)
        return out
