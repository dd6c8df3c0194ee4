"""Domain events of cost management."""

COST_ENTRY_CREATED = "cost_entry.created"
COST_ENTRY_UPDATED = "cost_entry.updated"
COST_ENTRY_DELETED = "cost_entry.deleted"
