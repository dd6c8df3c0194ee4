"""Domain events of change management."""

CHANGE_CREATED = "change.created"
CHANGE_UPDATED = "change.updated"
CHANGE_STATUS_CHANGED = "change.status_changed"
CHANGE_SUBMITTED = "change.submitted"
CHANGE_UNDER_REVIEW = "change.under_review"
CHANGE_APPROVED = "change.approved"
CHANGE_REJECTED = "change.rejected"
CHANGE_SCHEDULED = "change.scheduled"
CHANGE_RESCHEDULED = "change.rescheduled"
CHANGE_IMPLEMENTATION_STARTED = "change.implementation_started"
CHANGE_IMPLEMENTED = "change.implemented"
CHANGE_CLOSED = "change.closed"
CHANGE_CANCELLED = "change.cancelled"
CHANGE_CONFLICTS_FOUND = "change.conflicts_found"
CHANGE_INCIDENT_LINKED = "change.incident_linked"
CHANGE_DELETED = "change.deleted"
CHANGE_RESTORED = "change.restored"

# The event announcing each status a change enters (besides change.status_changed).
STATUS_EVENTS = {
    "submitted": CHANGE_SUBMITTED, "under_review": CHANGE_UNDER_REVIEW, "approved": CHANGE_APPROVED,
    "rejected": CHANGE_REJECTED,
    "scheduled": CHANGE_SCHEDULED, "implementing": CHANGE_IMPLEMENTATION_STARTED,
    "implemented": CHANGE_IMPLEMENTED, "closed": CHANGE_CLOSED, "cancelled": CHANGE_CANCELLED,
}
