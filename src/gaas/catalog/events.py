"""Domain events of the service portfolio."""

SERVICE_CREATED = "service.created"
SERVICE_UPDATED = "service.updated"
SERVICE_STATUS_CHANGED = "service.status_changed"
SERVICE_DELETED = "service.deleted"
SERVICE_RESTORED = "service.restored"
