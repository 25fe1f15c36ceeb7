"""The admin UI: pages render and escape every value, the CSP forbids inline script, the login
link works once, and every change needs the session's CSRF token."""

from __future__ import annotations

import html
import re
from html.parser import HTMLParser

import httpx
import pytest

from syncbridge.api.auth import Sessions
from syncbridge.db.queries import Store
from syncbridge.jobtypes import AppliedEffect
from tests.api.support import (
    HOSTILE,
    TOKEN,
    csrf_of,
    dead_job,
    enqueue,
    failed_job,
    snapshot,
    succeeded_job,
)

PAGES = ["/ui/", "/ui/jobs", "/ui/dlq", "/ui/login", "/docs"]


class _ScriptFinder(HTMLParser):
    """Collects what a browser would run: inline scripts, handlers, ``javascript:`` links."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        names = dict(attrs)
        if tag == "script" and not names.get("src"):
            self.found.append("inline <script>")
        if tag == "img" or tag == "iframe":
            self.found.append(f"<{tag}> element")
        for name, value in attrs:
            if name.startswith("on"):
                self.found.append(f"{tag} {name}=")
            if (value or "").strip().lower().startswith("javascript:"):
                self.found.append(f"{tag} {name}=javascript:")


def _no_inline_script(page: str) -> None:
    finder = _ScriptFinder()
    finder.feed(page)
    assert finder.found == []


def test_job_page_shows_when_reconcile_asks_again(browser: httpx.Client, store: Store) -> None:
    """The upstream's error is text from outside: shown escaped, like an entity id."""
    dead = dead_job(store, "c_2001")
    assert store.ask_again_later(dead.id, f"UpstreamUnavailable: {HOSTILE}", lambda n: 45.0)
    page = browser.get(f"/ui/jobs/{dead.id}")
    assert page.status_code == 200
    assert "unknown: asked 1 time, next at" in page.text
    assert HOSTILE not in page.text and html.escape(HOSTILE, quote=False) in page.text
    _no_inline_script(page.text)


def test_job_page_lists_the_effects_it_filed_as_text(browser: httpx.Client, store: Store) -> None:
    """Effect keys and upstream refs come from plugins and upstreams: shown escaped."""
    own = AppliedEffect("crm-invoice-i_2002", "billing", HOSTILE[:255])
    on_the_way = AppliedEffect(HOSTILE[:255], "billing", "c_1001")
    done = succeeded_job(store, "i_2002", (own, on_the_way))
    page = browser.get(f"/ui/jobs/{done.id}")
    assert page.status_code == 200
    assert "Effects in the ledger" in page.text
    assert own.effect_key in page.text and "c_1001" in page.text
    assert HOSTILE[:255] not in page.text
    assert html.escape(HOSTILE[:255], quote=False) in page.text
    _no_inline_script(page.text)
    empty = browser.get(f"/ui/jobs/{dead_job(store, 'c_2002').id}")
    assert "Effects in the ledger" in empty.text and "None." in empty.text


def test_hostile_entity_id_is_shown_as_text(browser: httpx.Client, store: Store) -> None:
    dead = dead_job(store, HOSTILE)
    for path in ("/ui/jobs", f"/ui/jobs/{dead.id}", "/ui/dlq", "/ui/jobs?entity_id=" + HOSTILE):
        page = browser.get(path)
        assert page.status_code == 200, path
        assert HOSTILE not in page.text, path
        assert html.escape(HOSTILE, quote=False) in page.text, path
        _no_inline_script(page.text)


@pytest.mark.parametrize("path", PAGES)
def test_pages_send_a_csp_without_inline_script(browser: httpx.Client, path: str) -> None:
    page = browser.get(path)
    assert page.status_code == 200
    csp = page.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp
    assert page.headers["x-frame-options"] == "DENY"
    assert page.headers["referrer-policy"] == "same-origin"
    _no_inline_script(page.text)


def test_dashboard_counts_and_charts(client: httpx.Client, store: Store) -> None:
    succeeded_job(store, "c_1")
    dead_job(store, "c_2")
    enqueue(store, "c_3")
    page = client.get("/ui/").text
    assert re.search(r'<span class="n">1</span><span class="label">dead</span>', page)
    assert re.search(r'<span class="n">3</span><span class="label">jobs</span>', page)
    assert page.count("<svg") == 2 and "<polyline" in page
    assert "2 started, 1 succeeded, 1 failed, 0 running" in page


def test_jobs_list_filters_and_pages(client: httpx.Client, store: Store) -> None:
    dead = dead_job(store, "c_dead")
    ids = [enqueue(store, f"c_{n}").id for n in range(5)]
    only_dead = client.get("/ui/jobs?state=dead").text
    assert (
        f'href="/ui/jobs/{dead.id}"' in only_dead and f'href="/ui/jobs/{ids[0]}"' not in only_dead
    )
    by_entity = client.get("/ui/jobs?entity_id=c_3&state=&job_type=").text
    assert f"/ui/jobs/{ids[3]}" in by_entity and f'/ui/jobs/{ids[2]}"' not in by_entity
    first = client.get("/ui/jobs?limit=2").text
    older = re.search(r'href="(/ui/jobs\?[^"]+)" rel="next"', first)
    assert older, "no link to the next page"
    second = client.get(html.unescape(older.group(1))).text
    assert f'href="/ui/jobs/{ids[2]}"' in second and f'href="/ui/jobs/{ids[4]}"' not in second
    assert client.get("/ui/jobs?state=sleeping").status_code == 422


def test_job_page_shows_the_attempt_timeline(client: httpx.Client, store: Store) -> None:
    dead = dead_job(store, "c_1")
    page = client.get(f"/ui/jobs/{dead.id}").text
    for text in ("UpstreamUnavailable", "503", "250.0 ms", "worker-test-1", dead.correlation_id):
        assert text in page
    assert client.get("/ui/jobs/999999").status_code == 404


def test_login_link_works_once_and_sets_a_strict_cookie(
    client: httpx.Client, sessions: Sessions
) -> None:
    code = sessions.mint_login_code()
    first = client.get(f"/ui/login?token={code}")
    assert first.status_code == 303 and first.headers["location"] == "/ui/"
    cookie = first.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie
    client.cookies.clear()
    again = client.get(f"/ui/login?token={code}")
    assert again.status_code == 401 and "set-cookie" not in again.headers


def test_login_with_the_admin_token(client: httpx.Client) -> None:
    assert client.post("/ui/login", data={"token": "nope"}).status_code == 401
    assert client.post("/ui/login", data={"token": TOKEN}).status_code == 303
    assert "Log out" in client.get("/ui/").text


def test_ui_actions_need_a_session_and_the_csrf_token(
    client: httpx.Client, browser: httpx.Client, store: Store
) -> None:
    job = enqueue(store, "c_1")
    before = snapshot(store)
    assert client.post(f"/ui/jobs/{job.id}/cancel", data={}).status_code == 401
    assert browser.post(f"/ui/jobs/{job.id}/cancel", data={}).status_code == 403
    wrong = browser.post(f"/ui/jobs/{job.id}/cancel", data={"csrf_token": "forged"})
    assert wrong.status_code == 403
    token = csrf_of(browser.get(f"/ui/jobs/{job.id}").text)
    elsewhere = browser.post(
        f"/ui/jobs/{job.id}/cancel",
        data={"csrf_token": token},
        headers={"Origin": "https://evil.example"},
    )
    assert elsewhere.status_code == 403
    assert snapshot(store) == before
    done = browser.post(f"/ui/jobs/{job.id}/cancel", data={"csrf_token": token})
    assert done.status_code == 303 and store.get_job(job.id).state == "cancelled"


def test_replay_from_the_job_page_links_to_the_new_job(browser: httpx.Client, store: Store) -> None:
    dead = dead_job(store, "c_1")
    page = browser.get(f"/ui/jobs/{dead.id}").text
    assert f'action="/ui/jobs/{dead.id}/replay"' in page
    assert f'action="/ui/jobs/{dead.id}/retry"' not in page  # retry is not legal for dead
    replayed = browser.post(f"/ui/jobs/{dead.id}/replay", data={"csrf_token": csrf_of(page)})
    assert replayed.status_code == 303
    after = browser.get(replayed.headers["location"]).text
    new_id = int(re.search(r'id="new-job">#(\d+)<', after).group(1))  # type: ignore[union-attr]
    assert store.get_job(new_id).replay_of_job_id == dead.id
    assert f'class="replayed-by">#{new_id}' in after
    assert f'class="replays">#{dead.id}' in browser.get(f"/ui/jobs/{new_id}").text


def test_an_unknown_effect_takes_the_operators_answer_from_the_job_page(
    client: httpx.Client, browser: httpx.Client, store: Store
) -> None:
    dead = dead_job(store, "c_3001")  # a retryable error ended it: its effect is unknown
    failed = failed_job(store, "c_3002")  # a terminal refusal: known
    assert f'action="/ui/jobs/{failed.id}/effect"' not in browser.get(f"/ui/jobs/{failed.id}").text
    assert "/effect" not in client.get(f"/ui/jobs/{dead.id}").text  # not logged in: no form
    page = browser.get(f"/ui/jobs/{dead.id}").text
    assert f'action="/ui/jobs/{dead.id}/effect"' in page
    _no_inline_script(page)
    before = snapshot(store), store.get_job(dead.id)
    token = csrf_of(page)
    refused = {
        "no session": client.post(f"/ui/jobs/{dead.id}/effect", data={"effect_status": "applied"}),
        "no csrf": browser.post(f"/ui/jobs/{dead.id}/effect", data={"effect_status": "applied"}),
        "bad answer": browser.post(
            f"/ui/jobs/{dead.id}/effect", data={"csrf_token": token, "effect_status": "maybe"}
        ),
        "known outcome": browser.post(
            f"/ui/jobs/{failed.id}/effect", data={"csrf_token": token, "effect_status": "applied"}
        ),
    }
    assert {name: r.status_code for name, r in refused.items()} == {
        "no session": 401,
        "no csrf": 403,
        "bad answer": 422,
        "known outcome": 409,
    }
    assert (snapshot(store), store.get_job(dead.id)) == before
    done = browser.post(
        f"/ui/jobs/{dead.id}/effect", data={"csrf_token": token, "effect_status": "not_applied"}
    )
    assert done.status_code == 303
    after = browser.get(done.headers["location"]).text
    assert "Your answer is recorded" in after and "/effect" not in after
    assert store.get_job(dead.id).effect_status == "not_applied"


def test_refusals_render_as_pages(browser: httpx.Client, store: Store) -> None:
    dead = dead_job(store, "c_1")
    token = csrf_of(browser.get("/ui/").text)
    refused = browser.post(f"/ui/jobs/{dead.id}/retry", data={"csrf_token": token})
    assert refused.status_code == 409 and "replay it instead" in refused.text
    assert "text/html" in refused.headers["content-type"]


def test_dlq_groups_by_error_class_and_replays_the_selected(
    browser: httpx.Client, store: Store
) -> None:
    first, second = dead_job(store, "c_1"), dead_job(store, "c_2")
    failed = failed_job(store, "c_3")
    page = browser.get("/ui/dlq").text
    assert "UpstreamUnavailable" in page and "ValidationError" in page
    assert f'formaction="/ui/jobs/{failed.id}/retry"' in page
    result = browser.post(
        "/ui/dlq/replay",
        data={"csrf_token": csrf_of(page), "job_id": [str(first.id), str(second.id)]},
    )
    assert result.status_code == 200
    assert result.text.count("replayed as") == 2
    assert len(store.list_jobs(state="pending")) == 2
    nothing = browser.post("/ui/dlq/replay", data={"csrf_token": csrf_of(page)})
    assert nothing.status_code == 422
    # int() would read these as 12 and 10; a form only ever sends ASCII digits.
    for odd in ("\uff11\uff12", "1_0", " 1", "+1"):
        refused = browser.post(
            "/ui/dlq/replay", data={"csrf_token": csrf_of(page), "job_id": [odd]}
        )
        assert refused.status_code == 422, odd
    assert len(store.list_jobs(state="pending")) == 2


def test_enqueue_and_logout_from_the_ui(browser: httpx.Client, store: Store) -> None:
    token = csrf_of(browser.get("/ui/jobs").text)
    form = {"csrf_token": token, "job_type": "noop", "entity_id": HOSTILE, "payload": '{"a": 1}'}
    made = browser.post("/ui/jobs", data=form)
    assert made.status_code == 303
    job = store.list_jobs()[0]
    assert job.entity_id == HOSTILE and job.payload == {"a": 1}
    bad = browser.post("/ui/jobs", data=form | {"entity_id": "c_2", "payload": "{"})
    assert bad.status_code == 422
    assert browser.post("/ui/logout", data={"csrf_token": token}).status_code == 303
    assert browser.post(f"/ui/jobs/{job.id}/cancel", data={"csrf_token": token}).status_code == 401
