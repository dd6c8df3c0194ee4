"""Domain events of the workflow engine (they go to webhooks like every other event, but never
start workflows: that could loop)."""

WORKFLOW_STARTED = "workflow.started"
WORKFLOW_COMPLETED = "workflow.completed"
WORKFLOW_FAILED = "workflow.failed"
WORKFLOW_STEP_ESCALATED = "workflow.step_escalated"
WORKFLOW_TASK_COMPLETED = "workflow.task_completed"
APPROVAL_REQUESTED = "approval.requested"
APPROVAL_DECIDED = "approval.decided"
WEBHOOK_DISABLED = "webhook.disabled"
