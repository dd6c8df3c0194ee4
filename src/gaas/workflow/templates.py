"""The named message templates notification steps refer to (`"template": "change_approved"`).

Subject and body are Jinja2 (sandboxed); they see `record` (the context record's fields, also under
its type's name, e.g. `change.number`), `instance`, `variables`, `step` and `domain`. A step may
instead carry its own `subject` and `body`.
"""

from __future__ import annotations

TEMPLATES: dict[str, tuple[str, str]] = {
    "approval_requested": (
        "Approval needed: {{ record.number or context_type }} {{ record.short_description or record.name or '' }}",
        "Your approval is requested ({{ step.name or 'approval' }}, role {{ step.approver_role }}) for "
        "{{ context_type }} {{ record.number or context_id }} in {{ domain }}.\n"
        "{% if step.sla_hours %}Please decide within {{ step.sla_hours }} hours.\n{% endif %}"
        "Approve or reject: POST /api/v1/approvals/{{ approval_id }}/approve|reject\n",
    ),
    "task_assigned": (
        "Task: {{ step.name or 'workflow task' }} for {{ record.number or context_type }}",
        "A task was assigned to {{ step.assignee_role or 'you' }} for {{ context_type }} "
        "{{ record.number or context_id }} in {{ domain }}.\n{{ step.instructions or '' }}\n"
        "Complete it: POST /api/v1/workflow-tasks/{{ step_id }}/complete\n",
    ),
    "step_escalated": (
        "Escalation: {{ step.name or step.type }} of {{ record.number or context_type }} is overdue",
        "The {{ step.type }} step '{{ step.name or step.step }}' of workflow {{ instance.definition_name }} "
        "for {{ context_type }} {{ record.number or context_id }} in {{ domain }} passed its SLA of "
        "{{ step.sla_hours }} hours (due {{ sla_due_at }}).\n",
    ),
    "change_approved": (
        "Change {{ record.number }} approved",
        "Your change {{ record.number }} ({{ record.short_description }}) was approved.\n",
    ),
    "change_rejected": (
        "Change {{ record.number }} rejected",
        "Your change {{ record.number }} ({{ record.short_description }}) was rejected: "
        "{{ variables.rejection_comment }}\n",
    ),
    "incident_sla_breached": (
        "SLA breached: {{ record.number }} {{ record.short_description }}",
        "Incident {{ record.number }} ({{ record.priority }}) in {{ domain }} passed its SLA due time "
        "{{ record.sla_due }} and is still {{ record.status }}.\n",
    ),
    "monthly_cost_report": (
        "Monthly cost report for {{ domain }}",
        "The cost report of {{ domain }} for last month is ready: "
        "/api/v1/reports/costs?domain={{ domain }}&group_by=service\n",
    ),
    "webhook_disabled": (
        "Webhook {{ record.name }} was disabled",
        "After {{ variables.failures }} failed deliveries in a row, webhook {{ record.name }} ({{ record.url }}) "
        "was disabled. Last error: {{ variables.last_error }}. Re-enable it with PATCH active=true.\n",
    ),
}
