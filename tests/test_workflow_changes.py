"""Change approval on the workflow engine, end to end through the changes API: a submitted normal
change goes through both approval steps and lands in approved; an emergency change rejected lands
in rejected with the comment; the requester cannot approve; a direct decision cancels the workflow."""

from __future__ import annotations

from typing import Any

import pytest

from tests.support import World, assert_problem
from tests.test_changes import PLANS, curl, make_change, move, window


@pytest.fixture(scope="module")
def cab(world: World) -> dict[str, Any]:
    domain = world.domain()
    return {"domain": domain, "admin": world.user(domain, "domain_admin"),
            "requester": world.user(domain, "change_manager", "service_owner"),
            "manager": world.user(domain, "change_manager"), "owner": world.user(domain, "service_owner")}


def _pending_approval(client, who, change: dict[str, Any]) -> dict[str, Any]:
    instance = client.get(f"/api/v1/workflow-instances/{change['workflow_id']}", headers=who.headers).json()
    [approval] = [a for a in instance["approvals"] if a["status"] == "pending"]
    return approval


def test_a_normal_change_is_approved_by_the_change_manager_then_the_service_owner(client, cab):
    change = make_change(client, cab["requester"], cab["domain"], **window(days=20), **PLANS)
    submitted = move(client, cab["requester"], change, "submitted")
    assert (submitted["status"], submitted["approval_status"]) == ("submitted", "pending")
    assert submitted["workflow_id"]
    first = _pending_approval(client, cab["admin"], submitted)
    assert first["approver_role"] == "change_manager"
    # the requester holds both approver roles and still may not approve
    assert_problem(client.post(f"/api/v1/approvals/{first['id']}/approve", json={},
                               headers=cab["requester"].headers), 403)
    client.post(f"/api/v1/approvals/{first['id']}/approve", json={}, headers=cab["manager"].headers) \
        .raise_for_status()
    assert client.get(curl(change), headers=cab["admin"].headers).json()["status"] == "submitted"
    second = _pending_approval(client, cab["admin"], submitted)
    assert second["approver_role"] == "service_owner"
    client.post(f"/api/v1/approvals/{second['id']}/approve", json={"comment": "Fine by the service"},
                headers=cab["owner"].headers).raise_for_status()
    approved = client.get(curl(change), headers=cab["admin"].headers).json()
    assert (approved["status"], approved["approval_status"]) == ("approved", "approved")
    history = client.get(f"{curl(change)}/history", headers=cab["admin"].headers).json()
    statuses = [h["changes"]["after"].get("status") for h in history["items"] if h["changes"]]
    assert "under_review" in statuses and "approved" in statuses


def test_a_rejected_emergency_change_lands_in_rejected_with_the_comment(client, database, cab):
    change = make_change(client, cab["requester"], cab["domain"], type="emergency", **window(days=21), **PLANS)
    submitted = move(client, cab["requester"], change, "submitted")
    approval = _pending_approval(client, cab["admin"], submitted)
    response = client.post(f"/api/v1/approvals/{approval['id']}/reject", json={"comment": "Not without a backup"},
                           headers=cab["manager"].headers)
    assert response.status_code == 200, response.text
    rejected = client.get(curl(change), headers=cab["admin"].headers).json()
    assert (rejected["status"], rejected["approval_status"]) == ("rejected", "rejected")
    audited = database.owner_rows("SELECT changes FROM gaas_audit.audit_log WHERE entity_id = :id AND action = "
                                  "'reject'", id=change["id"])
    assert [a["changes"]["after"]["comment"] for a in audited] == ["Not without a backup"]


def test_a_direct_decision_cancels_the_workflow(client, cab):
    change = make_change(client, cab["requester"], cab["domain"], **window(days=22), **PLANS)
    submitted = move(client, cab["requester"], change, "submitted")
    move(client, cab["manager"], change, "under_review", "approved")
    instance = client.get(f"/api/v1/workflow-instances/{submitted['workflow_id']}",
                          headers=cab["admin"].headers).json()
    assert instance["status"] == "cancelled"
    assert [a["status"] for a in instance["approvals"]] == ["cancelled"]
