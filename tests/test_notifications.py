"""E-mail notifications over SMTP: sent to a real sink (aiosmtpd in this process) with the
rendered template; a failing server is retried with backoff and the message ends visibly failed,
listed for workflow managers of its domain only."""

from __future__ import annotations

from typing import Any

import pytest

from gaas.core.settings import get_settings
from gaas.workflow.notify import notify_users
from tests.support import World, assert_problem
from tests.test_workflow_support import Clock, SmtpSink, free_port, make_worker


@pytest.fixture(scope="module")
def org(world: World) -> dict[str, Any]:
    domain, other = world.domain(), world.domain()
    return {"domain": domain, "admin": world.user(domain, "domain_admin"), "user": world.user(domain, "auditor"),
            "other_admin": world.user(other, "domain_admin")}


@pytest.fixture
def smtp_on(database):
    settings = get_settings()
    saved = settings.smtp_host, settings.smtp_port
    sink = SmtpSink().start()
    settings.smtp_host, settings.smtp_port = "127.0.0.1", sink.port
    yield sink
    settings.smtp_host, settings.smtp_port = saved
    sink.stop()


def _notify(world: World, org, subject: str) -> None:
    with world.session() as db:
        notify_users(db, [org["user"].id], subject, "Body of " + subject, domain=org["domain"])


def test_mail_reaches_the_smtp_server_with_a_stable_message_id(client, database, world, org, smtp_on):
    _notify(world, org, "Hello by mail")
    make_worker(database, smtp_host="127.0.0.1", smtp_port=smtp_on.port).run_until_idle()
    [message] = smtp_on.to(org["user"].email)
    assert message["Subject"] == "Hello by mail" and "Body of Hello by mail" in message.get_payload()
    assert message["Message-ID"].endswith("@gaas>")
    notes = client.get("/api/v1/notifications", headers=org["user"].headers).json()["items"]
    assert [n["subject"] for n in notes] == ["Hello by mail"]
    sent = client.get("/api/v1/email-messages", params={"status": "sent"}, headers=org["admin"].headers).json()
    assert [m["to_address"] for m in sent["items"]] == [org["user"].email]


def test_failed_sends_retry_with_backoff_and_end_visibly_failed(client, database, world, org, smtp_on):
    _notify(world, org, "Nobody listens")
    clock = Clock()
    dead = free_port()  # nothing listens there
    worker = make_worker(database, clock, smtp_host="127.0.0.1", smtp_port=dead, email_max_attempts=3,
                         email_retry_base_seconds=60)

    def mine(status: str) -> list[dict[str, Any]]:
        listed = client.get("/api/v1/email-messages", params={"status": status}, headers=org["admin"].headers)
        return [m for m in listed.json()["items"] if m["subject"] == "Nobody listens"]

    worker.run_until_idle()
    [pending] = mine("pending")
    assert pending["attempts"] == 1 and "Error" in pending["last_error"]
    worker.run_until_idle()
    assert mine("pending")[0]["attempts"] == 1, "waits for its backoff"
    clock.advance(seconds=60)
    worker.run_until_idle()
    assert mine("pending")[0]["attempts"] == 2
    clock.advance(seconds=120)
    worker.run_until_idle()
    [failed] = mine("failed")
    assert failed["attempts"] == 3 and failed["last_error"]
    # only workflow managers of the domain see it
    assert_problem(client.get("/api/v1/email-messages", headers=org["user"].headers), 403)
    theirs = client.get("/api/v1/email-messages", headers=org["other_admin"].headers).json()["items"]
    assert all(m["domain"] != org["domain"] for m in theirs)
