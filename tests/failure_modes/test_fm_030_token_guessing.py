"""FM_030: the admin token (or a login code) guessed online, one request per guess.

Every way in that checks a secret is covered: a mutating API call's bearer token, the UI login
form and a one-time login link. The unsafe variant is the same app with a throttle that never
refuses; the fix refuses an address after ``MAX_FAILED_LOGINS`` wrong answers in a minute, the
right one included, until the window has passed (the injected clock moves it)."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import httpx
import pytest
from fastapi import FastAPI

from syncbridge.api import create_app
from syncbridge.api.auth import Sessions
from syncbridge.api.throttle import (
    FAILED_LOGIN_WINDOW,
    MAX_FAILED_LOGINS,
    NOT_AN_ADDRESS,
    FailedLogins,
    client_key,
)
from syncbridge.clock import FakeClock
from syncbridge.config import Settings
from syncbridge.db.queries import Store
from syncbridge.plugins import load_registry
from syncbridge.services import Services
from tests.api.support import TOKEN, client_for

ATTACKER = "203.0.113.7"
OPERATOR = "198.51.100.20"
# A guess: (client, secret) -> status. Each way in answers 2xx/3xx for the right secret.
Attempt = Callable[[httpx.Client, str], int]


def api_call(client: httpx.Client, secret: str) -> int:
    headers = {"Authorization": f"Bearer {secret}"}
    return client.post("/api/jobs/noop", json={"entity_id": "e-1"}, headers=headers).status_code


def login_form(client: httpx.Client, secret: str) -> int:
    return client.post("/ui/login", data={"token": secret}).status_code


def login_link(client: httpx.Client, secret: str) -> int:
    return client.get(f"/ui/login?token={secret}").status_code


WAYS_IN = {"api bearer token": api_call, "ui login form": login_form, "ui login link": login_link}


def make_app(store: Store, failed_logins: FailedLogins) -> tuple[FastAPI, Sessions]:
    services = Services(store, load_registry(["noop"]), Settings(admin_token=TOKEN))
    sessions = Sessions(clock=store.clock)
    return create_app(services, sessions=sessions, failed_logins=failed_logins), sessions


def right_secret(way: Attempt, sessions: Sessions) -> str:
    return sessions.mint_login_code() if way is login_link else TOKEN


def accepted(status: int) -> bool:
    return 200 <= status < 400


@pytest.mark.parametrize("way", WAYS_IN.values(), ids=WAYS_IN.keys())
def test_repro_unthrottled_app_lets_an_address_guess_without_end(
    store: Store, way: Attempt
) -> None:
    never = FailedLogins(store.clock, limit=10**9)
    app, sessions = make_app(store, never)
    with client_for(app, ATTACKER) as attacker:
        statuses = Counter(way(attacker, f"guess-{n}") for n in range(5 * MAX_FAILED_LOGINS))
        assert statuses == Counter({401: 5 * MAX_FAILED_LOGINS})  # every guess was compared
        assert accepted(way(attacker, right_secret(way, sessions)))  # ...until one is right


@pytest.mark.parametrize("way", WAYS_IN.values(), ids=WAYS_IN.keys())
def test_prevented_an_address_is_refused_after_the_limit_even_with_the_right_secret(
    store: Store, way: Attempt
) -> None:
    assert isinstance(store.clock, FakeClock)
    app, sessions = make_app(store, FailedLogins(store.clock))
    with client_for(app, ATTACKER) as attacker, client_for(app, OPERATOR) as operator:
        for n in range(MAX_FAILED_LOGINS):
            assert way(attacker, f"guess-{n}") == 401
        refused = (
            attacker.post("/ui/login", data={"token": TOKEN})
            if way is login_form
            else attacker.get(f"/ui/login?token={sessions.mint_login_code()}")
            if way is login_link
            else attacker.post(
                "/api/jobs/noop",
                json={"entity_id": "refused"},
                headers={"Authorization": f"Bearer {TOKEN}"},
            )
        )
        assert refused.status_code == 429
        retry_after = int(refused.headers["retry-after"])
        assert 1 <= retry_after <= FAILED_LOGIN_WINDOW.total_seconds()
        assert "try again in" in refused.text
        # Another address is not held responsible.
        assert accepted(way(operator, right_secret(way, sessions)))
        # Once the window has passed, the attacker's address is heard again.
        store.clock.advance(FAILED_LOGIN_WINDOW.total_seconds())
        assert accepted(way(attacker, right_secret(way, sessions)))
    # The refused call changed nothing: its entity has no job.
    if way is api_call:
        assert [job.entity_id for job in store.list_jobs(limit=10)] == ["e-1"]


@pytest.mark.parametrize("way", WAYS_IN.values(), ids=WAYS_IN.keys())
def test_prevented_fifty_guesses_at_once_get_only_the_limit_compared(
    store: Store, way: Attempt
) -> None:
    app, _ = make_app(store, FailedLogins(store.clock))
    guesses = [f"guess-{n}" for n in range(50)]
    with ThreadPoolExecutor(10) as pool:

        def guess(secret: str) -> int:
            with client_for(app, ATTACKER) as attacker:
                return way(attacker, secret)

        statuses = Counter(pool.map(guess, guesses))
    assert statuses == Counter({401: MAX_FAILED_LOGINS, 429: 50 - MAX_FAILED_LOGINS})


def test_a_request_without_a_secret_is_not_a_guess(store: Store) -> None:
    app, _ = make_app(store, FailedLogins(store.clock))
    with client_for(app, ATTACKER) as client:
        for _ in range(3 * MAX_FAILED_LOGINS):
            assert client.post("/api/jobs/noop", json={"entity_id": "e"}).status_code == 401
            assert client.post("/ui/login", data={"token": "  "}).status_code == 401
        assert api_call(client, TOKEN) == 201


def test_the_window_slides_and_a_right_answer_does_not_clear_the_record() -> None:
    clock = FakeClock()
    logins = FailedLogins(clock, limit=3, window=timedelta(seconds=60))
    wrong, right = (lambda: False), (lambda: True)
    assert not logins.check(ATTACKER, wrong).throttled
    clock.advance(30)
    assert not logins.check(ATTACKER, wrong).throttled
    assert logins.check(ATTACKER, right).ok  # a right answer from the same address...
    assert not logins.check(ATTACKER, wrong).throttled  # ...bought no extra guesses:
    verdict = logins.check(ATTACKER, right)  # three failures within the minute, not compared
    assert verdict == (False, 30)
    clock.advance(30)  # the first failure has left the window
    assert logins.check(ATTACKER, right).ok
    assert not logins.check(ATTACKER, wrong).ok
    assert logins.check(ATTACKER, right).throttled


def test_prevented_interleaved_right_answers_from_a_shared_address_do_not_reset_it(
    store: Store,
) -> None:
    """A client with the right token (a cron job behind the same proxy) must not reset the
    count for an attacker at the same address."""
    app, _ = make_app(store, FailedLogins(store.clock))
    compared_wrong = 0
    with client_for(app, ATTACKER) as shared:
        for n in range(5 * MAX_FAILED_LOGINS):
            status = api_call(shared, TOKEN if n % 3 == 0 else f"guess-{n}")
            compared_wrong += status == 401
    assert compared_wrong == MAX_FAILED_LOGINS


def test_the_check_compare_and_record_are_one_critical_section() -> None:
    """Fifty threads with a slow comparison: only ``limit`` comparisons run at all."""
    logins = FailedLogins(FakeClock())
    compared = Counter[str]()
    gate = threading.Lock()

    def slow_wrong() -> bool:
        with gate:
            compared["calls"] += 1
        time.sleep(0.005)  # a real thread switch inside the comparison, not a clock
        return False

    with ThreadPoolExecutor(50) as pool:
        verdicts = list(pool.map(lambda _: logins.check(ATTACKER, slow_wrong), range(50)))
    assert compared["calls"] == MAX_FAILED_LOGINS
    assert sum(verdict.throttled for verdict in verdicts) == 50 - MAX_FAILED_LOGINS


@pytest.mark.parametrize(
    ("host", "key"),
    [
        ("203.0.113.7", "203.0.113.7"),
        ("::ffff:203.0.113.7", "203.0.113.7"),
        ("2001:db8:1:2:aaaa::1", "2001:db8:1:2::/64"),
        ("[2001:db8:1:2:ffff::9]", "2001:db8:1:2::/64"),
        ("::1", "::/64"),
        ("not an address" * 1000, NOT_AN_ADDRESS),
        ("", NOT_AN_ADDRESS),
        (None, NOT_AN_ADDRESS),
    ],
)
def test_the_key_is_the_address_an_ipv6_host_its_64_and_anything_else_one_bucket(
    host: str | None, key: str
) -> None:
    assert client_key(host) == key


def test_an_ipv6_host_cannot_escape_by_changing_the_low_bits() -> None:
    logins = FailedLogins(FakeClock(), limit=3)
    for n in range(3):
        assert not logins.check(f"2001:db8::{n + 1:x}", lambda: False).throttled
    assert logins.check("2001:db8::ffff", lambda: True).throttled
    assert logins.check("2001:db8:0:1::1", lambda: True).ok  # another /64


def test_the_record_forgets_the_address_whose_last_failure_is_oldest() -> None:
    clock = FakeClock()
    logins = FailedLogins(clock, limit=2, max_clients=2)
    wrong, right = (lambda: False), (lambda: True)
    logins.check("10.0.0.1", wrong)
    logins.check("10.0.0.2", wrong)
    logins.check("10.0.0.1", wrong)  # 10.0.0.1 failed last: 10.0.0.2 is now the stalest
    logins.check("10.0.0.3", wrong)  # one too many: 10.0.0.2 is forgotten
    assert logins.check("10.0.0.1", right).throttled
    logins.check("10.0.0.2", wrong)  # its first failure again, not its second
    assert logins.check("10.0.0.2", right).ok


def test_the_record_is_bounded_by_forgetting_the_stalest_address() -> None:
    clock = FakeClock()
    logins = FailedLogins(clock, limit=1, max_clients=100)
    for n in range(1000):
        logins.check(f"10.0.{n // 256}.{n % 256}", lambda: False)
        clock.advance(0.001)
    assert logins.check("10.0.3.231", lambda: True).throttled  # the newest is remembered
    assert logins.check("10.0.0.0", lambda: True).ok  # the oldest was forgotten
    with pytest.raises(ValueError):
        FailedLogins(clock, limit=0)
