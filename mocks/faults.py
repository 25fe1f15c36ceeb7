"""Deterministic fault decisions for the mock upstreams.

Whether a call fails depends only on (seed, route, entity, that entity's call count on that
route), hashed to a number in [0, 1). Several workers calling in any interleaving therefore see
the same failures for the same entity, which makes a chaos run reproducible from its seed.
"""

from __future__ import annotations

import dataclasses
import hashlib
import threading
from collections import Counter
from dataclasses import dataclass, field
from enum import StrEnum


class Behaviour(StrEnum):
    """What a named entity does, regardless of the global fault rate."""

    OK = "ok"
    FLAKY = "flaky"  # 503 on its first FLAKY_CALLS calls to this server
    RATE_LIMITED = "rate_limited"  # 429 + Retry-After on its first FLAKY_CALLS calls
    DOWN = "down"  # 503 on every call
    SLOW = "slow"  # answers after slow_seconds (longer than any sane client timeout)
    MISSING = "missing"  # 404
    INVALID = "invalid"  # reads return a record that fails validation
    LOST_RESPONSE = "lost_response"  # first write is applied, then answered 502


# Two failures, then success: inside any retry budget worth having, yet it exercises the retry.
FLAKY_CALLS = 2

CRM_DEFAULT_ENTITIES: dict[str, Behaviour] = {
    "c_flaky": Behaviour.FLAKY,
    "c_down": Behaviour.DOWN,
    "c_slow": Behaviour.SLOW,
    "c_missing": Behaviour.MISSING,
    "c_invalid": Behaviour.INVALID,
}
BILLING_DEFAULT_ENTITIES: dict[str, Behaviour] = {
    "c_1002": Behaviour.RATE_LIMITED,
    "c_down": Behaviour.DOWN,
}


@dataclass(frozen=True)
class FaultSettings:
    """Fault injection knobs of one server; replaced as a whole when changed at run time."""

    fault_rate: float = 0.0
    lost_response_rate: float = 0.0
    max_faults_per_entity: int = 3
    latency_ms: int = 0
    seed: int = 0
    slow_seconds: float = 15.0
    retry_after_seconds: float = 1.0
    entities: dict[str, Behaviour] = field(default_factory=dict)

    def as_json(self) -> dict[str, object]:
        data = dataclasses.asdict(self)
        data["entities"] = {k: str(v) for k, v in sorted(self.entities.items())}
        return data


class Action(StrEnum):
    PROCEED = "proceed"
    UNAVAILABLE = "unavailable"  # answer 503 without touching the app
    RATE_LIMITED = "rate_limited"  # answer 429 + Retry-After without touching the app
    MISSING = "missing"  # answer 404
    INVALID = "invalid"  # answer a record that fails validation


@dataclass(frozen=True)
class Decision:
    action: Action = Action.PROCEED
    delay_seconds: float = 0.0
    # Apply the request and store its real answer, then tell the client 502.
    lose_response: bool = False
    retry_after_seconds: float = 0.0

    @property
    def injected(self) -> str | None:
        """Name of the injected fault, for the request log line."""
        if self.action in (Action.UNAVAILABLE, Action.RATE_LIMITED):
            return str(self.action)
        return "lost_response" if self.lose_response else None


PROCEED = Decision()


def fault_draw(seed: int, route: str, entity: str, call: int) -> float:
    """Map (seed, route, entity, call number) to a float in [0, 1), stable across processes."""
    # The unit separator cannot appear in a URL path segment, so fields never run together.
    digest = hashlib.sha256(f"{seed}\x1f{route}\x1f{entity}\x1f{call}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


class FaultBudget:
    """Injected faults spent per unit of work, shared by every server of one process.

    The unit is the caller's correlation id when it sends one (one job, across all its
    attempts, entities and both servers), else the entity. So a job that touches an invoice
    and its customer on CRM and Billing meets at most ``max_faults_per_entity`` injected faults
    in all, and a healthy job always succeeds within the default retry budget.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._spent: Counter[str] = Counter()

    def try_spend(self, key: str, limit: int) -> bool:
        with self._lock:
            if self._spent[key] >= limit:
                return False
            self._spent[key] += 1
            return True

    def refund(self, key: str) -> None:
        with self._lock:
            self._spent[key] -= 1

    def clear(self) -> None:
        with self._lock:
            self._spent.clear()


class FaultInjector:
    """Counts calls per entity and decides, atomically, which of them fail."""

    def __init__(self, settings: FaultSettings, budget: FaultBudget | None = None) -> None:
        self._initial = settings
        self._settings = settings
        self._lock = threading.Lock()
        self._route_calls: Counter[tuple[str, str]] = Counter()
        self._entity_calls: Counter[str] = Counter()
        self._budget = budget or FaultBudget()
        self._lost_once: set[str] = set()

    @property
    def settings(self) -> FaultSettings:
        return self._settings

    def update(self, settings: FaultSettings) -> None:
        # Counters survive a settings change: a run that raises the fault rate half-way keeps
        # counting the same calls, so its decisions stay reproducible.
        with self._lock:
            self._settings = settings

    def reset(self) -> None:
        """Back to the settings the server started with, and forget every call."""
        with self._lock:
            self._settings = self._initial
            self._route_calls.clear()
            self._entity_calls.clear()
            self._budget.clear()
            self._lost_once.clear()

    def decide(
        self, route: str, entity: str, *, effectful: bool = False, work: str | None = None
    ) -> Decision:
        """Count this call and decide its fate. `effectful` marks writes (lost responses);
        `work` is the caller's correlation id, the unit the fault budget is counted in."""
        with self._lock:
            s = self._settings
            self._route_calls[(route, entity)] += 1
            self._entity_calls[entity] += 1
            call = self._route_calls[(route, entity)]
            behaviour = s.entities.get(entity, Behaviour.OK)
            if behaviour is not Behaviour.OK:
                return self._behave(behaviour, entity, effectful=effectful, work=work or entity)
            return self._draw(route, entity, call, effectful=effectful, work=work or entity)

    def _behave(self, behaviour: Behaviour, entity: str, *, effectful: bool, work: str) -> Decision:
        s = self._settings
        # Transient behaviours spend the same budget as random faults, so a job that meets
        # both (a flaky customer behind an unlucky invoice) still succeeds within its retries.
        early = (
            behaviour in (Behaviour.FLAKY, Behaviour.RATE_LIMITED)
            and self._entity_calls[entity] <= FLAKY_CALLS
            and self._budget.try_spend(work, s.max_faults_per_entity)
        )
        match behaviour:
            case Behaviour.FLAKY if early:
                return Decision(Action.UNAVAILABLE)
            case Behaviour.RATE_LIMITED if early:
                return Decision(Action.RATE_LIMITED, retry_after_seconds=s.retry_after_seconds)
            case Behaviour.DOWN:
                return Decision(Action.UNAVAILABLE)
            case Behaviour.SLOW:
                return Decision(delay_seconds=s.slow_seconds)
            case Behaviour.MISSING:
                return Decision(Action.MISSING)
            case Behaviour.INVALID:
                return Decision(Action.INVALID)
            case Behaviour.LOST_RESPONSE if effectful and entity not in self._lost_once:
                self._lost_once.add(entity)
                return Decision(lose_response=True)
        return PROCEED

    def _draw(self, route: str, entity: str, call: int, *, effectful: bool, work: str) -> Decision:
        s = self._settings
        limit = s.max_faults_per_entity
        # The global rate injects 503s only; 429s come from rate_limited entities, so a run's
        # duration does not depend on Retry-After waits nobody asked for.
        if s.fault_rate > 0 and fault_draw(s.seed, route, entity, call) < s.fault_rate:
            if self._budget.try_spend(work, limit):
                return Decision(Action.UNAVAILABLE)
            return PROCEED
        lost_route = f"lost:{route}"
        if (
            effectful
            and s.lost_response_rate > 0
            and fault_draw(s.seed, lost_route, entity, call) < s.lost_response_rate
            and self._budget.try_spend(work, limit)
        ):
            return Decision(lose_response=True)
        return PROCEED
