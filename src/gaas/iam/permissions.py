"""The permission catalogue: every permission string a role may carry, in one place.

Roles are validated against it on write. Modules add their permissions here as they arrive.
"""

from __future__ import annotations

PERMISSIONS: dict[str, str] = {
    # identity and access
    "domain.view": "See domains",
    "domain.manage": "Create and edit domains",
    "user.view": "See users",
    "user.create": "Create users",
    "user.edit": "Edit users, lock and unlock them",
    "user.delete": "Delete and restore users",
    "user.reset_password": "Set another user's password",
    "role.view": "See roles",
    "role.manage": "Create, edit and delete roles",
    "role.assign": "Give roles to users and take them away",
    "token.manage": "See and revoke other users' API tokens",
    "audit.view": "Read the audit log",
    # service portfolio and costs
    "service.view": "See services",
    "service.create": "Create services",
    "service.edit": "Edit services, relationships and stakeholders",
    "service.delete": "Delete and restore services",
    "cost.view": "See costs and cost reports",
    "cost.manage": "Record and edit cost entries",
    # CMDB
    "ci.view": "See configuration items",
    "ci.create": "Create configuration items",
    "ci.edit": "Edit configuration items and their relationships",
    "ci.delete": "Delete and restore configuration items",
    "ci_class.manage": "Define CI classes",
    "cmdb.import": "Run discovery imports",
    # ITSM
    "incident.view": "See incidents",
    "incident.create": "Report incidents",
    "incident.edit": "Edit incidents",
    "incident.assign": "Assign incidents",
    "incident.resolve": "Resolve and close incidents",
    "incident.override_priority": "Override the computed priority",
    "incident.delete": "Delete and restore incidents",
    "problem.view": "See problems",
    "problem.manage": "Create and work problems, link incidents to them",
    "problem.delete": "Delete and restore problems",
    "change.view": "See changes",
    "change.create": "Request changes",
    "change.edit": "Edit changes",
    "change.approve": "Approve or reject changes; keep standard-change templates and change windows",
    "change.implement": "Implement changes",
    "change.delete": "Delete and restore changes",
    "sla.manage": "Edit SLA policies and the priority matrix",
    # workflow and knowledge
    "workflow.view": "See workflows, their instances, approvals and tasks",
    "workflow.manage": "Define workflows, cancel instances, see e-mail delivery",
    "workflow.start": "Start workflows by hand",
    "webhook.manage": "Subscribe webhooks to events and read their delivery log",
    "knowledge.view": "Read knowledge articles",
    "knowledge.write": "Write knowledge articles",
    "knowledge.review": "Review and publish knowledge articles",
    "knowledge_internal.view": "Read knowledge articles meant for agents only",
    "search.manage": "Set the text-search language of a domain",
    "report.view": "See reports",
}

VIEW_PERMISSIONS = frozenset(p for p in PERMISSIONS if p.endswith(".view"))


def _all_but(*excluded_prefixes: str) -> list[str]:
    return sorted(p for p in PERMISSIONS if not p.startswith(excluded_prefixes))


# The roles every installation starts with (is_system): kept in step with this catalogue by
# `gaas db upgrade`. Administrators add their own roles beside them.
DEFAULT_ROLES: dict[str, tuple[str, list[str]]] = {
    "platform_admin": ("Everything, in every domain", sorted(PERMISSIONS)),
    "domain_admin": (
        "Administers one domain: its users, roles and records",
        _all_but("domain.manage"),
    ),
    "service_owner": (
        "Owns services: their portfolio, costs and health",
        sorted(VIEW_PERMISSIONS - {"audit.view"} | {
            "service.create", "service.edit", "cost.manage", "incident.create", "change.create",
            "knowledge.write",
        }),
    ),
    "service_desk_agent": (
        "Works the incident queue",
        sorted(VIEW_PERMISSIONS - {"audit.view", "cost.view"} | {
            "incident.create", "incident.edit", "incident.assign", "incident.resolve", "problem.manage",
            "knowledge.write",
        }),
    ),
    "change_manager": (
        "Reviews, approves and schedules changes",
        sorted(VIEW_PERMISSIONS - {"audit.view", "cost.view"} | {
            "change.create", "change.edit", "change.approve", "change.implement", "incident.create",
            "workflow.start",
        }),
    ),
    "cmdb_admin": (
        "Keeps the CMDB accurate",
        sorted(VIEW_PERMISSIONS - {"audit.view", "cost.view"} | {
            "ci.create", "ci.edit", "ci.delete", "ci_class.manage", "cmdb.import",
        }),
    ),
    "finance_officer": (
        "Manages costs and reads cost reports",
        sorted(VIEW_PERMISSIONS - {"audit.view", "knowledge_internal.view"} | {"cost.manage"}),
    ),
    "auditor": ("Reads everything, including the audit log; changes nothing", sorted(VIEW_PERMISSIONS)),
}


def unknown_permissions(permissions: list[str]) -> list[str]:
    return [p for p in permissions if p not in PERMISSIONS]
