"""The authorization matrix: every API operation, called as every default role, is allowed or
refused exactly as the permission catalogue says.

MATRIX below is the reviewable table: each operation of `create_app()` under /api/ (method and
path template) with what it needs. Some operations also have variants (a third element in the
key) for a request that needs more than the plain one, e.g. an incident created already assigned.
A test checks that the table and the application list the same operations, so a new endpoint
cannot appear without being classified here.

Every operation is then called as nine callers: a user of one test domain holding each default
role (DEFAULT_ROLES) scoped to that domain, and a global platform administrator; and once without
credentials. The expectation comes from DEFAULT_ROLES alone:

- a caller whose role holds what the rule needs gets a success (2xx), whose body conforms to the
  response schema the operation documents;
- a caller whose role lacks it gets 403 problem+json naming the missing permission, or 404 where
  the API hides the record from those who may not see it (`hidden_by`);
- no credentials: 401.

The requests are built per operation (REQUESTS below) from records of each kind that the global
administrator makes once for the module; operations that destroy or consume their target
(delete, restore, approve, ...) get a fresh one for every call.

Known deviations, where the code does not do what the catalogue says, are marked in the table
with the behaviour the code has today, so that this test stays green and honest: see `Deviation`.
"""

from __future__ import annotations

import json
import re
import secrets
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import schemathesis
from fastapi.routing import APIRoute, iter_route_contexts

from gaas.core.history import HISTORY_SOURCES
from gaas.iam.permissions import DEFAULT_ROLES, PERMISSIONS
from tests.support import PASSWORD, Person, StrictClient, World, unique

# ---- the table ------------------------------------------------------------------------------------

PUBLIC = "public"  # no credentials needed
AUTHENTICATED = "authenticated"  # any logged-in user, whatever their roles


@dataclass(frozen=True)
class Deviation:
    """Where the code does not follow the catalogue: what it answers today for these roles, and why
    that is wrong. The matrix asserts the current answer, so that fixing the code fails this entry
    and the fix removes it."""

    statuses: dict[str, int]
    why: str


@dataclass(frozen=True)
class Rule:
    needs: tuple[str, ...] = ()  # permissions, all needed, checked in this order; the first missing is named
    kind: str = "permission"  # "permission", PUBLIC, AUTHENTICATED or "role"
    scope: str = "domain"  # "domain": held in the record's domain; "global": only a global holder qualifies
    hidden_by: str | None = None  # callers without this permission get 404: the record is hidden from them
    holder_of: str | None = None  # kind "role": only holders of this role in the domain may act
    deviation: Deviation | None = None
    note: str = ""


def P(*needs: str, hidden_by: str | None = None, scope: str = "domain", note: str = "",
      deviation: Deviation | None = None) -> Rule:
    return Rule(needs=needs, hidden_by=hidden_by, scope=scope, note=note, deviation=deviation)


def hidden(permission: str, *more: str, by: str | None = None) -> Rule:
    """Needs `permission`; a caller without `by` (default: the permission itself) gets 404."""
    return Rule(needs=(permission, *more), hidden_by=by or permission)


def holder(role: str, note: str) -> Rule:
    return Rule(kind="role", holder_of=role, note=note)


OPEN = Rule(kind=PUBLIC)
ANY = Rule(kind=AUTHENTICATED)


def AUTH(note: str) -> Rule:
    return Rule(kind=AUTHENTICATED, note=note)


V1 = "/api/v1"

# hidden(...) on a read by id: the API answers 404, not 403, for a record the caller may not see,
# so that a refusal does not confirm the record exists. Writes whose record is invisible to a
# caller are refused the same way (say so with `by`).
MATRIX: dict[tuple[str, ...], Rule] = {
    # -- operations ---------------------------------------------------------------------------------
    ("GET", "/api/health"): OPEN,
    ("GET", "/api/ready"): OPEN,
    # -- authentication and the caller's own account --------------------------------------------------
    ("POST", f"{V1}/auth/token"): OPEN,
    ("POST", f"{V1}/auth/logout"): AUTH("revokes the caller's own token"),
    ("GET", f"{V1}/me"): ANY,
    ("PATCH", f"{V1}/me"): AUTH("one's own profile"),
    ("POST", f"{V1}/me/password"): AUTH("one's own password"),
    ("GET", f"{V1}/permissions"): AUTH("the catalogue itself is no secret"),
    ("GET", f"{V1}/tokens"): AUTH("one's own tokens"),
    ("GET", f"{V1}/tokens", "another user's"): P("token.manage"),
    ("POST", f"{V1}/tokens"): AUTH("a token for oneself"),
    ("POST", f"{V1}/tokens", "for another user"): P("token.manage"),
    ("DELETE", f"{V1}/tokens/{{token_id}}"): AUTH("revoking one's own token"),
    # Another user's token is not even acknowledged to exist without token.manage.
    ("DELETE", f"{V1}/tokens/{{token_id}}", "another user's"): hidden("token.manage"),
    # -- domains ------------------------------------------------------------------------------------------
    # Every default role holds domain.view; a custom role without it is refused in test_identity_api.
    ("GET", f"{V1}/domains"): P("domain.view"),
    ("GET", f"{V1}/domains/{{domain_id}}"): hidden("domain.view"),
    ("POST", f"{V1}/domains"): P("domain.manage", scope="global"),
    ("PATCH", f"{V1}/domains/{{domain_id}}"): P("domain.manage"),
    ("DELETE", f"{V1}/domains/{{domain_id}}"): P("domain.manage", scope="global"),
    ("POST", f"{V1}/domains/{{domain_id}}/restore"): P("domain.manage", scope="global"),
    # -- users and roles ----------------------------------------------------------------------------------
    ("GET", f"{V1}/users"): P("user.view"),
    ("POST", f"{V1}/users"): P("user.create"),
    ("GET", f"{V1}/users/{{user_id}}"): hidden("user.view"),
    ("PATCH", f"{V1}/users/{{user_id}}"): P("user.edit"),
    ("DELETE", f"{V1}/users/{{user_id}}"): P("user.delete"),
    ("POST", f"{V1}/users/{{user_id}}/restore"): P("user.delete"),
    ("POST", f"{V1}/users/{{user_id}}/unlock"): P("user.edit"),
    ("POST", f"{V1}/users/{{user_id}}/password"): P("user.reset_password"),
    ("GET", f"{V1}/users/{{user_id}}/roles"): hidden("role.view"),
    ("POST", f"{V1}/users/{{user_id}}/roles"): P("role.assign"),
    ("DELETE", f"{V1}/users/{{user_id}}/roles/{{assignment_id}}"): P("role.assign"),
    ("GET", f"{V1}/roles"): P("role.view"),
    ("POST", f"{V1}/roles"): P("role.manage"),
    ("GET", f"{V1}/roles/{{role_id}}"): hidden("role.view"),
    ("PATCH", f"{V1}/roles/{{role_id}}"): P("role.manage"),
    ("DELETE", f"{V1}/roles/{{role_id}}"): P("role.manage"),
    ("POST", f"{V1}/roles/{{role_id}}/restore"): P("role.manage"),
    # -- service portfolio and costs -----------------------------------------------------------------------
    ("GET", f"{V1}/services"): P("service.view"),
    ("POST", f"{V1}/services"): P("service.create"),
    ("GET", f"{V1}/services/tree"): P("service.view"),
    ("GET", f"{V1}/services/{{service_id}}"): hidden("service.view"),
    ("PATCH", f"{V1}/services/{{service_id}}"): P("service.edit"),
    ("DELETE", f"{V1}/services/{{service_id}}"): P("service.delete"),
    ("POST", f"{V1}/services/{{service_id}}/restore"): P("service.delete"),
    ("GET", f"{V1}/services/{{service_id}}/tree"): hidden("service.view"),
    ("GET", f"{V1}/services/{{service_id}}/relationships"): hidden("service.view"),
    ("POST", f"{V1}/services/{{service_id}}/relationships"): P("service.edit"),
    ("DELETE", f"{V1}/services/{{service_id}}/relationships/{{relationship_id}}"): P("service.edit"),
    ("GET", f"{V1}/services/{{service_id}}/stakeholders"): hidden("service.view"),
    ("POST", f"{V1}/services/{{service_id}}/stakeholders"): P("service.edit"),
    ("DELETE", f"{V1}/services/{{service_id}}/stakeholders/{{stakeholder_id}}"): P("service.edit"),
    ("GET", f"{V1}/reports/ppt-balance"): P("cost.view"),
    ("GET", f"{V1}/cost-entries"): P("cost.view"),
    ("POST", f"{V1}/cost-entries"): P("cost.manage"),
    ("POST", f"{V1}/cost-entries/bulk"): P("cost.manage"),
    # A cost entry is invisible without cost.view: writes by such a caller answer 404, not 403.
    ("GET", f"{V1}/cost-entries/{{entry_id}}"): hidden("cost.view"),
    ("PATCH", f"{V1}/cost-entries/{{entry_id}}"): hidden("cost.manage", by="cost.view"),
    ("DELETE", f"{V1}/cost-entries/{{entry_id}}"): hidden("cost.manage", by="cost.view"),
    ("POST", f"{V1}/cost-entries/{{entry_id}}/restore"): hidden("cost.manage", by="cost.view"),
    ("GET", f"{V1}/reports/costs"): P("cost.view"),
    # -- CMDB ------------------------------------------------------------------------------------------------
    # CI classes are the shared vocabulary of the CMDB (every CI form needs them): readable by any user.
    ("GET", f"{V1}/ci-classes"): AUTH("reference data"),
    ("GET", f"{V1}/ci-classes/{{class_id}}"): AUTH("reference data"),
    ("POST", f"{V1}/ci-classes"): P("ci_class.manage"),
    ("PATCH", f"{V1}/ci-classes/{{class_id}}"): P("ci_class.manage"),
    ("DELETE", f"{V1}/ci-classes/{{class_id}}"): P("ci_class.manage"),
    ("POST", f"{V1}/ci-classes/{{class_id}}/restore"): P("ci_class.manage"),
    ("GET", f"{V1}/cis"): P("ci.view"),
    ("POST", f"{V1}/cis"): P("ci.create"),
    ("GET", f"{V1}/cis/{{ci_id}}"): hidden("ci.view"),
    ("PATCH", f"{V1}/cis/{{ci_id}}"): P("ci.edit"),
    ("DELETE", f"{V1}/cis/{{ci_id}}"): P("ci.delete"),
    ("POST", f"{V1}/cis/{{ci_id}}/restore"): P("ci.delete"),
    ("GET", f"{V1}/cis/{{ci_id}}/impact"): hidden("ci.view"),
    ("GET", f"{V1}/cis/{{ci_id}}/dependencies"): hidden("ci.view"),
    ("GET", f"{V1}/ci-relationships"): P("ci.view"),
    ("POST", f"{V1}/ci-relationships"): P("ci.edit"),
    ("DELETE", f"{V1}/ci-relationships/{{relationship_id}}"): P("ci.edit"),
    ("GET", f"{V1}/cmdb/health"): P("ci.view"),
    ("POST", f"{V1}/cmdb/import"): P("cmdb.import"),
    # -- incidents, problems, SLA ----------------------------------------------------------------------------
    ("GET", f"{V1}/incidents"): P("incident.view"),
    ("POST", f"{V1}/incidents"): P("incident.create"),
    ("POST", f"{V1}/incidents", "assigned"): P("incident.create", "incident.assign"),
    ("POST", f"{V1}/incidents/bulk"): P("incident.create"),
    ("GET", f"{V1}/incidents/sla-at-risk"): P("incident.view"),
    ("GET", f"{V1}/incidents/{{incident_id}}"): hidden("incident.view"),
    ("PATCH", f"{V1}/incidents/{{incident_id}}"): P("incident.edit"),
    ("PATCH", f"{V1}/incidents/{{incident_id}}", "priority override"): P("incident.edit",
                                                                         "incident.override_priority"),
    ("DELETE", f"{V1}/incidents/{{incident_id}}"): P("incident.delete"),
    ("POST", f"{V1}/incidents/{{incident_id}}/restore"): P("incident.delete"),
    ("GET", f"{V1}/problems"): P("problem.view"),
    ("POST", f"{V1}/problems"): P("problem.manage"),
    ("GET", f"{V1}/problems/{{problem_id}}"): hidden("problem.view"),
    ("PATCH", f"{V1}/problems/{{problem_id}}"): P("problem.manage"),
    ("DELETE", f"{V1}/problems/{{problem_id}}"): P("problem.delete"),
    ("POST", f"{V1}/problems/{{problem_id}}/restore"): P("problem.delete"),
    ("GET", f"{V1}/problems/{{problem_id}}/incidents"): hidden("problem.view"),
    ("POST", f"{V1}/problems/{{problem_id}}/incidents"): P("problem.manage"),
    ("DELETE", f"{V1}/problems/{{problem_id}}/incidents/{{incident_id}}"): P("problem.manage"),
    # SLA policies and the matrix are read by whoever sees incidents (or keeps them: sla.manage).
    ("GET", f"{V1}/sla-policies"): P("incident.view"),
    ("POST", f"{V1}/sla-policies"): P("sla.manage"),
    ("GET", f"{V1}/sla-policies/{{policy_id}}"): hidden("incident.view"),
    ("PATCH", f"{V1}/sla-policies/{{policy_id}}"): P("sla.manage"),
    ("DELETE", f"{V1}/sla-policies/{{policy_id}}"): P("sla.manage"),
    ("POST", f"{V1}/sla-policies/{{policy_id}}/restore"): P("sla.manage"),
    ("GET", f"{V1}/priority-matrix"): P("incident.view"),
    ("PUT", f"{V1}/priority-matrix"): P("sla.manage"),
    ("DELETE", f"{V1}/priority-matrix"): P("sla.manage"),
    # -- changes ---------------------------------------------------------------------------------------------
    ("GET", f"{V1}/changes"): P("change.view"),
    ("POST", f"{V1}/changes"): P("change.create"),
    ("GET", f"{V1}/changes/calendar"): P("change.view"),
    ("GET", f"{V1}/changes/{{change_id}}"): hidden("change.view"),
    # Another user's change (the requester may edit their own draft with change.create alone).
    ("PATCH", f"{V1}/changes/{{change_id}}"): P("change.edit"),
    ("PATCH", f"{V1}/changes/{{change_id}}", "review"): P("change.approve"),
    # A PATCH whose values all equal the current ones still needs the right to make it.
    ("PATCH", f"{V1}/changes/{{change_id}}", "unchanged values"): P("change.edit"),
    ("DELETE", f"{V1}/changes/{{change_id}}"): P("change.delete"),
    ("POST", f"{V1}/changes/{{change_id}}/restore"): P("change.delete"),
    ("GET", f"{V1}/changes/{{change_id}}/conflicts"): hidden("change.view"),
    ("GET", f"{V1}/changes/{{change_id}}/risk"): hidden("change.view"),
    ("GET", f"{V1}/changes/{{change_id}}/incidents"): hidden("change.view"),
    ("POST", f"{V1}/changes/{{change_id}}/incidents"): P("change.edit"),
    ("DELETE", f"{V1}/changes/{{change_id}}/incidents/{{incident_id}}"): P("change.edit"),
    # Standard-change templates and change windows are kept by change managers (change.approve).
    ("GET", f"{V1}/change-templates"): P("change.view"),
    ("POST", f"{V1}/change-templates"): P("change.approve"),
    ("GET", f"{V1}/change-templates/{{template_id}}"): hidden("change.view"),
    ("PATCH", f"{V1}/change-templates/{{template_id}}"): P("change.approve"),
    ("DELETE", f"{V1}/change-templates/{{template_id}}"): P("change.approve"),
    ("POST", f"{V1}/change-templates/{{template_id}}/restore"): P("change.approve"),
    ("GET", f"{V1}/change-windows"): P("change.view"),
    ("POST", f"{V1}/change-windows"): P("change.approve"),
    ("GET", f"{V1}/change-windows/{{window_id}}"): hidden("change.view"),
    ("PATCH", f"{V1}/change-windows/{{window_id}}"): P("change.approve"),
    ("DELETE", f"{V1}/change-windows/{{window_id}}"): P("change.approve"),
    ("POST", f"{V1}/change-windows/{{window_id}}/restore"): P("change.approve"),
    # -- workflow, approvals, notifications, webhooks -----------------------------------------------------------
    ("GET", f"{V1}/workflow-definitions"): P("workflow.view"),
    ("POST", f"{V1}/workflow-definitions"): P("workflow.manage"),
    ("GET", f"{V1}/workflow-definitions/{{definition_id}}"): hidden("workflow.view"),
    ("PATCH", f"{V1}/workflow-definitions/{{definition_id}}"): P("workflow.manage"),
    ("DELETE", f"{V1}/workflow-definitions/{{definition_id}}"): P("workflow.manage"),
    ("POST", f"{V1}/workflow-definitions/{{definition_id}}/restore"): P("workflow.manage"),
    ("GET", f"{V1}/workflow-definitions/{{definition_id}}/versions/{{version}}"): hidden("workflow.view"),
    ("GET", f"{V1}/workflow-instances"): P("workflow.view"),
    ("POST", f"{V1}/workflow-instances"): P("workflow.start"),
    ("GET", f"{V1}/workflow-instances/{{instance_id}}"): hidden("workflow.view"),
    ("POST", f"{V1}/workflow-instances/{{instance_id}}/cancel"): P("workflow.manage"),
    ("GET", f"{V1}/approvals"): P("workflow.view"),
    # ... or a part in it: its requester or a holder of its approver role (every default role holds
    # workflow.view; the other ways are shown in test_workflow).
    ("GET", f"{V1}/approvals/{{approval_id}}"): hidden("workflow.view"),
    # Deciding is for holders of the step's approver role (here change_manager), not a permission:
    # even a platform administrator may not approve unless they hold that role in the domain.
    ("POST", f"{V1}/approvals/{{approval_id}}/approve"): holder("change_manager", "the step's approver_role"),
    ("POST", f"{V1}/approvals/{{approval_id}}/reject"): holder("change_manager", "the step's approver_role"),
    ("GET", f"{V1}/workflow-tasks"): P("workflow.view"),
    ("POST", f"{V1}/workflow-tasks/{{task_id}}/complete"): holder("service_desk_agent",
                                                                   "the task's assignee_role"),
    ("GET", f"{V1}/notifications"): AUTH("one's own notifications"),
    ("POST", f"{V1}/notifications/read-all"): AUTH("one's own notifications"),
    ("POST", f"{V1}/notifications/{{notification_id}}/read"): AUTH("one's own notification"),
    ("GET", f"{V1}/email-messages"): P("workflow.manage"),
    ("GET", f"{V1}/webhooks"): P("webhook.manage"),
    ("POST", f"{V1}/webhooks"): P("webhook.manage"),
    # A webhook (its URL, its secret's existence, its deliveries) is invisible without webhook.manage.
    ("GET", f"{V1}/webhooks/{{webhook_id}}"): hidden("webhook.manage"),
    ("PATCH", f"{V1}/webhooks/{{webhook_id}}"): hidden("webhook.manage"),
    ("DELETE", f"{V1}/webhooks/{{webhook_id}}"): hidden("webhook.manage"),
    ("POST", f"{V1}/webhooks/{{webhook_id}}/restore"): hidden("webhook.manage"),
    ("GET", f"{V1}/webhooks/{{webhook_id}}/deliveries"): hidden("webhook.manage"),
    # -- knowledge and search -----------------------------------------------------------------------------------
    ("GET", f"{V1}/articles"): P("knowledge.view"),
    ("POST", f"{V1}/articles"): P("knowledge.write"),
    ("GET", f"{V1}/articles/suggest"): P("knowledge.view"),
    ("POST", f"{V1}/articles/known-errors"): P("knowledge.write"),
    ("GET", f"{V1}/articles/{{article_id}}"): hidden("knowledge.view"),
    # An article for agents only is hidden from readers without knowledge_internal.view.
    ("GET", f"{V1}/articles/{{article_id}}", "agents only"): hidden("knowledge_internal.view"),
    # Editing is for writers or reviewers; the refusal names knowledge.write.
    ("PATCH", f"{V1}/articles/{{article_id}}"): P("knowledge.write"),
    # A published article is deleted (and restored) by reviewers only.
    ("DELETE", f"{V1}/articles/{{article_id}}"): P("knowledge.review"),
    # Drafts, versions in review and deleted articles are seen by writers and reviewers only: to
    # everyone else they do not exist (404). Every default role with knowledge.review also writes.
    ("POST", f"{V1}/articles/{{article_id}}/restore"): hidden("knowledge.review", by="knowledge.write"),
    ("POST", f"{V1}/articles/{{article_id}}/submit"): hidden("knowledge.write"),
    ("POST", f"{V1}/articles/{{article_id}}/withdraw"): hidden("knowledge.write"),
    ("POST", f"{V1}/articles/{{article_id}}/approve"): hidden("knowledge.review", by="knowledge.write"),
    ("POST", f"{V1}/articles/{{article_id}}/reject"): hidden("knowledge.review", by="knowledge.write"),
    ("POST", f"{V1}/articles/{{article_id}}/retire"): P("knowledge.review"),
    ("POST", f"{V1}/articles/{{article_id}}/discard-draft"): P("knowledge.write"),
    ("GET", f"{V1}/articles/{{article_id}}/versions"): hidden("knowledge.view"),
    ("GET", f"{V1}/articles/{{article_id}}/versions/{{number}}"): hidden("knowledge.view"),
    ("GET", f"{V1}/articles/{{article_id}}/versions/{{number}}/diff"): hidden("knowledge.view"),
    ("POST", f"{V1}/articles/{{article_id}}/links"): P("knowledge.write"),
    ("DELETE", f"{V1}/articles/{{article_id}}/links/{{link_id}}"): P("knowledge.write"),
    ("PUT", f"{V1}/articles/{{article_id}}/feedback"): P("knowledge.view"),
    ("GET", f"{V1}/articles/{{article_id}}/feedback"): hidden("knowledge.view"),
    ("GET", f"{V1}/articles/{{article_id}}/solved-incidents"): hidden("knowledge.view"),
    # Recording that an article solved an incident is work on the incident.
    ("POST", f"{V1}/articles/{{article_id}}/solved-incidents"): P("incident.edit"),
    ("DELETE", f"{V1}/articles/{{article_id}}/solved-incidents/{{incident_id}}"): P("incident.edit"),
    ("GET", f"{V1}/search/language"): AUTH("which language a domain's search uses"),
    ("PUT", f"{V1}/search/language"): P("search.manage"),
    # One search over every kind of record: each kind filtered by its own view permission.
    ("GET", f"{V1}/search"): AUTH("results filtered per kind"),
    # -- audit ---------------------------------------------------------------------------------------------------
    ("GET", f"{V1}/audit-log"): P("audit.view"),
    # A record's history is for whoever may see the record: one variant per resource that keeps one.
    ("GET", f"{V1}/{{resource}}/{{record_id}}/history"): hidden("incident.view"),
    ("GET", f"{V1}/{{resource}}/{{record_id}}/history", "services"): hidden("service.view"),
    ("GET", f"{V1}/{{resource}}/{{record_id}}/history", "changes"): hidden("change.view"),
    ("GET", f"{V1}/{{resource}}/{{record_id}}/history", "change-templates"): hidden("change.view"),
    ("GET", f"{V1}/{{resource}}/{{record_id}}/history", "change-windows"): hidden("change.view"),
    ("GET", f"{V1}/{{resource}}/{{record_id}}/history", "problems"): hidden("problem.view"),
    ("GET", f"{V1}/{{resource}}/{{record_id}}/history", "sla-policies"): hidden("incident.view"),
    ("GET", f"{V1}/{{resource}}/{{record_id}}/history", "cost-entries"): hidden("cost.view"),
    ("GET", f"{V1}/{{resource}}/{{record_id}}/history", "cis"): hidden("ci.view"),
    ("GET", f"{V1}/{{resource}}/{{record_id}}/history", "ci-classes"): AUTH("reference data"),
    ("GET", f"{V1}/{{resource}}/{{record_id}}/history", "users"): hidden("user.view"),
    ("GET", f"{V1}/{{resource}}/{{record_id}}/history", "roles"): hidden("role.view"),
    ("GET", f"{V1}/{{resource}}/{{record_id}}/history", "domains"): hidden("domain.view"),
    ("GET", f"{V1}/{{resource}}/{{record_id}}/history", "workflow-definitions"): hidden("workflow.view"),
    ("GET", f"{V1}/{{resource}}/{{record_id}}/history", "workflow-instances"): hidden("workflow.view"),
    ("GET", f"{V1}/{{resource}}/{{record_id}}/history", "webhooks"): hidden("webhook.manage"),
    ("GET", f"{V1}/{{resource}}/{{record_id}}/history", "articles"): hidden("knowledge.view"),
    # -- ServiceNow Table API (here on its incident table; each table maps to its module's rules) ----------------
    ("GET", "/api/now/table/{table_name}"): P("incident.view"),
    ("POST", "/api/now/table/{table_name}"): P("incident.create"),
    ("GET", "/api/now/table/{table_name}/{sys_id}"): hidden("incident.view"),
    ("PUT", "/api/now/table/{table_name}/{sys_id}"): P("incident.edit"),
    ("PATCH", "/api/now/table/{table_name}/{sys_id}"): P("incident.edit"),
    ("DELETE", "/api/now/table/{table_name}/{sys_id}"): P("incident.delete"),
    # The same through the Table API (it calls changes.service.update_change).
    ("PATCH", "/api/now/table/{table_name}/{sys_id}", "change_request, unchanged values"): P("change.edit"),
    # Creating through the other writable tables: each refused as its module refuses it.
    ("POST", "/api/now/table/{table_name}", "problem"): P("problem.manage"),
    ("POST", "/api/now/table/{table_name}", "change_request"): P("change.create"),
    ("POST", "/api/now/table/{table_name}", "cmdb_ci_server"): P("ci.create"),
    ("POST", "/api/now/table/{table_name}", "cmdb_rel_ci"): P("ci.edit"),
    ("POST", "/api/now/table/{table_name}", "sys_user"): P("user.create"),
    ("POST", "/api/now/table/{table_name}", "kb_knowledge"): P("knowledge.write"),
}

# Routes under /api/ that are not operations of the API: the schema and its viewer (public by
# design), and ServiceNow's catch-all answer for URIs that are no resource (no data, no auth).
NOT_OPERATIONS = {("GET", "/api/openapi.json"), ("HEAD", "/api/openapi.json"), ("GET", "/api/docs"),
                  ("HEAD", "/api/docs")}
CATCH_ALL = "/api/now/{rest:path}"


# ---- the callers -----------------------------------------------------------------------------------------

ROOT = "platform_admin (global)"
CALLERS = [*DEFAULT_ROLES, ROOT]


@dataclass(frozen=True)
class Caller:
    name: str
    person: Person
    permissions: frozenset[str]
    is_global: bool

    @property
    def role(self) -> str:
        return "platform_admin" if self.is_global else self.name


@dataclass(frozen=True)
class Expected:
    status: str  # "allow", "403" or "404"
    permission: str | None = None


def expected(rule: Rule, caller: Caller) -> Expected:
    if rule.deviation is not None and caller.name in rule.deviation.statuses:
        status = rule.deviation.statuses[caller.name]
        return Expected("allow" if status < 300 else str(status))
    if rule.kind in (PUBLIC, AUTHENTICATED):
        return Expected("allow")
    if rule.kind == "role":
        return Expected("allow" if caller.role == rule.holder_of and not caller.is_global else "403")
    if rule.scope == "global" and not caller.is_global:
        return Expected("403", rule.needs[0])
    if rule.hidden_by is not None and rule.hidden_by not in caller.permissions:
        return Expected("404")
    missing = [p for p in rule.needs if p not in caller.permissions]
    return Expected("403", missing[0]) if missing else Expected("allow")


# ---- the records the requests point at ---------------------------------------------------------------------

def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


PLANS = {"implementation_plan": "Apply the runbook", "rollback_plan": "Restore the snapshot",
         "test_plan": "Log in through the portal"}
MATRIX_BODY = {"matrix": {"high": {"high": "critical", "medium": "high", "low": "medium"},
                          "medium": {"high": "high", "medium": "medium", "low": "low"},
                          "low": {"high": "medium", "medium": "low", "low": "low"}}}


def strong_password() -> str:
    return "Quiet-" + secrets.token_urlsafe(12) + "-harbour"


@dataclass
class Req:
    """One call: path parameters, body, query, extra headers, and optionally someone else to call as
    (the caller's own fresh twin, for calls that spend the caller's own credentials)."""

    path: dict[str, Any] = field(default_factory=dict)
    json: Any = None
    params: dict[str, Any] | None = None
    data: dict[str, Any] | None = None
    files: dict[str, Any] | None = None
    headers: dict[str, str] = field(default_factory=dict)
    as_person: Person | None = None


class Records:
    """The test domain, its callers, and one record of each kind, made by the global administrator
    through the API; plus factories for fresh targets."""

    def __init__(self, world: World) -> None:
        self.world = world
        self.client: StrictClient = world.client
        self.domain = world.domain()
        self.root = world.admin()
        self.reviewer = world.admin()  # a second global administrator: reviews what root writes
        self.callers = {name: Caller(name, world.user(self.domain, name), frozenset(perms), False)
                        for name, (_, perms) in DEFAULT_ROLES.items()}
        self.callers[ROOT] = Caller(ROOT, self.root, frozenset(PERMISSIONS), True)
        self.target = world.user(self.domain)  # a user without roles, for user administration
        self.owner = self.callers["service_owner"].person  # a person allowed in the domain
        self.domain_id = self.get(f"{V1}/domains", params={"q": self.domain})["items"][0]["id"]
        self.service = self.new_service()
        self.ci = self.new_ci()
        self.incident = self.new_incident()
        self.problem = self.new("problems")
        self.change = self.new("changes")
        self.cost = self.new("cost-entries")
        self.ci_class = self.new("ci-classes")
        self.role = self.new("roles")
        self.failed_change = self.failed()  # before the change window, which it would fall outside of
        self.template = self.new("change-templates")
        self.window = self.new("change-windows")
        self.definition = self.new("workflow-definitions")
        self.webhook = self.new("webhooks")
        self.policy = self.new_policy("low")
        self.article = self.published_article()
        self.internal = self.published_article(audience="agents")
        self.revised = self.published_article()
        self.revise(self.revised)
        self.instance = self.start(self.definition["id"])
        # Everyone gets a notification of their own (a workflow notifies them all).
        notify = self.post(f"{V1}/workflow-definitions", {
            "name": unique("notify-"), "domain": self.domain,
            "steps": [{"type": "notification", "subject": "Hello", "body": "Matrix",
                       "recipients": [f"user:{c.person.id}" for c in self.callers.values()]}]})
        self.start(notify["id"])

    # -- plain calls as root ----------------------------------------------------------------------------

    def get(self, url: str, who: Person | None = None, **kw: Any) -> Any:
        response = self.client.get(url, headers=(who or self.root).headers, **kw)
        assert response.status_code == 200, (url, response.text)
        return response.json()

    def post(self, url: str, body: Any = None, who: Person | None = None, **kw: Any) -> Any:
        response = self.client.post(url, json=body, headers=(who or self.root).headers, **kw)
        assert response.status_code in (200, 201, 204), (url, response.text)
        return response.json() if response.content else None

    def patch(self, url: str, body: dict[str, Any], who: Person | None = None) -> Any:
        who = who or self.root
        response = self.client.patch(url, json=body, headers={**who.headers, **self.if_match(url)})
        assert response.status_code == 200, (url, response.text)
        return response.json()

    def delete(self, url: str) -> None:
        response = self.client.delete(url, headers={**self.root.headers, **self.if_match(url)})
        assert response.status_code in (200, 204), (url, response.text)

    def if_match(self, url: str) -> dict[str, str]:
        """If-Match with the version the record is at now (read as root)."""
        response = self.client.get(url, headers=self.root.headers)
        if response.status_code == 200 and isinstance(response.json(), dict) and "version" in response.json():
            return {"If-Match": f'"{response.json()["version"]}"'}
        return {}

    # -- fresh records --------------------------------------------------------------------------------------

    def body(self, kind: str) -> dict[str, Any]:
        d = self.domain
        later = datetime.now(UTC).replace(microsecond=0) + timedelta(days=30)
        if kind == "cost-entries":
            return {"service_id": self.service["id"], "category": "people", "amount": "10.00",
                    "period_start": "2026-01-01", "period_end": "2026-01-31"}
        return {
            "users": {"email": f"{unique('m')}@example.org", "name": "Matrix Target", "domain": d},
            "roles": {"name": unique("matrix_role_"), "domain": d, "permissions": ["incident.view"]},
            "services": {"domain": d, "name": unique("svc-"), "type": "business", "owner_id": str(self.owner.id),
                         "status": "active"},
            "cis": {"domain": d, "name": unique("ci-"), "ci_class": "application", "environment": "production",
                    "owner_id": str(self.owner.id), "attributes": {}},
            "incidents": {"domain": d, "short_description": unique("Portal down "), "impact": "medium",
                          "urgency": "medium"},
            "problems": {"domain": d, "short_description": unique("Recurring "), "priority": "high",
                         "workaround": "Restart the pool"},
            "changes": {"domain": d, "short_description": unique("Patch "), "type": "normal", **PLANS,
                        "planned_start": iso(later), "planned_end": iso(later + timedelta(hours=2))},
            "ci-classes": {"name": unique("matrix_"), "label": "Matrix", "domain": d,
                           "attribute_schema": {"type": "object", "properties": {}}},
            "change-templates": {"domain": d, "name": unique("tpl-"), "short_description": "Renew a certificate",
                                 **PLANS},
            "change-windows": {"domain": d, "name": unique("win-"), "kind": "blackout",
                               "start_at": "2030-01-06T01:00:00Z", "end_at": "2030-01-06T05:00:00Z"},
            "workflow-definitions": {"name": unique("wf-"), "domain": d, "steps": [
                {"type": "approval", "approver_role": "change_manager"},
                {"type": "task", "assignee_role": "service_desk_agent", "instructions": "Do it"}]},
            "webhooks": {"name": unique("hook-"), "domain": d, "url": "https://hooks.example.org/gaas",
                         "event_types": ["incident.*"]},
            "articles": {"domain": d, "title": unique("How to fix "), "body": "Restart the service."},
        }[kind]

    def new(self, kind: str, **extra: Any) -> dict[str, Any]:
        return self.post(f"{V1}/{kind}", {**self.body(kind), **extra})

    def deleted(self, kind: str, **extra: Any) -> dict[str, Any]:
        record = self.new(kind, **extra)
        self.delete(f"{V1}/{kind}/{record['id']}")
        return record

    def new_service(self) -> dict[str, Any]:
        return self.new("services")

    def new_ci(self) -> dict[str, Any]:
        return self.new("cis")

    def new_incident(self) -> dict[str, Any]:
        return self.new("incidents")

    def new_user(self) -> dict[str, Any]:
        return self.new("users")

    def new_domain(self) -> dict[str, Any]:
        return self.post(f"{V1}/domains", {"code": unique("x"), "name": "Matrix spare"})

    def clear_policies(self, priority: str) -> None:
        page = self.get(f"{V1}/sla-policies", params={"domain": self.domain, "priority": priority})
        for policy in page["items"]:
            self.delete(f"{V1}/sla-policies/{policy['id']}")

    def new_policy(self, priority: str) -> dict[str, Any]:
        self.clear_policies(priority)
        return self.post(f"{V1}/sla-policies", {"name": unique("sla-"), "domain": self.domain,
                                                "priority": priority, "resolution_minutes": 600})

    def start(self, definition_id: str) -> dict[str, Any]:
        return self.post(f"{V1}/workflow-instances", {"definition_id": definition_id, "domain": self.domain})

    def approval(self) -> str:
        return self.start(self.definition["id"])["approvals"][0]["id"]

    def task(self) -> str:
        instance = self.start(self.definition["id"])
        self.post(f"{V1}/approvals/{instance['approvals'][0]['id']}/approve", {},
                  who=self.callers["change_manager"].person)
        detail = self.get(f"{V1}/workflow-instances/{instance['id']}")
        return next(s["id"] for s in detail["timeline"] if s["step_type"] == "task" and s["status"] == "active")

    def article_in(self, state: str, author: Person | None = None, **extra: Any) -> dict[str, Any]:
        """An article written by `author` (root), in `state`: draft, review or published."""
        author = author or self.root
        reviewer = self.reviewer if author.id == self.root.id else self.root
        article = self.post(f"{V1}/articles", {**self.body("articles"), **extra}, who=author)
        url = f"{V1}/articles/{article['id']}"
        if state in ("review", "published"):
            self.submit(url, author)
        if state == "published":
            self.client.post(f"{url}/approve", json={}, headers={**reviewer.headers, **self.if_match(url)})
        return self.get(url, params={"count_view": "false"})

    def submit(self, url: str, author: Person) -> dict[str, Any]:
        response = self.client.post(f"{url}/submit", json={}, headers={**author.headers, **self.if_match(url)})
        assert response.status_code == 200, response.text
        return response.json()

    def published_article(self, **extra: Any) -> dict[str, Any]:
        return self.article_in("published", **extra)

    def revise(self, article: dict[str, Any]) -> None:
        """A second published version (written by root, reviewed by the second administrator)."""
        url = f"{V1}/articles/{article['id']}"
        self.patch(url, {"body": "Restart the service, then clear the cache."})
        self.submit(url, self.root)
        response = self.client.post(f"{url}/approve", json={}, headers={**self.reviewer.headers,
                                                                         **self.if_match(url)})
        assert response.status_code == 200, response.text

    def with_draft(self) -> dict[str, Any]:
        article = self.published_article()
        self.patch(f"{V1}/articles/{article['id']}", {"body": "A draft of a second version."})
        return article

    def failed(self) -> dict[str, Any]:
        """A normal change taken through its lifecycle to implemented, unsuccessfully."""
        change = self.new("changes")
        url = f"{V1}/changes/{change['id']}"
        for status in ("submitted", "under_review", "approved", "scheduled", "implementing"):
            self.patch(url, {"status": status})
        return self.patch(url, {"status": "implemented", "success": False,
                                "implementation_notes": "Rolled back"})

    def submitted_change(self) -> dict[str, Any]:
        change = self.new("changes")
        return self.patch(f"{V1}/changes/{change['id']}", {"status": "submitted"})

    def version_headers(self, url: str) -> dict[str, str]:
        return self.if_match(url)


# ---- the requests ---------------------------------------------------------------------------------------

Builder = Callable[[Records, Caller], Req]


def versioned(url_of: Callable[[Records], str], path: Callable[[Records], dict[str, Any]],
              changes: Callable[[str], dict[str, Any]]) -> Builder:
    """A write that presents the record's current version in If-Match, with values new to the
    record (`changes` of a fresh token): a PATCH that changes nothing may be a no-op."""
    def build(r: Records, c: Caller) -> Req:
        return Req(path=path(r), json=changes(secrets.token_hex(3)), headers=r.if_match(url_of(r)))
    return build


def fresh(kind: str, key: str, body: Any = None, *, deleted: bool = False) -> Builder:
    """A write on a record made for this call alone (deleted first for a restore)."""
    def build(r: Records, c: Caller) -> Req:
        record = r.deleted(kind) if deleted else r.new(kind)
        return Req(path={key: record["id"]}, json=body, headers=r.if_match(f"{V1}/{kind}/{record['id']}"))
    return build


def on(key: str, value: Callable[[Records], Any], **kw: Any) -> Builder:
    def build(r: Records, c: Caller) -> Req:
        return Req(path={key: value(r)}, **kw)
    return build


def plain(**kw: Any) -> Builder:
    return lambda r, c: Req(**kw)


def params(make: Callable[[Records], dict[str, Any]]) -> Builder:
    return lambda r, c: Req(params=make(r))


def body(make: Callable[[Records], Any]) -> Builder:
    return lambda r, c: Req(json=make(r))


def logout(r: Records, c: Caller) -> Req:
    login = r.client.post(f"{V1}/auth/token", data={"username": c.person.email, "password": PASSWORD})
    assert login.status_code == 200, login.text
    return Req(headers={"Authorization": f"Bearer {login.json()['access_token']}"})


def change_own_password(r: Records, c: Caller) -> Req:
    twin = r.world.admin() if c.is_global else r.world.user(r.domain, c.name)
    return Req(json={"current_password": PASSWORD, "new_password": strong_password()}, as_person=twin)


def patch_me(r: Records, c: Caller) -> Req:
    version = r.get(f"{V1}/me", who=c.person)["version"]
    return Req(json={"phone": "+33 1 23 45 67 89", "version": version})


def own_token(r: Records, c: Caller) -> Req:
    token = r.post(f"{V1}/tokens", {"name": "spare"}, who=c.person)
    return Req(path={"token_id": token["id"]})


def others_token(r: Records, c: Caller) -> Req:
    token = r.post(f"{V1}/tokens", {"name": "spare"}, params={"user_id": str(r.target.id)})
    return Req(path={"token_id": token["id"]})


def domain_write(restore: bool) -> Builder:
    """Root gets a spare domain of its own to delete or restore; a domain user aims at the test
    domain (a spare domain would be invisible to them, a 404 that would prove nothing)."""
    def build(r: Records, c: Caller) -> Req:
        if not c.is_global:
            return Req(path={"domain_id": r.domain_id})
        spare = r.new_domain()
        if restore:
            r.delete(f"{V1}/domains/{spare['id']}")
        return Req(path={"domain_id": spare["id"]}, headers=r.if_match(f"{V1}/domains/{spare['id']}"))
    return build


def assign_role(r: Records, c: Caller) -> Req:
    user = r.new_user()
    return Req(path={"user_id": user["id"]}, json={"role_id": r.role["id"], "scope_type": "domain",
                                                  "scope_id": r.domain_id})


def unassign_role(r: Records, c: Caller) -> Req:
    user = r.new_user()
    assignment = r.post(f"{V1}/users/{user['id']}/roles", {"role_id": r.role["id"], "scope_type": "domain",
                                                           "scope_id": r.domain_id})
    return Req(path={"user_id": user["id"], "assignment_id": assignment["id"]})


def service_relationship(r: Records, c: Caller) -> Req:
    return Req(path={"service_id": r.service["id"]},
               json={"target_service_id": r.new_service()["id"], "relationship_type": "depends_on"})


def remove_service_relationship(r: Records, c: Caller) -> Req:
    link = r.post(f"{V1}/services/{r.service['id']}/relationships",
                  {"target_service_id": r.new_service()["id"], "relationship_type": "depends_on"})
    return Req(path={"service_id": r.service["id"], "relationship_id": link["id"]})


def stakeholder(r: Records, c: Caller) -> Req:
    return Req(path={"service_id": r.new_service()["id"]}, json={"user_id": str(r.owner.id), "role": "stakeholder"})


def remove_stakeholder(r: Records, c: Caller) -> Req:
    service = r.new_service()
    row = r.post(f"{V1}/services/{service['id']}/stakeholders", {"user_id": str(r.owner.id), "role": "stakeholder"})
    return Req(path={"service_id": service["id"], "stakeholder_id": row["id"]})


def ci_relationship(r: Records, c: Caller) -> Req:
    return Req(json={"source_ci_id": r.new_ci()["id"], "target_ci_id": r.ci["id"], "relationship_type": "runs_on"})


def remove_ci_relationship(r: Records, c: Caller) -> Req:
    link = r.post(f"{V1}/ci-relationships", {"source_ci_id": r.new_ci()["id"], "target_ci_id": r.ci["id"],
                                             "relationship_type": "runs_on"})
    return Req(path={"relationship_id": link["id"]})


def cmdb_import(r: Records, c: Caller) -> Req:
    name = unique("imported-")
    row = {"ci_class": "server", "name": name, "environment": "production",
           "attributes": {"hostname": name, "serial_number": name}}
    return Req(params={"source": "matrix-scan", "domain": r.domain},
               files={"file": ("rows.ndjson", json.dumps(row).encode())})


def link_problem_incident(r: Records, c: Caller) -> Req:
    return Req(path={"problem_id": r.problem["id"]}, json={"incident_id": r.new_incident()["id"]})


def unlink_problem_incident(r: Records, c: Caller) -> Req:
    incident = r.new_incident()
    r.post(f"{V1}/problems/{r.problem['id']}/incidents", {"incident_id": incident["id"]})
    return Req(path={"problem_id": r.problem["id"], "incident_id": incident["id"]})


def link_caused_incident(r: Records, c: Caller) -> Req:
    return Req(path={"change_id": r.failed_change["id"]}, json={"incident_id": r.new_incident()["id"]})


def unlink_caused_incident(r: Records, c: Caller) -> Req:
    incident = r.new_incident()
    r.post(f"{V1}/changes/{r.failed_change['id']}/incidents", {"incident_id": incident["id"]})
    return Req(path={"change_id": r.failed_change["id"], "incident_id": incident["id"]})


def review_change(r: Records, c: Caller) -> Req:
    change = r.submitted_change()
    return Req(path={"change_id": change["id"]}, json={"status": "under_review", "version": change["version"]})


def new_policy(r: Records, c: Caller) -> Req:
    r.clear_policies("critical")
    return Req(json={"name": unique("sla-"), "domain": r.domain, "priority": "critical", "resolution_minutes": 60})


def policy_write(restore: bool) -> Builder:
    def build(r: Records, c: Caller) -> Req:
        policy = r.new_policy("high")
        url = f"{V1}/sla-policies/{policy['id']}"
        if restore:
            r.delete(url)
        return Req(path={"policy_id": policy["id"]}, headers=r.if_match(url))
    return build


def put_matrix(r: Records, c: Caller) -> Req:
    current = r.get(f"{V1}/priority-matrix", params={"domain": r.domain})
    version = {} if current["inherited"] else {"If-Match": f'"{current["version"]}"'}
    return Req(params={"domain": r.domain}, json=MATRIX_BODY, headers=version)


def reset_matrix(r: Records, c: Caller) -> Req:
    current = r.get(f"{V1}/priority-matrix", params={"domain": r.domain})
    if current["inherited"]:
        response = r.client.put(f"{V1}/priority-matrix", params={"domain": r.domain}, json=MATRIX_BODY,
                                headers=r.root.headers)
        assert response.status_code == 200, response.text
        current = response.json()
    return Req(params={"domain": r.domain}, headers={"If-Match": f'"{current["version"]}"'})


def cancel_instance(r: Records, c: Caller) -> Req:
    return Req(path={"instance_id": r.start(r.definition["id"])["id"]})


def notification(r: Records, c: Caller) -> Req:
    mine = r.get(f"{V1}/notifications", who=c.person)["items"]
    assert mine, f"{c.name} has no notification"
    return Req(path={"notification_id": mine[0]["id"]})


def article_action(state: str, body: dict[str, Any] | None = None, *, other_author: bool = False,
                   draft: bool = False) -> Builder:
    """An action on an article in `state` made for this call (written by someone other than a
    reviewing caller, so that reviewing one's own work is not what refuses it)."""
    def build(r: Records, c: Caller) -> Req:
        author = r.reviewer if (other_author and c.is_global) else r.root
        article = r.with_draft() if draft else r.article_in(state, author)
        url = f"{V1}/articles/{article['id']}"
        return Req(path={"article_id": article["id"]}, json=body or {}, headers=r.if_match(url))
    return build


def deleted_article(r: Records, c: Caller) -> Req:
    article = r.published_article()
    r.delete(f"{V1}/articles/{article['id']}")
    return Req(path={"article_id": article["id"]})


def article_link(r: Records, c: Caller) -> Req:
    return Req(path={"article_id": r.article["id"]}, json={"target_type": "service",
                                                           "target_id": r.new_service()["id"]})


def remove_article_link(r: Records, c: Caller) -> Req:
    link = r.post(f"{V1}/articles/{r.article['id']}/links", {"target_type": "service",
                                                              "target_id": r.new_service()["id"]})
    return Req(path={"article_id": r.article["id"], "link_id": link["id"]})


def solved_incident(r: Records, c: Caller) -> Req:
    return Req(path={"article_id": r.article["id"]}, json={"incident_id": r.new_incident()["id"]})


def remove_solved_incident(r: Records, c: Caller) -> Req:
    incident = r.new_incident()
    r.post(f"{V1}/articles/{r.article['id']}/solved-incidents", {"incident_id": incident["id"]})
    return Req(path={"article_id": r.article["id"], "incident_id": incident["id"]})


def known_error(r: Records, c: Caller) -> Req:
    return Req(json={"problem_id": r.new("problems")["id"]})


def search_language(r: Records, c: Caller) -> Req:
    current = r.get(f"{V1}/search/language", params={"domain": r.domain})
    headers = {"If-Match": f'"{current["version"]}"'} if current.get("version") else {}
    return Req(params={"domain": r.domain}, json={"language": "english"}, headers=headers)


HISTORY_TARGETS: dict[str, Callable[[Records], str]] = {
    "incidents": lambda r: r.incident["id"], "services": lambda r: r.service["id"],
    "changes": lambda r: r.change["id"], "change-templates": lambda r: r.template["id"],
    "change-windows": lambda r: r.window["id"], "problems": lambda r: r.problem["id"],
    "sla-policies": lambda r: r.policy["id"], "cost-entries": lambda r: r.cost["id"],
    "cis": lambda r: r.ci["id"], "ci-classes": lambda r: r.ci_class["id"], "users": lambda r: str(r.target.id),
    "roles": lambda r: r.role["id"], "domains": lambda r: r.domain_id,
    "workflow-definitions": lambda r: r.definition["id"], "workflow-instances": lambda r: r.instance["id"],
    "webhooks": lambda r: r.webhook["id"], "articles": lambda r: r.article["id"],
}


def history(resource: str) -> Builder:
    return lambda r, c: Req(path={"resource": resource, "record_id": HISTORY_TARGETS[resource](r)})


def sn_incident_fields() -> dict[str, Any]:
    return {"short_description": unique("Printer on fire "), "impact": "2", "urgency": "2"}


def sn_create(table: str, fields: Callable[[Records], dict[str, Any]]) -> Builder:
    def build(r: Records, c: Caller) -> Req:
        body = fields(r)
        if table != "cmdb_rel_ci":
            body["sys_domain"] = r.domain
        return Req(path={"table_name": table}, json=body)
    return build


def sn_record(write: dict[str, Any] | None = None) -> Builder:
    def build(r: Records, c: Caller) -> Req:
        incident = r.new_incident()
        return Req(path={"table_name": "incident", "sys_id": uuid.UUID(incident["id"]).hex}, json=write)
    return build


S = lambda r: r.service["id"]  # noqa: E731
ID = {
    "service": lambda r: r.service["id"], "ci": lambda r: r.ci["id"], "incident": lambda r: r.incident["id"],
    "problem": lambda r: r.problem["id"], "change": lambda r: r.change["id"], "cost": lambda r: r.cost["id"],
    "class": lambda r: r.ci_class["id"], "role": lambda r: r.role["id"], "template": lambda r: r.template["id"],
    "window": lambda r: r.window["id"], "definition": lambda r: r.definition["id"],
    "instance": lambda r: r.instance["id"], "webhook": lambda r: r.webhook["id"],
    "article": lambda r: r.article["id"], "policy": lambda r: r.policy["id"],
}


def record_url(kind: str, key: str) -> Callable[[Records], str]:
    return lambda r: f"{V1}/{kind}/{ID[key](r)}"


def edit(kind: str, key: str, path_key: str, changes: Callable[[str], dict[str, Any]]) -> Builder:
    return versioned(record_url(kind, key), lambda r: {path_key: ID[key](r)}, changes)


REQUESTS: dict[tuple[str, ...], Builder] = {
    ("GET", "/api/health"): plain(),
    ("GET", "/api/ready"): plain(),
    ("POST", f"{V1}/auth/token"): lambda r, c: Req(data={"username": c.person.email, "password": PASSWORD}),
    ("POST", f"{V1}/auth/logout"): logout,
    ("GET", f"{V1}/me"): plain(),
    ("PATCH", f"{V1}/me"): patch_me,
    ("POST", f"{V1}/me/password"): change_own_password,
    ("GET", f"{V1}/permissions"): plain(),
    ("GET", f"{V1}/tokens"): plain(),
    ("GET", f"{V1}/tokens", "another user's"): params(lambda r: {"user_id": str(r.target.id)}),
    ("POST", f"{V1}/tokens"): plain(json={"name": "mine"}),
    ("POST", f"{V1}/tokens", "for another user"): lambda r, c: Req(json={"name": "theirs"},
                                                                   params={"user_id": str(r.target.id)}),
    ("DELETE", f"{V1}/tokens/{{token_id}}"): own_token,
    ("DELETE", f"{V1}/tokens/{{token_id}}", "another user's"): others_token,
    ("GET", f"{V1}/domains"): plain(),
    ("GET", f"{V1}/domains/{{domain_id}}"): on("domain_id", lambda r: r.domain_id),
    ("POST", f"{V1}/domains"): lambda r, c: Req(json={"code": unique("n"), "name": "Matrix new"}),
    ("PATCH", f"{V1}/domains/{{domain_id}}"): versioned(lambda r: f"{V1}/domains/{r.domain_id}",
                                                         lambda r: {"domain_id": r.domain_id},
                                                         lambda t: {"name": f"Matrix {t}"}),
    ("DELETE", f"{V1}/domains/{{domain_id}}"): domain_write(restore=False),
    ("POST", f"{V1}/domains/{{domain_id}}/restore"): domain_write(restore=True),
    ("GET", f"{V1}/users"): plain(),
    ("POST", f"{V1}/users"): lambda r, c: Req(json=r.body("users")),
    ("GET", f"{V1}/users/{{user_id}}"): on("user_id", lambda r: str(r.target.id)),
    ("PATCH", f"{V1}/users/{{user_id}}"): versioned(lambda r: f"{V1}/users/{r.target.id}",
                                                     lambda r: {"user_id": str(r.target.id)},
                                                     lambda t: {"name": f"Target {t}"}),
    ("DELETE", f"{V1}/users/{{user_id}}"): fresh("users", "user_id"),
    ("POST", f"{V1}/users/{{user_id}}/restore"): fresh("users", "user_id", deleted=True),
    ("POST", f"{V1}/users/{{user_id}}/unlock"): on("user_id", lambda r: str(r.target.id)),
    ("POST", f"{V1}/users/{{user_id}}/password"): lambda r, c: Req(path={"user_id": str(r.target.id)},
                                                                   json={"new_password": strong_password()}),
    ("GET", f"{V1}/users/{{user_id}}/roles"): on("user_id", lambda r: str(r.target.id)),
    ("POST", f"{V1}/users/{{user_id}}/roles"): assign_role,
    ("DELETE", f"{V1}/users/{{user_id}}/roles/{{assignment_id}}"): unassign_role,
    ("GET", f"{V1}/roles"): plain(),
    ("POST", f"{V1}/roles"): lambda r, c: Req(json=r.body("roles")),
    ("GET", f"{V1}/roles/{{role_id}}"): on("role_id", ID["role"]),
    ("PATCH", f"{V1}/roles/{{role_id}}"): edit("roles", "role", "role_id", lambda t: {"description": f"Matrix {t}"}),
    ("DELETE", f"{V1}/roles/{{role_id}}"): fresh("roles", "role_id"),
    ("POST", f"{V1}/roles/{{role_id}}/restore"): fresh("roles", "role_id", deleted=True),
    ("GET", f"{V1}/services"): plain(),
    ("POST", f"{V1}/services"): lambda r, c: Req(json=r.body("services")),
    ("GET", f"{V1}/services/tree"): params(lambda r: {"domain": r.domain}),
    ("GET", f"{V1}/services/{{service_id}}"): on("service_id", S),
    ("PATCH", f"{V1}/services/{{service_id}}"): edit("services", "service", "service_id",
                                                      lambda t: {"description": f"Matrix {t}"}),
    ("DELETE", f"{V1}/services/{{service_id}}"): fresh("services", "service_id"),
    ("POST", f"{V1}/services/{{service_id}}/restore"): fresh("services", "service_id", deleted=True),
    ("GET", f"{V1}/services/{{service_id}}/tree"): on("service_id", S),
    ("GET", f"{V1}/services/{{service_id}}/relationships"): on("service_id", S),
    ("POST", f"{V1}/services/{{service_id}}/relationships"): service_relationship,
    ("DELETE", f"{V1}/services/{{service_id}}/relationships/{{relationship_id}}"): remove_service_relationship,
    ("GET", f"{V1}/services/{{service_id}}/stakeholders"): on("service_id", S),
    ("POST", f"{V1}/services/{{service_id}}/stakeholders"): stakeholder,
    ("DELETE", f"{V1}/services/{{service_id}}/stakeholders/{{stakeholder_id}}"): remove_stakeholder,
    ("GET", f"{V1}/reports/ppt-balance"): plain(),
    ("GET", f"{V1}/cost-entries"): plain(),
    ("POST", f"{V1}/cost-entries"): lambda r, c: Req(json=r.body("cost-entries")),
    ("POST", f"{V1}/cost-entries/bulk"): lambda r, c: Req(json={"items": [r.body("cost-entries")]}),
    ("GET", f"{V1}/cost-entries/{{entry_id}}"): on("entry_id", ID["cost"]),
    ("PATCH", f"{V1}/cost-entries/{{entry_id}}"): edit("cost-entries", "cost", "entry_id",
                                                          lambda t: {"amount": f"{int(t, 16) % 9000 + 10}.00"}),
    ("DELETE", f"{V1}/cost-entries/{{entry_id}}"): fresh("cost-entries", "entry_id"),
    ("POST", f"{V1}/cost-entries/{{entry_id}}/restore"): fresh("cost-entries", "entry_id", deleted=True),
    ("GET", f"{V1}/reports/costs"): plain(),
    ("GET", f"{V1}/ci-classes"): plain(),
    ("GET", f"{V1}/ci-classes/{{class_id}}"): on("class_id", ID["class"]),
    ("POST", f"{V1}/ci-classes"): lambda r, c: Req(json=r.body("ci-classes")),
    ("PATCH", f"{V1}/ci-classes/{{class_id}}"): edit("ci-classes", "class", "class_id",
                                                        lambda t: {"label": f"Matrix {t}"}),
    ("DELETE", f"{V1}/ci-classes/{{class_id}}"): fresh("ci-classes", "class_id"),
    ("POST", f"{V1}/ci-classes/{{class_id}}/restore"): fresh("ci-classes", "class_id", deleted=True),
    ("GET", f"{V1}/cis"): plain(),
    ("POST", f"{V1}/cis"): lambda r, c: Req(json=r.body("cis")),
    ("GET", f"{V1}/cis/{{ci_id}}"): on("ci_id", ID["ci"]),
    ("PATCH", f"{V1}/cis/{{ci_id}}"): edit("cis", "ci", "ci_id", lambda t: {"name": f"ci-{t}"}),
    ("DELETE", f"{V1}/cis/{{ci_id}}"): fresh("cis", "ci_id"),
    ("POST", f"{V1}/cis/{{ci_id}}/restore"): fresh("cis", "ci_id", deleted=True),
    ("GET", f"{V1}/cis/{{ci_id}}/impact"): on("ci_id", ID["ci"]),
    ("GET", f"{V1}/cis/{{ci_id}}/dependencies"): on("ci_id", ID["ci"]),
    ("GET", f"{V1}/ci-relationships"): plain(),
    ("POST", f"{V1}/ci-relationships"): ci_relationship,
    ("DELETE", f"{V1}/ci-relationships/{{relationship_id}}"): remove_ci_relationship,
    ("GET", f"{V1}/cmdb/health"): plain(),
    ("POST", f"{V1}/cmdb/import"): cmdb_import,
    ("GET", f"{V1}/incidents"): plain(),
    ("POST", f"{V1}/incidents"): lambda r, c: Req(json=r.body("incidents")),
    ("POST", f"{V1}/incidents", "assigned"): lambda r, c: Req(json={**r.body("incidents"),
                                                                    "assigned_group": "service-desk"}),
    ("POST", f"{V1}/incidents/bulk"): lambda r, c: Req(json={"items": [r.body("incidents")]}),
    ("GET", f"{V1}/incidents/sla-at-risk"): params(lambda r: {"within": "2d"}),
    ("GET", f"{V1}/incidents/{{incident_id}}"): on("incident_id", ID["incident"]),
    ("PATCH", f"{V1}/incidents/{{incident_id}}"): edit("incidents", "incident", "incident_id",
                                                        lambda t: {"description": f"Matrix {t}"}),
    ("PATCH", f"{V1}/incidents/{{incident_id}}", "priority override"): edit(
        "incidents", "incident", "incident_id", lambda t: {"priority": "critical"}),
    ("DELETE", f"{V1}/incidents/{{incident_id}}"): fresh("incidents", "incident_id"),
    ("POST", f"{V1}/incidents/{{incident_id}}/restore"): fresh("incidents", "incident_id", deleted=True),
    ("GET", f"{V1}/problems"): plain(),
    ("POST", f"{V1}/problems"): lambda r, c: Req(json=r.body("problems")),
    ("GET", f"{V1}/problems/{{problem_id}}"): on("problem_id", ID["problem"]),
    ("PATCH", f"{V1}/problems/{{problem_id}}"): edit("problems", "problem", "problem_id",
                                                      lambda t: {"description": f"Matrix {t}"}),
    ("DELETE", f"{V1}/problems/{{problem_id}}"): fresh("problems", "problem_id"),
    ("POST", f"{V1}/problems/{{problem_id}}/restore"): fresh("problems", "problem_id", deleted=True),
    ("GET", f"{V1}/problems/{{problem_id}}/incidents"): on("problem_id", ID["problem"]),
    ("POST", f"{V1}/problems/{{problem_id}}/incidents"): link_problem_incident,
    ("DELETE", f"{V1}/problems/{{problem_id}}/incidents/{{incident_id}}"): unlink_problem_incident,
    ("GET", f"{V1}/sla-policies"): plain(),
    ("POST", f"{V1}/sla-policies"): new_policy,
    ("GET", f"{V1}/sla-policies/{{policy_id}}"): on("policy_id", ID["policy"]),
    ("PATCH", f"{V1}/sla-policies/{{policy_id}}"): edit("sla-policies", "policy", "policy_id",
                                                         lambda t: {"resolution_minutes": int(t, 16) % 9000 + 60}),
    ("DELETE", f"{V1}/sla-policies/{{policy_id}}"): policy_write(restore=False),
    ("POST", f"{V1}/sla-policies/{{policy_id}}/restore"): policy_write(restore=True),
    ("GET", f"{V1}/priority-matrix"): params(lambda r: {"domain": r.domain}),
    ("PUT", f"{V1}/priority-matrix"): put_matrix,
    ("DELETE", f"{V1}/priority-matrix"): reset_matrix,
    ("GET", f"{V1}/changes"): plain(),
    ("POST", f"{V1}/changes"): lambda r, c: Req(json=r.body("changes")),
    ("GET", f"{V1}/changes/calendar"): params(lambda r: {"from": "2030-01-01T00:00:00Z",
                                                         "to": "2030-02-01T00:00:00Z", "domain": r.domain}),
    ("GET", f"{V1}/changes/{{change_id}}"): on("change_id", ID["change"]),
    ("PATCH", f"{V1}/changes/{{change_id}}"): edit("changes", "change", "change_id",
                                                    lambda t: {"description": f"Matrix {t}"}),
    ("PATCH", f"{V1}/changes/{{change_id}}", "review"): review_change,
    ("PATCH", f"{V1}/changes/{{change_id}}", "unchanged values"): lambda r, c: Req(
        path={"change_id": r.change["id"]}, json={"short_description": r.change["short_description"]},
        headers=r.if_match(f"{V1}/changes/{r.change['id']}")),
    ("DELETE", f"{V1}/changes/{{change_id}}"): fresh("changes", "change_id"),
    ("POST", f"{V1}/changes/{{change_id}}/restore"): fresh("changes", "change_id", deleted=True),
    ("GET", f"{V1}/changes/{{change_id}}/conflicts"): on("change_id", ID["change"]),
    ("GET", f"{V1}/changes/{{change_id}}/risk"): on("change_id", ID["change"]),
    ("GET", f"{V1}/changes/{{change_id}}/incidents"): on("change_id", ID["change"]),
    ("POST", f"{V1}/changes/{{change_id}}/incidents"): link_caused_incident,
    ("DELETE", f"{V1}/changes/{{change_id}}/incidents/{{incident_id}}"): unlink_caused_incident,
    ("GET", f"{V1}/change-templates"): plain(),
    ("POST", f"{V1}/change-templates"): lambda r, c: Req(json=r.body("change-templates")),
    ("GET", f"{V1}/change-templates/{{template_id}}"): on("template_id", ID["template"]),
    ("PATCH", f"{V1}/change-templates/{{template_id}}"): edit("change-templates", "template", "template_id",
                                                               lambda t: {"description": f"Matrix {t}"}),
    ("DELETE", f"{V1}/change-templates/{{template_id}}"): fresh("change-templates", "template_id"),
    ("POST", f"{V1}/change-templates/{{template_id}}/restore"): fresh("change-templates", "template_id",
                                                                      deleted=True),
    ("GET", f"{V1}/change-windows"): plain(),
    ("POST", f"{V1}/change-windows"): lambda r, c: Req(json=r.body("change-windows")),
    ("GET", f"{V1}/change-windows/{{window_id}}"): on("window_id", ID["window"]),
    ("PATCH", f"{V1}/change-windows/{{window_id}}"): edit("change-windows", "window", "window_id",
                                                           lambda t: {"description": f"Matrix {t}"}),
    ("DELETE", f"{V1}/change-windows/{{window_id}}"): fresh("change-windows", "window_id"),
    ("POST", f"{V1}/change-windows/{{window_id}}/restore"): fresh("change-windows", "window_id", deleted=True),
    ("GET", f"{V1}/workflow-definitions"): plain(),
    ("POST", f"{V1}/workflow-definitions"): lambda r, c: Req(json=r.body("workflow-definitions")),
    ("GET", f"{V1}/workflow-definitions/{{definition_id}}"): on("definition_id", ID["definition"]),
    ("PATCH", f"{V1}/workflow-definitions/{{definition_id}}"): edit(
        "workflow-definitions", "definition", "definition_id", lambda t: {"description": f"Matrix {t}"}),
    ("DELETE", f"{V1}/workflow-definitions/{{definition_id}}"): fresh("workflow-definitions", "definition_id"),
    ("POST", f"{V1}/workflow-definitions/{{definition_id}}/restore"): fresh("workflow-definitions",
                                                                            "definition_id", deleted=True),
    ("GET", f"{V1}/workflow-definitions/{{definition_id}}/versions/{{version}}"): lambda r, c: Req(
        path={"definition_id": r.definition["id"], "version": 1}),
    ("GET", f"{V1}/workflow-instances"): plain(),
    ("POST", f"{V1}/workflow-instances"): lambda r, c: Req(json={"definition_id": r.definition["id"],
                                                                 "domain": r.domain}),
    ("GET", f"{V1}/workflow-instances/{{instance_id}}"): on("instance_id", ID["instance"]),
    ("POST", f"{V1}/workflow-instances/{{instance_id}}/cancel"): cancel_instance,
    ("GET", f"{V1}/approvals"): plain(),
    ("GET", f"{V1}/approvals/{{approval_id}}"): lambda r, c: Req(
        path={"approval_id": r.instance["approvals"][0]["id"]}),
    ("POST", f"{V1}/approvals/{{approval_id}}/approve"): lambda r, c: Req(path={"approval_id": r.approval()},
                                                                          json={}),
    ("POST", f"{V1}/approvals/{{approval_id}}/reject"): lambda r, c: Req(path={"approval_id": r.approval()},
                                                                         json={"comment": "Not now"}),
    ("GET", f"{V1}/workflow-tasks"): plain(),
    ("POST", f"{V1}/workflow-tasks/{{task_id}}/complete"): lambda r, c: Req(path={"task_id": r.task()},
                                                                            json={"comment": "Done"}),
    ("GET", f"{V1}/notifications"): plain(),
    ("POST", f"{V1}/notifications/read-all"): plain(),
    ("POST", f"{V1}/notifications/{{notification_id}}/read"): notification,
    ("GET", f"{V1}/email-messages"): plain(),
    ("GET", f"{V1}/webhooks"): plain(),
    ("POST", f"{V1}/webhooks"): lambda r, c: Req(json=r.body("webhooks")),
    ("GET", f"{V1}/webhooks/{{webhook_id}}"): on("webhook_id", ID["webhook"]),
    ("PATCH", f"{V1}/webhooks/{{webhook_id}}"): edit("webhooks", "webhook", "webhook_id",
                                                      lambda t: {"name": f"Matrix hook {t}"}),
    ("DELETE", f"{V1}/webhooks/{{webhook_id}}"): fresh("webhooks", "webhook_id"),
    ("POST", f"{V1}/webhooks/{{webhook_id}}/restore"): fresh("webhooks", "webhook_id", deleted=True),
    ("GET", f"{V1}/webhooks/{{webhook_id}}/deliveries"): on("webhook_id", ID["webhook"]),
    ("GET", f"{V1}/articles"): plain(),
    ("POST", f"{V1}/articles"): lambda r, c: Req(json=r.body("articles")),
    ("GET", f"{V1}/articles/suggest"): params(lambda r: {"text": "restart the service", "domain": r.domain}),
    ("POST", f"{V1}/articles/known-errors"): known_error,
    ("GET", f"{V1}/articles/{{article_id}}"): on("article_id", ID["article"]),
    ("GET", f"{V1}/articles/{{article_id}}", "agents only"): on("article_id", lambda r: r.internal["id"]),
    ("PATCH", f"{V1}/articles/{{article_id}}"): edit("articles", "article", "article_id",
                                                      lambda t: {"body": f"Restart the service ({t})."}),
    ("DELETE", f"{V1}/articles/{{article_id}}"): article_action("published"),
    ("POST", f"{V1}/articles/{{article_id}}/restore"): deleted_article,
    ("POST", f"{V1}/articles/{{article_id}}/submit"): article_action("draft"),
    ("POST", f"{V1}/articles/{{article_id}}/withdraw"): article_action("review"),
    ("POST", f"{V1}/articles/{{article_id}}/approve"): article_action("review", other_author=True),
    ("POST", f"{V1}/articles/{{article_id}}/reject"): article_action("review", {"comment": "Too short"},
                                                                     other_author=True),
    ("POST", f"{V1}/articles/{{article_id}}/retire"): article_action("published", {"reason": "Outdated"}),
    ("POST", f"{V1}/articles/{{article_id}}/discard-draft"): article_action("published", draft=True),
    ("GET", f"{V1}/articles/{{article_id}}/versions"): on("article_id", lambda r: r.revised["id"]),
    ("GET", f"{V1}/articles/{{article_id}}/versions/{{number}}"): lambda r, c: Req(
        path={"article_id": r.revised["id"], "number": 2}),
    ("GET", f"{V1}/articles/{{article_id}}/versions/{{number}}/diff"): lambda r, c: Req(
        path={"article_id": r.revised["id"], "number": 2}),
    ("POST", f"{V1}/articles/{{article_id}}/links"): article_link,
    ("DELETE", f"{V1}/articles/{{article_id}}/links/{{link_id}}"): remove_article_link,
    ("PUT", f"{V1}/articles/{{article_id}}/feedback"): on("article_id", ID["article"], json={"helpful": True}),
    ("GET", f"{V1}/articles/{{article_id}}/feedback"): on("article_id", ID["article"]),
    ("GET", f"{V1}/articles/{{article_id}}/solved-incidents"): on("article_id", ID["article"]),
    ("POST", f"{V1}/articles/{{article_id}}/solved-incidents"): solved_incident,
    ("DELETE", f"{V1}/articles/{{article_id}}/solved-incidents/{{incident_id}}"): remove_solved_incident,
    ("GET", f"{V1}/search/language"): params(lambda r: {"domain": r.domain}),
    ("PUT", f"{V1}/search/language"): search_language,
    ("GET", f"{V1}/search"): params(lambda r: {"q": "portal"}),
    ("GET", f"{V1}/audit-log"): plain(),
    **{(("GET", f"{V1}/{{resource}}/{{record_id}}/history") if resource == "incidents"
        else ("GET", f"{V1}/{{resource}}/{{record_id}}/history", resource)): history(resource)
       for resource in HISTORY_TARGETS},
    ("GET", "/api/now/table/{table_name}"): lambda r, c: Req(path={"table_name": "incident"},
                                                             params={"sysparm_limit": "5"}),
    ("POST", "/api/now/table/{table_name}"): lambda r, c: Req(
        path={"table_name": "incident"}, json={**sn_incident_fields(), "sys_domain": r.domain}),
    ("GET", "/api/now/table/{table_name}/{sys_id}"): lambda r, c: Req(
        path={"table_name": "incident", "sys_id": uuid.UUID(r.incident["id"]).hex}),
    ("PUT", "/api/now/table/{table_name}/{sys_id}"): sn_record({"description": "Matrix"}),
    ("PATCH", "/api/now/table/{table_name}/{sys_id}"): sn_record({"description": "Matrix"}),
    ("DELETE", "/api/now/table/{table_name}/{sys_id}"): sn_record(),
    ("PATCH", "/api/now/table/{table_name}/{sys_id}", "change_request, unchanged values"): lambda r, c: Req(
        path={"table_name": "change_request", "sys_id": uuid.UUID(r.change["id"]).hex},
        json={"short_description": r.change["short_description"]}),
    ("POST", "/api/now/table/{table_name}", "problem"): sn_create(
        "problem", lambda r: {"short_description": unique("Printers keep failing "), "priority": "2"}),
    ("POST", "/api/now/table/{table_name}", "change_request"): sn_create(
        "change_request", lambda r: {"short_description": unique("Patch web01 "), "type": "normal"}),
    ("POST", "/api/now/table/{table_name}", "cmdb_ci_server"): sn_create(
        "cmdb_ci_server", lambda r: {"name": unique("web-"), "ip_address": "10.0.0.1", "used_for": "Production"}),
    ("POST", "/api/now/table/{table_name}", "cmdb_rel_ci"): sn_create(
        "cmdb_rel_ci", lambda r: {"parent": uuid.UUID(r.new_ci()["id"]).hex, "child": uuid.UUID(r.ci["id"]).hex,
                                  "type": "Depends on::Used by"}),
    ("POST", "/api/now/table/{table_name}", "sys_user"): sn_create(
        "sys_user", lambda r: {"user_name": unique("sn"), "name": "Now User", "email": f"{unique('sn')}@example.org"}),
    ("POST", "/api/now/table/{table_name}", "kb_knowledge"): sn_create(
        "kb_knowledge", lambda r: {"short_description": unique("How to "), "text": "Restart it."}),
}


# ---- the application's routes ------------------------------------------------------------------------------

def api_routes(app) -> set[tuple[str, str]]:
    """(method, path template) of every route of the application under /api/."""
    found = set()
    for context in iter_route_contexts(app.routes):
        path, methods = getattr(context, "path", None), getattr(context, "methods", None)
        if not path or not methods or not (path.startswith("/api/") or path == "/api"):
            continue
        for method in methods:
            if method == "HEAD" and isinstance(context.original_route, APIRoute) and "GET" in methods:
                continue  # FastAPI answers HEAD for GET routes on its own (none here declares it)
            found.add((method, path))
    return found


def test_the_matrix_lists_exactly_the_applications_api_routes(world: World) -> None:
    routes = api_routes(world.client.app)
    catch_all = {(m, p) for m, p in routes if p == CATCH_ALL}
    operations = routes - NOT_OPERATIONS - catch_all
    classified = {key[:2] for key in MATRIX}
    assert sorted(operations - classified) == [], "routes without a rule in MATRIX"
    assert sorted(classified - operations) == [], "rules in MATRIX for routes that do not exist"
    assert set(REQUESTS) == set(MATRIX), "every rule needs a request, and every request a rule"
    every = {p for rule in MATRIX.values() for p in rule.needs} | {r.hidden_by for r in MATRIX.values() if r.hidden_by}
    assert every <= set(PERMISSIONS), f"not in the permission catalogue: {every - set(PERMISSIONS)}"
    # Every resource that keeps a history has its variant of the history route.
    assert set(HISTORY_SOURCES) == set(HISTORY_TARGETS)


def test_the_catch_all_under_api_now_serves_nothing(client) -> None:
    """ServiceNow's answer for a URI that is no resource: 400, no data, whoever asks."""
    response = client.get("/api/now/stats/incident")
    assert response.status_code == 400 and response.json()["status"] == "failure"


# ---- running the matrix ----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def records(world: World) -> Records:
    return Records(world)


@pytest.fixture(scope="module")
def api_schema(world: World):
    return schemathesis.openapi.from_asgi("/api/openapi.json", world.client.app)


def _request(r: Records, key: tuple[str, ...], req: Req, headers: dict[str, str]) -> httpx.Response:
    method, template = key[0], key[1]
    url = template.format(**req.path)
    return r.client.request(method, url, json=req.json, params=req.params, data=req.data, files=req.files,
                            headers=headers)


def _servicenow(template: str) -> bool:
    return template.startswith("/api/now/")


def _verdict(key: tuple[str, ...], rule: Rule, caller: Caller, response: httpx.Response,
             api_schema) -> str | None:
    """None when the response is what the rule expects of this caller; else what went wrong."""
    want = expected(rule, caller)
    status = response.status_code
    got = f"{status} {response.text[:300]}"
    if want.status == "allow":
        if not 200 <= status < 300:
            return f"expected success, got {got}"
        if not _servicenow(key[1]) and key[1] != "/api/ready":
            try:
                api_schema[key[1]][key[0]].validate_response(response)
            except Exception as exc:  # the schemathesis failure explains which part breaks the schema
                return f"success, but the response breaks its schema: {exc}"
        return None
    if str(status) != want.status:
        return f"expected {want.status}{' naming ' + want.permission if want.permission else ''}, got {got}"
    if _servicenow(key[1]):
        message = response.json()["error"]["message"]
        if want.permission and want.permission not in message:
            return f"403 does not name {want.permission}: {got}"
        return None
    if not response.headers.get("content-type", "").startswith("application/problem+json"):
        return f"not problem+json: {response.headers.get('content-type')}"
    problem = response.json()
    if want.permission and problem.get("permission") != want.permission and want.permission not in problem["detail"]:
        return f"403 does not name {want.permission}: {got}"
    if rule.kind == "role" and "role" not in problem["detail"]:
        return f"403 does not say a role is needed: {got}"
    return None


PATH_PARAM = re.compile(r"{(\w+)(?::\w+)?}")
DUMMY = {"table_name": "incident", "resource": "incidents", "version": "1", "number": "1"}
KEYS = sorted(MATRIX, key=lambda k: (k[1], k[0], k[2:]))


@pytest.mark.parametrize("key", KEYS, ids=[" ".join(k) for k in KEYS])
def test_every_role_is_allowed_or_refused_as_the_catalogue_says(key: tuple[str, ...], records: Records,
                                                                api_schema) -> None:
    rule, build = MATRIX[key], REQUESTS[key]
    wrong = []
    if rule.kind != PUBLIC:
        # Authentication comes before anything else: any well-formed target will do.
        anonymous = _request(records, key, Req(path={name: DUMMY.get(name, str(uuid.uuid4()))
                                                     for name in PATH_PARAM.findall(key[1])}), {})
        if anonymous.status_code != 401:
            wrong.append(f"without credentials: expected 401, got {anonymous.status_code} {anonymous.text[:200]}")
    for name in CALLERS:
        caller = records.callers[name]
        req = build(records, caller)
        person = req.as_person or caller.person
        headers = {**({} if rule.kind == PUBLIC else person.headers), **req.headers}
        response = _request(records, key, req, headers)
        problem = _verdict(key, rule, caller, response, api_schema)
        if problem:
            wrong.append(f"as {name}: {problem}")
    assert not wrong, f"{' '.join(key)} ({rule}):\n" + "\n".join(wrong)
