"""Workflow engine and events: definitions, instances, approvals, tasks, notifications, webhooks
and the worker that runs them (gaas_workflow)."""
