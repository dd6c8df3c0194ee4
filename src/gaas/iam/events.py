"""Domain events the identity module emits (delivered through the outbox once the workflow
module exists). Names are stable API: subscribers match on them."""

USER_CREATED = "user.created"
USER_UPDATED = "user.updated"
USER_DELETED = "user.deleted"
USER_LOCKED = "user.locked"
ROLE_ASSIGNED = "user.role_assigned"
ROLE_UNASSIGNED = "user.role_unassigned"
