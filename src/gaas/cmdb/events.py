"""Domain events of the CMDB."""

CI_CREATED = "ci.created"
CI_UPDATED = "ci.updated"
CI_STATUS_CHANGED = "ci.status_changed"
CI_DELETED = "ci.deleted"
