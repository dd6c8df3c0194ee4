"""The definitions every installation starts with (platform-wide, domain NULL), kept in step with
this file by `gaas db upgrade` until an administrator edits them. A domain overrides one by
defining its own with the same name."""

from __future__ import annotations

from typing import Any

NORMAL_CHANGE_APPROVAL = "normal-change-approval"
EMERGENCY_CHANGE_APPROVAL = "emergency-change-approval"
INCIDENT_SLA_BREACH_ESCALATION = "incident-sla-breach-escalation"
MONTHLY_COST_REPORT = "monthly-cost-report"

DEFAULT_DEFINITIONS: list[dict[str, Any]] = [
    {
        "name": NORMAL_CHANGE_APPROVAL,
        "description": "A submitted normal change: the change manager approves, then the service owner. "
                       "Started by the change module on submit; the outcome moves the change.",
        "trigger_type": "manual",
        "steps": [
            {"step": 1, "type": "approval", "name": "Change manager approval", "approver_role": "change_manager",
             "approvals_required": 1, "sla_hours": 24},
            {"step": 2, "type": "approval", "name": "Service owner approval", "approver_role": "service_owner",
             "approvals_required": 1, "sla_hours": 24, "on_reject": 4},
            {"step": 3, "type": "notification", "name": "Tell the requester", "template": "change_approved",
             "recipients": ["requester"], "next": "end"},
            {"step": 4, "type": "notification", "name": "Tell the requester", "template": "change_rejected",
             "recipients": ["requester"]},
        ],
    },
    {
        "name": EMERGENCY_CHANGE_APPROVAL,
        "description": "An emergency change: one change-manager approval within 4 hours.",
        "trigger_type": "manual",
        "steps": [
            {"step": 1, "type": "approval", "name": "Emergency approval", "approver_role": "change_manager",
             "approvals_required": 1, "sla_hours": 4},
            {"step": 2, "type": "notification", "name": "Tell the requester", "template": "change_approved",
             "recipients": ["requester"]},
        ],
    },
    {
        "name": INCIDENT_SLA_BREACH_ESCALATION,
        "description": "An incident breached its SLA: tell its assignee and the domain administrators, and "
                       "have the service desk review it within 4 hours.",
        "trigger_type": "event",
        "trigger_config": {"event_type": "incident.sla_breached"},
        "steps": [
            {"step": 1, "type": "notification", "name": "Escalate", "template": "incident_sla_breached",
             "recipients": ["assignee", "role:domain_admin"]},
            {"step": 2, "type": "task", "name": "Review the breached incident", "assignee_role": "service_desk_agent",
             "sla_hours": 4, "instructions": "Re-prioritise or reassign the incident, and tell the caller."},
        ],
    },
    {
        "name": MONTHLY_COST_REPORT,
        "description": "On the first of every month, each domain's finance officers hear that last month's "
                       "cost report is ready.",
        "trigger_type": "schedule",
        "trigger_config": {"cron": "0 8 1 * *", "timezone": "UTC"},
        "steps": [
            {"step": 1, "type": "notification", "name": "Cost report", "template": "monthly_cost_report",
             "recipients": ["role:finance_officer"]},
        ],
    },
]
