"""Domain events of incident and problem management."""

INCIDENT_CREATED = "incident.created"
INCIDENT_UPDATED = "incident.updated"
INCIDENT_STATUS_CHANGED = "incident.status_changed"
INCIDENT_ASSIGNED = "incident.assigned"
INCIDENT_PRIORITY_CHANGED = "incident.priority_changed"
INCIDENT_SLA_BREACHED = "incident.sla_breached"
INCIDENT_DELETED = "incident.deleted"
INCIDENT_RESTORED = "incident.restored"

PROBLEM_CREATED = "problem.created"
PROBLEM_UPDATED = "problem.updated"
PROBLEM_STATUS_CHANGED = "problem.status_changed"
PROBLEM_KNOWN_ERROR = "problem.known_error"  # a workaround was recorded: the problem is now a known error
PROBLEM_INCIDENT_LINKED = "problem.incident_linked"
PROBLEM_INCIDENT_UNLINKED = "problem.incident_unlinked"
PROBLEM_DELETED = "problem.deleted"
PROBLEM_RESTORED = "problem.restored"
