"""Change approval on the workflow engine.

Submitting a normal or emergency change starts the domain's approval workflow
(`normal-change-approval` or `emergency-change-approval`: the domain's own definition of that name,
else the platform's), in the submit's transaction; the change keeps the instance in `workflow_id`.
The workflow's outcome moves the change, through this module's own rules, in the transaction of
the final decision: approved (a normal change passes through under_review), or rejected with the
approver's comment. A change that leaves review some other way (a change manager's direct decision,
a cancellation) cancels its workflow.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy.orm import Session

from gaas.changes.models import Change, ChangeStatus, ChangeType
from gaas.core.context import Actor
from gaas.workflow import contexts
from gaas.workflow import service as workflow
from gaas.workflow.defaults import EMERGENCY_CHANGE_APPROVAL, NORMAL_CHANGE_APPROVAL
from gaas.workflow.models import InstanceStatus, WorkflowInstance

S = ChangeStatus
DEFINITIONS = {ChangeType.normal: NORMAL_CHANGE_APPROVAL, ChangeType.emergency: EMERGENCY_CHANGE_APPROVAL}
_DECIDING = "gaas.changes.deciding"  # session flag: the workflow itself is moving this change


def on_status_change(db: Session, actor: Actor, change: Change, old: ChangeStatus) -> None:
    """Called by the change service after every status move."""
    if change.status == S.submitted and change.type in DEFINITIONS:
        instance = workflow.start(db, actor, DEFINITIONS[change.type], "change", change.id,
                                  {"number": change.number, "type": change.type.value, "risk": change.risk.value},
                                  requested_by=change.requested_by, run_now=True)
        change.workflow_id = instance.id
        db.flush()
    elif old in (S.submitted, S.under_review) and db.info.get(_DECIDING) != change.id:
        _cancel_running(db, change)


def _cancel_running(db: Session, change: Change) -> None:
    if change.workflow_id is None:
        return
    instance = db.get(WorkflowInstance, change.workflow_id)
    if instance is not None and instance.status == InstanceStatus.running:
        with workflow.as_platform(db) as platform:
            workflow.cancel_instance(db, platform, instance.id)


def _on_outcome(db: Session, actor: Actor, outcome: contexts.Outcome) -> None:
    """The workflow decided: move the change if it is still waiting for that decision."""
    from gaas.changes import service as changes

    if outcome.outcome not in ("approved", "rejected") or outcome.context_id is None:
        return
    change = db.get(Change, outcome.context_id)
    if change is None or change.workflow_id != outcome.instance_id or change.status not in (S.submitted,
                                                                                            S.under_review):
        return
    now = datetime.now(UTC)
    db.info[_DECIDING] = change.id
    try:
        if change.type == ChangeType.normal and change.status == S.submitted:
            changes.apply_changes(db, actor, change, {"status": S.under_review}, now)
        target = S.approved if outcome.outcome == "approved" else S.rejected
        changes.apply_changes(db, actor, change, {"status": target, "approval_comment": outcome.comment}, now)
    finally:
        db.info.pop(_DECIDING, None)


contexts.register_outcome_handler("change", _on_outcome)
