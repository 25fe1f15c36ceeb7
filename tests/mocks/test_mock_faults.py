"""Fault decisions: reproducible from the seed, bounded per entity, one per behaviour."""

from __future__ import annotations

import random

from hypothesis import given
from hypothesis import strategies as st

from mocks.faults import (
    FLAKY_CALLS,
    Action,
    Behaviour,
    FaultInjector,
    FaultSettings,
    fault_draw,
)

ROUTE = "GET /customers/{id}"
ENTITIES = [f"c_{n}" for n in range(1001, 1041)]


def outcomes(injector: FaultInjector, calls: list[str]) -> dict[str, list[Action]]:
    """Per entity, the sequence of decisions it saw, in that entity's own call order."""
    seen: dict[str, list[Action]] = {}
    for entity in calls:
        seen.setdefault(entity, []).append(injector.decide(ROUTE, entity).action)
    return seen


def test_same_seed_same_faults_whatever_the_interleaving() -> None:
    settings = FaultSettings(fault_rate=0.4, seed=42)
    calls = [e for e in ENTITIES for _ in range(5)]
    shuffled = calls[:]
    random.Random(1).shuffle(shuffled)

    first = outcomes(FaultInjector(settings), calls)
    second = outcomes(FaultInjector(settings), shuffled)

    assert first == second
    assert any(Action.UNAVAILABLE in seq for seq in first.values())


def test_another_seed_gives_other_faults() -> None:
    calls = [e for e in ENTITIES for _ in range(4)]
    one = outcomes(FaultInjector(FaultSettings(fault_rate=0.4, seed=1)), calls)
    two = outcomes(FaultInjector(FaultSettings(fault_rate=0.4, seed=2)), calls)
    assert one != two


def test_draws_are_uniform_enough() -> None:
    draws = [fault_draw(0, ROUTE, f"c_{n}", 1) for n in range(5000)]
    assert all(0.0 <= d < 1.0 for d in draws)
    assert 0.27 < sum(d < 0.3 for d in draws) / len(draws) < 0.33


def test_fault_rate_one_fails_exactly_max_times_then_succeeds() -> None:
    injector = FaultInjector(FaultSettings(fault_rate=1.0, max_faults_per_entity=3))
    actions = [injector.decide(ROUTE, "c_1001").action for _ in range(6)]
    assert actions == [Action.UNAVAILABLE] * 3 + [Action.PROCEED] * 3


def test_fault_budget_is_shared_across_routes_of_one_server() -> None:
    injector = FaultInjector(FaultSettings(fault_rate=1.0, max_faults_per_entity=3))
    routes = ["GET /customers/{id}", "PUT /customers/{id}", "GET /invoices/{id}", ROUTE]
    actions = [injector.decide(route, "c_1001").action for route in routes]
    assert actions == [Action.UNAVAILABLE] * 3 + [Action.PROCEED]


@given(
    seed=st.integers(min_value=0, max_value=2**32),
    rate=st.floats(min_value=0.0, max_value=1.0),
    max_faults=st.integers(min_value=0, max_value=5),
    entity=st.text(min_size=1, max_size=20),
)
def test_a_healthy_entity_succeeds_within_max_plus_one_attempts(
    seed: int, rate: float, max_faults: int, entity: str
) -> None:
    settings = FaultSettings(fault_rate=rate, max_faults_per_entity=max_faults, seed=seed)
    injector = FaultInjector(settings)
    actions = [injector.decide(ROUTE, entity).action for _ in range(max_faults + 1)]
    assert actions.count(Action.UNAVAILABLE) <= max_faults
    assert Action.PROCEED in actions


def test_flaky_fails_its_first_calls_then_recovers() -> None:
    injector = FaultInjector(FaultSettings(entities={"c_flaky": Behaviour.FLAKY}))
    actions = [injector.decide(ROUTE, "c_flaky").action for _ in range(FLAKY_CALLS + 2)]
    assert actions == [Action.UNAVAILABLE] * FLAKY_CALLS + [Action.PROCEED] * 2


def test_rate_limited_carries_retry_after() -> None:
    settings = FaultSettings(retry_after_seconds=7, entities={"c_1002": Behaviour.RATE_LIMITED})
    injector = FaultInjector(settings)
    decisions = [injector.decide(ROUTE, "c_1002") for _ in range(FLAKY_CALLS + 1)]
    assert [d.action for d in decisions] == [Action.RATE_LIMITED] * FLAKY_CALLS + [Action.PROCEED]
    assert decisions[0].retry_after_seconds == 7


def test_down_never_recovers_and_ignores_the_budget() -> None:
    settings = FaultSettings(max_faults_per_entity=1, entities={"c_down": Behaviour.DOWN})
    injector = FaultInjector(settings)
    assert {injector.decide(ROUTE, "c_down").action for _ in range(10)} == {Action.UNAVAILABLE}


def test_slow_missing_invalid() -> None:
    settings = FaultSettings(
        slow_seconds=15,
        entities={
            "c_slow": Behaviour.SLOW,
            "c_missing": Behaviour.MISSING,
            "c_invalid": Behaviour.INVALID,
        },
    )
    injector = FaultInjector(settings)
    assert injector.decide(ROUTE, "c_slow").delay_seconds == 15
    assert injector.decide(ROUTE, "c_missing").action is Action.MISSING
    assert injector.decide(ROUTE, "c_invalid").action is Action.INVALID


def test_lost_response_hits_the_first_write_only() -> None:
    injector = FaultInjector(FaultSettings(entities={"i_2001": Behaviour.LOST_RESPONSE}))
    assert not injector.decide("GET /invoices", "i_2001").lose_response  # reads are not lost
    writes = [injector.decide("POST /invoices", "i_2001", effectful=True) for _ in range(3)]
    assert [d.lose_response for d in writes] == [True, False, False]


def test_lost_response_rate_counts_against_the_budget() -> None:
    settings = FaultSettings(lost_response_rate=1.0, max_faults_per_entity=2)
    injector = FaultInjector(settings)
    writes = [injector.decide("POST /invoices", "i_2001", effectful=True) for _ in range(4)]
    assert [d.lose_response for d in writes] == [True, True, False, False]


def test_reset_restores_the_starting_settings_and_forgets_calls() -> None:
    start = FaultSettings(entities={"c_flaky": Behaviour.FLAKY})
    injector = FaultInjector(start)
    injector.decide(ROUTE, "c_flaky")
    injector.update(FaultSettings(fault_rate=1.0))
    injector.reset()
    assert injector.settings == start
    assert injector.decide(ROUTE, "c_flaky").action is Action.UNAVAILABLE  # call 1 again
