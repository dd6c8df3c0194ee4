"""Webhooks against a real local HTTP receiver: signed bodies, idempotency keys, a receiver that
fails twice gets the event on the third try (once), backoff, the delivery log, automatic disabling,
batch outbox rows delivered item by item, and domain isolation (also in raw SQL)."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from gaas.core.db import unit_of_work
from gaas.core.events import emit, emit_batch
from gaas.iam import service as iam
from gaas.iam.schemas import UserUpdate
from tests.support import World, api_service, assert_problem, unique
from tests.test_workflow_support import Clock, Receiver, make_worker, signature_ok


@pytest.fixture(scope="module")
def receiver():
    started = Receiver().start()
    yield started
    started.stop()


@pytest.fixture(scope="module")
def org(world: World) -> dict[str, Any]:
    domain, other = world.domain(), world.domain()
    return {"domain": domain, "other": other, "admin": world.user(domain, "domain_admin"),
            "agent": world.user(domain, "service_desk_agent"), "other_admin": world.user(other, "domain_admin"),
            "global": world.user(None, "platform_admin")}


def _hook(client, who, receiver: Receiver, path: str, **body: Any) -> dict[str, Any]:
    payload = {"name": unique("hook-"), "url": receiver.url(path), "event_types": ["service.*"], **body}
    response = client.post("/api/v1/webhooks", json=payload, headers=who.headers)
    assert response.status_code == 201, response.text
    return response.json()


def test_a_webhook_receives_a_correctly_signed_body(client, database, receiver, org):
    hook = _hook(client, org["admin"], receiver, "/signed", domain=org["domain"], event_types=["service.created"])
    assert len(hook["secret"]) >= 16
    assert "secret" not in client.get(f"/api/v1/webhooks/{hook['id']}", headers=org["admin"].headers).json()
    service = api_service(client, org["admin"], org["domain"])
    make_worker(database).run_until_idle()
    [got] = receiver.on("/signed")
    assert signature_ok(hook["secret"], got)
    assert not signature_ok("another secret entirely", got)
    body = got.json
    assert (body["event_type"], body["entity_id"], body["domain"]) == ("service.created", service["id"], org["domain"])
    assert body["payload"]["name"] == service["name"]
    assert got.headers["idempotency-key"] == body["id"] == body["event_id"]
    assert got.headers["x-gaas-event"] == "service.created"
    # the secret never reaches the audit log
    audited = database.owner_rows("SELECT changes FROM gaas_audit.audit_log WHERE entity_id = :id", id=hook["id"])
    assert audited[0]["changes"]["after"]["secret"] == "[redacted]"
    log = client.get(f"/api/v1/webhooks/{hook['id']}/deliveries", headers=org["admin"].headers).json()["items"]
    assert [(d["status"], d["attempts"], d["response_status"]) for d in log] == [("delivered", 1, 200)]


def test_a_receiver_that_fails_twice_gets_it_on_the_third_try_once(client, database, receiver, org):
    hook = _hook(client, org["admin"], receiver, "/flaky", domain=org["domain"], event_types=["service.created"])
    receiver.fail["/flaky"] = 2
    api_service(client, org["admin"], org["domain"])
    clock = Clock()
    worker = make_worker(database, clock, webhook_retry_base_seconds=30)
    worker.run_until_idle()
    assert len(receiver.on("/flaky")) == 1
    worker.run_until_idle()
    assert len(receiver.on("/flaky")) == 1, "no retry before the backoff has passed"
    clock.advance(seconds=30)
    worker.run_until_idle()
    assert len(receiver.on("/flaky")) == 2
    clock.advance(seconds=59)
    worker.run_until_idle()
    assert len(receiver.on("/flaky")) == 2, "the second wait is twice as long"
    clock.advance(seconds=1)
    worker.run_until_idle()
    clock.advance(hours=2)
    worker.run_until_idle()
    attempts = receiver.on("/flaky")
    assert len(attempts) == 3
    assert len({a.key for a in attempts}) == 1 and len({a.body for a in attempts}) == 1
    assert ("/flaky", attempts[0].key) in receiver.accepted and attempts[0].key not in receiver.duplicates
    [delivery] = client.get(f"/api/v1/webhooks/{hook['id']}/deliveries", headers=org["admin"].headers).json()["items"]
    assert (delivery["status"], delivery["attempts"]) == ("delivered", 3)
    assert [a["status"] for a in delivery["attempt_log"]] == [500, 500, 200]
    recovered = client.get(f"/api/v1/webhooks/{hook['id']}", headers=org["admin"].headers).json()
    # Recovery is the worker's bookkeeping, not an edit: the administrator's version stays valid.
    assert (recovered["consecutive_failures"], recovered["version"]) == (0, hook["version"])


def test_repeated_failures_disable_the_webhook_and_tell_its_owner(client, database, receiver, org):
    hook = _hook(client, org["admin"], receiver, "/down", domain=org["domain"], event_types=["service.created"])
    receiver.fail["/down"] = 1000
    for _ in range(3):
        api_service(client, org["admin"], org["domain"])
    clock = Clock()
    worker = make_worker(database, clock, webhook_disable_after=3, webhook_retry_base_seconds=1)
    worker.run_until_idle()
    for _ in range(3):
        clock.advance(minutes=5)
        worker.run_until_idle()
    got = client.get(f"/api/v1/webhooks/{hook['id']}", headers=org["admin"].headers).json()
    assert got["active"] is False and got["disabled_at"] is not None
    assert "3 failed deliveries in a row" in got["disabled_reason"]
    assert len(receiver.on("/down")) == 3, "nothing more is sent to a disabled webhook"
    notes = client.get("/api/v1/notifications", headers=org["admin"].headers).json()["items"]
    assert any(n["subject"] == f"Webhook {hook['name']} was disabled" for n in notes)
    # re-enabled, the deliveries it missed go out
    receiver.fail["/down"] = 0
    response = client.patch(f"/api/v1/webhooks/{hook['id']}", json={"active": True, "version": got["version"]},
                            headers=org["admin"].headers)
    assert response.status_code == 200, response.text
    clock.advance(hours=1)
    worker.run_until_idle()
    assert len({r.key for r in receiver.on("/down")}) == 3
    assert len([k for k in receiver.accepted if k[0] == "/down"]) == 3


def test_batch_rows_are_delivered_item_by_item_with_their_own_keys(client, database, receiver, org):
    _hook(client, org["admin"], receiver, "/batch", domain=org["domain"], event_types=["ci.created"])
    ids = [uuid.uuid4() for _ in range(3)]
    with unit_of_work(iam.system_actor(), database.factory) as db:
        emit_batch(db, "ci.created", "ci", [(org["domain"], i, {"name": f"ci-{n}"}) for n, i in enumerate(ids)])
        emit_batch(db, "ci.created", "ci", [(org["other"], uuid.uuid4(), {"name": "elsewhere"})])
    make_worker(database).run_until_idle()
    got = receiver.on("/batch")
    assert sorted(r.json["entity_id"] for r in got) == sorted(str(i) for i in ids)
    keys = sorted(r.key for r in got)
    assert len(set(keys)) == 3 and all(k.endswith((":0", ":1", ":2")) for k in keys)
    assert {r.json["payload"]["name"] for r in got} == {"ci-0", "ci-1", "ci-2"}


def test_a_webhook_sees_only_its_owners_domains(client, database, receiver, org, world):
    # a domain administrator cannot subscribe to everything, nor to another domain
    assert_problem(client.post("/api/v1/webhooks", json={"name": "all", "url": receiver.url("/x"),
                                                         "event_types": ["*"]}, headers=org["admin"].headers), 403)
    assert_problem(client.post("/api/v1/webhooks", json={"name": "theirs", "url": receiver.url("/x"),
                                                         "event_types": ["*"], "domain": org["other"]},
                               headers=org["admin"].headers), 403)
    mine = _hook(client, org["admin"], receiver, "/mine", domain=org["domain"], event_types=["service.created"])
    _hook(client, org["global"], receiver, "/everything", event_types=["service.created"])
    _hook(client, org["global"], receiver, "/technical", event_types=["service.*"],
          condition="service.type == 'technical' and event.event_type == 'service.created'")
    ours = api_service(client, org["admin"], org["domain"])
    theirs = api_service(client, org["other_admin"], org["other"])
    technical = api_service(client, org["other_admin"], org["other"], type_="technical", parent=theirs["id"])
    make_worker(database).run_until_idle()
    assert {r.json["entity_id"] for r in receiver.on("/mine")} == {ours["id"]}
    assert {ours["id"], theirs["id"], technical["id"]} <= {r.json["entity_id"] for r in receiver.on("/everything")}
    assert {r.json["entity_id"] for r in receiver.on("/technical")} == {technical["id"]}

    # the other domain's administrator cannot see our webhook or its log, through the API or in SQL
    assert_problem(client.get(f"/api/v1/webhooks/{mine['id']}", headers=org["other_admin"].headers), 404)
    assert_problem(client.get(f"/api/v1/webhooks/{mine['id']}/deliveries", headers=org["other_admin"].headers), 404)
    with database.psycopg_app() as conn:
        conn.execute("SELECT set_config('gaas.user_id', %s, true), set_config('gaas.domains', %s, true)",
                     (str(org["other_admin"].id), org["other"]))
        assert conn.execute("SELECT count(*) FROM gaas_workflow.webhooks WHERE id = %s",
                            (mine["id"],)).fetchone()[0] == 0
        assert conn.execute("SELECT count(*) FROM gaas_workflow.webhook_deliveries WHERE webhook_id = %s",
                            (mine["id"],)).fetchone()[0] == 0

    # an owner who loses sight of the domain stops receiving its events
    agent_hook_owner = world.user(org["domain"], "domain_admin")
    lost = _hook(client, agent_hook_owner, receiver, "/lost", domain=org["domain"], event_types=["service.created"])
    with world.session() as db:
        user = iam.get_user(db, iam.system_actor(), agent_hook_owner.id)
        iam.update_user(db, iam.system_actor(), user.id, UserUpdate(status="inactive", version=user.version), None)
    api_service(client, org["admin"], org["domain"])
    make_worker(database).run_until_idle()
    assert receiver.on("/lost") == []
    # not delivered and then failed: never queued for it at all
    assert client.get(f"/api/v1/webhooks/{lost['id']}/deliveries", headers=org["admin"].headers).json()["items"] == []


@pytest.mark.parametrize(("body", "field"), [
    ({"url": "ftp://example.org/x"}, "url"),
    ({"event_types": []}, "event_types"),
    ({"event_types": ["Not An Event"]}, "event_types.0"),
    ({"condition": "service.type =="}, "condition"),
    ({"secret": "short"}, "secret"),
    ({"name": ""}, "name"),
])
def test_bad_webhooks_are_refused_naming_the_field(client, org, body, field):
    payload = {"name": "h", "url": "http://127.0.0.1:9/x", "event_types": ["service.created"],
               "domain": org["domain"], **body}
    assert_problem(client.post("/api/v1/webhooks", json=payload, headers=org["admin"].headers), 422, field)


def test_webhooks_edit_delete_and_restore_with_versions(client, receiver, org):
    hook = _hook(client, org["admin"], receiver, "/edit", domain=org["domain"])
    assert_problem(client.patch(f"/api/v1/webhooks/{hook['id']}", json={"name": "x", "version": 9},
                                headers=org["admin"].headers), 409, "version")
    edited = client.patch(f"/api/v1/webhooks/{hook['id']}", json={"event_types": ["incident.*"]},
                          headers={**org["admin"].headers, "If-Match": '"1"'})
    assert edited.json()["event_types"] == ["incident.*"] and edited.json()["version"] == 2
    assert_problem(client.patch(f"/api/v1/webhooks/{hook['id']}", json={"name": "x"},
                                headers=org["agent"].headers), 404)
    deleted = client.delete(f"/api/v1/webhooks/{hook['id']}", headers=org["admin"].headers)
    assert deleted.json()["deleted_at"] is not None
    listed = client.get("/api/v1/webhooks", headers=org["admin"].headers).json()["items"]
    assert hook["id"] not in [h["id"] for h in listed]
    assert client.post(f"/api/v1/webhooks/{hook['id']}/restore", headers=org["admin"].headers).status_code == 200
    history = client.get(f"/api/v1/webhooks/{hook['id']}/history", headers=org["admin"].headers)
    assert history.status_code == 200


def test_an_event_of_a_rolled_back_transaction_is_never_delivered(client, database, receiver, org):
    _hook(client, org["admin"], receiver, "/rollback", domain=org["domain"], event_types=["service.updated"])

    class Abort(Exception):
        pass

    with pytest.raises(Abort), unit_of_work(iam.system_actor(), database.factory) as db:
        emit(db, "service.updated", domain=org["domain"], entity_type="service", entity_id=uuid.uuid4(), payload={})
        raise Abort
    make_worker(database).run_until_idle()
    assert receiver.on("/rollback") == []
