"""ServiceNow's value formats and the numeric codes its clients expect, both ways."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime

from gaas.changes.models import ChangeRisk, ChangeStatus
from gaas.cmdb.models import CIRelationshipType, CIStatus, Environment
from gaas.incidents.models import HoldReason, Impact, IncidentStatus, Priority, ProblemStatus, Urgency
from gaas.knowledge.models import ArticleStatus

SN_TIME = "%Y-%m-%d %H:%M:%S"
_HEX32 = re.compile(r"^[0-9a-fA-F]{32}$")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_DATETIME = re.compile(r"^\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}(:\d{2})?$")

# Stable identifiers for things that are names in GaaS (assignment groups, relationship types).
GROUP_NAMESPACE = uuid.UUID("5a9d7c1e-3b0f-5e8e-9d0b-6f3a1c2b4d70")
REL_TYPE_NAMESPACE = uuid.UUID("0d7f1b2c-8e4a-5c3d-a1f0-2b9c8d7e6f51")


def sys_id(value: uuid.UUID | None) -> str:
    return value.hex if value is not None else ""


def is_sys_id(value: str) -> bool:
    text = value.strip()
    return bool(_HEX32.match(text)) or (len(text) == 36 and _HEX32.match(text.replace("-", "")) is not None)


def parse_sys_id(value: str) -> uuid.UUID:
    """A ServiceNow sys_id (32 hex digits) or a dashed UUID."""
    if not is_sys_id(str(value)):
        raise ValueError(f"'{value}' is not a sys_id")
    return uuid.UUID(str(value).strip().replace("-", ""))


def sn_time(value: datetime | None) -> str:
    return value.astimezone(UTC).strftime(SN_TIME) if value is not None else ""


def parse_time(value: str) -> datetime:
    """ServiceNow's "YYYY-MM-DD HH:MM:SS" (UTC), a date, or ISO 8601."""
    text = str(value).strip()
    if _DATE.match(text):
        return datetime.fromisoformat(text).replace(tzinfo=UTC)
    if _DATETIME.match(text):
        return datetime.fromisoformat(text.replace(" ", "T")).replace(tzinfo=UTC)
    parsed = datetime.fromisoformat(text)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def parse_bool(value: str | bool) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "1", "yes"):
        return True
    if text in ("false", "0", "no"):
        return False
    raise ValueError(f"'{value}' is not true or false")


def group_sys_id(name: str) -> str:
    return uuid.uuid5(GROUP_NAMESPACE, name).hex


# ---- incident ------------------------------------------------------------------------------------

# state: 1 New, 2 In Progress, 3 On Hold (in progress with a hold reason), 6 Resolved, 7 Closed, 8 Canceled.
INCIDENT_STATES = {"1": "New", "2": "In Progress", "3": "On Hold", "6": "Resolved", "7": "Closed", "8": "Canceled"}
INCIDENT_STATE_OF = {IncidentStatus.new: "1", IncidentStatus.in_progress: "2", IncidentStatus.resolved: "6",
                     IncidentStatus.closed: "7", IncidentStatus.cancelled: "8"}
INCIDENT_STATUS_OF = {"1": IncidentStatus.new, "2": IncidentStatus.in_progress, "3": IncidentStatus.in_progress,
                      "6": IncidentStatus.resolved, "7": IncidentStatus.closed, "8": IncidentStatus.cancelled}
HOLD_REASONS = {"1": "Awaiting Caller", "3": "Awaiting Problem", "4": "Awaiting Vendor", "5": "Awaiting Change"}
HOLD_CODE_OF = {HoldReason.awaiting_caller: "1", HoldReason.awaiting_problem: "3", HoldReason.awaiting_vendor: "4",
                HoldReason.awaiting_change: "5"}
HOLD_REASON_OF = {code: reason for reason, code in HOLD_CODE_OF.items()}

# priority 1 Critical .. 5 Planning; GaaS has four, so 5 reads as low.
PRIORITIES = {"1": "1 - Critical", "2": "2 - High", "3": "3 - Moderate", "4": "4 - Low", "5": "5 - Planning"}
PRIORITY_CODE_OF = {Priority.critical: "1", Priority.high: "2", Priority.medium: "3", Priority.low: "4"}
PRIORITY_OF = {"1": Priority.critical, "2": Priority.high, "3": Priority.medium, "4": Priority.low, "5": Priority.low}

LEVELS = {"1": "1 - High", "2": "2 - Medium", "3": "3 - Low"}
IMPACT_CODE_OF = {Impact.high: "1", Impact.medium: "2", Impact.low: "3"}
IMPACT_OF = {code: level for level, code in IMPACT_CODE_OF.items()}
URGENCY_CODE_OF = {Urgency.high: "1", Urgency.medium: "2", Urgency.low: "3"}
URGENCY_OF = {code: level for level, code in URGENCY_CODE_OF.items()}

# ---- problem (the states of ServiceNow's problem management since Madrid) ----------------------

PROBLEM_STATES = {"101": "New", "102": "Assess", "103": "Root Cause Analysis", "104": "Fix in Progress",
                  "106": "Resolved", "107": "Closed"}
PROBLEM_STATE_OF = {ProblemStatus.new: "101", ProblemStatus.investigating: "102",
                    ProblemStatus.root_cause_found: "103", ProblemStatus.fix_in_progress: "104",
                    ProblemStatus.resolved: "106", ProblemStatus.closed: "107"}
PROBLEM_STATUS_OF = {code: status for status, code in PROBLEM_STATE_OF.items()}
# Before Madrid: 1 Open, 2 Known Error, 3 Pending Change, 4 Closed/Resolved (imports only).
LEGACY_PROBLEM_STATUS_OF = {"1": ProblemStatus.new, "2": ProblemStatus.investigating,
                            "3": ProblemStatus.fix_in_progress, "4": ProblemStatus.closed}

# ---- change_request --------------------------------------------------------------------------------

CHANGE_STATES = {"-5": "New", "-4": "Assess", "-3": "Authorize", "-2": "Scheduled", "-1": "Implement",
                 "0": "Review", "3": "Closed", "4": "Canceled"}
CHANGE_STATE_OF = {ChangeStatus.draft: "-5", ChangeStatus.rejected: "-5", ChangeStatus.submitted: "-4",
                   ChangeStatus.under_review: "-3", ChangeStatus.approved: "-2", ChangeStatus.scheduled: "-2",
                   ChangeStatus.implementing: "-1", ChangeStatus.implemented: "0", ChangeStatus.closed: "3",
                   ChangeStatus.cancelled: "4"}
# Writing a state: where the change goes.
CHANGE_STATUS_OF = {"-5": ChangeStatus.draft, "-4": ChangeStatus.submitted, "-3": ChangeStatus.under_review,
                    "-2": ChangeStatus.scheduled, "-1": ChangeStatus.implementing, "0": ChangeStatus.implemented,
                    "3": ChangeStatus.closed, "4": ChangeStatus.cancelled}
APPROVALS = {"not requested": "Not Yet Requested", "requested": "Requested", "approved": "Approved",
             "rejected": "Rejected"}
APPROVAL_OF = {None: "not requested", "pending": "requested", "approved": "approved", "rejected": "rejected"}
RISKS = {"1": "Very High", "2": "High", "3": "Moderate", "4": "Low"}
RISK_CODE_OF = {ChangeRisk.high: "2", ChangeRisk.medium: "3", ChangeRisk.low: "4"}
RISK_OF = {"1": ChangeRisk.high, "2": ChangeRisk.high, "3": ChangeRisk.medium, "4": ChangeRisk.low}
CHANGE_TYPES = {"standard": "Standard", "normal": "Normal", "emergency": "Emergency"}
CLOSE_CODES = {"successful": "Successful", "successful_issues": "Successful with issues",
               "unsuccessful": "Unsuccessful"}

# ---- CMDB -----------------------------------------------------------------------------------------

# Class tables the Table API serves, and the GaaS class each holds.
CLASS_TABLES = {
    "cmdb_ci_server": "server",
    "cmdb_ci_vm_instance": "virtual_machine",
    "cmdb_ci_database": "database",
    "cmdb_ci_appl": "application",
    "cmdb_ci_netgear": "network_device",
    "cmdb_ci_storage_device": "storage",
    "cmdb_ci_lb": "load_balancer",
    "cmdb_ci_kubernetes_cluster": "container_cluster",
}
TABLE_OF_CLASS = {cls: table for table, cls in CLASS_TABLES.items()}
# Further ServiceNow classes an import (or a create on cmdb_ci) maps onto ours.
CLASS_ALIASES = {
    **CLASS_TABLES,
    "cmdb_ci_linux_server": "server", "cmdb_ci_win_server": "server", "cmdb_ci_unix_server": "server",
    "cmdb_ci_esx_server": "server", "cmdb_ci_aix_server": "server", "cmdb_ci_solaris_server": "server",
    "cmdb_ci_vmware_instance": "virtual_machine", "cmdb_ci_virtual_machine_object": "virtual_machine",
    "cmdb_ci_db_instance": "database", "cmdb_ci_db_mssql_instance": "database",
    "cmdb_ci_db_ora_instance": "database", "cmdb_ci_db_mysql_instance": "database",
    "cmdb_ci_db_postgresql_instance": "database", "cmdb_ci_db_db2_instance": "database",
    "cmdb_ci_app_server": "application", "cmdb_ci_web_server": "application", "cmdb_ci_application": "application",
    "cmdb_ci_ip_router": "network_device", "cmdb_ci_ip_switch": "network_device",
    "cmdb_ci_ip_firewall": "network_device", "cmdb_ci_storage_server": "storage", "cmdb_ci_san": "storage",
    "cmdb_ci_lb_bigip": "load_balancer", "cmdb_ci_lb_netscaler": "load_balancer",
    "cmdb_ci_kubernetes_cluster_node": "container_cluster",
    "cmdb_ci": "application",  # a bare configuration item: the class with no required attributes
}
DATABASE_ENGINES = {"cmdb_ci_db_mssql_instance": "mssql", "cmdb_ci_db_ora_instance": "oracle",
                    "cmdb_ci_db_mysql_instance": "mysql", "cmdb_ci_db_postgresql_instance": "postgresql",
                    "cmdb_ci_db_db2_instance": "db2"}

# install_status: 1 Installed, 3 In Maintenance, 7 Retired (and more GaaS does not distinguish).
INSTALL_STATUSES = {"1": "Installed", "2": "On Order", "3": "In Maintenance", "4": "Pending Install",
                    "5": "Pending Repair", "6": "In Stock", "7": "Retired", "8": "Stolen", "100": "Absent"}
INSTALL_STATUS_OF = {CIStatus.active: "1", CIStatus.inactive: "1", CIStatus.maintenance: "3",
                     CIStatus.retired: "7"}
OPERATIONAL_STATUSES = {"1": "Operational", "2": "Non-Operational", "3": "Repair in Progress",
                        "4": "DR Standby", "5": "Ready", "6": "Retired"}
OPERATIONAL_STATUS_OF = {CIStatus.active: "1", CIStatus.inactive: "2", CIStatus.maintenance: "3",
                         CIStatus.retired: "6"}
# Writing either code: the GaaS status it means.
CI_STATUS_OF_INSTALL = {"1": CIStatus.active, "2": CIStatus.inactive, "3": CIStatus.maintenance,
                        "4": CIStatus.inactive, "5": CIStatus.maintenance, "6": CIStatus.inactive,
                        "7": CIStatus.retired, "8": CIStatus.retired, "100": CIStatus.inactive}
CI_STATUS_OF_OPERATIONAL = {"1": CIStatus.active, "2": CIStatus.inactive, "3": CIStatus.maintenance,
                            "4": CIStatus.inactive, "5": CIStatus.active, "6": CIStatus.retired}
USED_FOR = {"Production": Environment.production, "Staging": Environment.staging, "QA": Environment.test,
            "Test": Environment.test, "Development": Environment.development}
USED_FOR_OF = {Environment.production: "Production", Environment.staging: "Staging", Environment.test: "Test",
               Environment.development: "Development"}

# Relationship types: ServiceNow's "parent verb::child verb" and which end is the parent.
REL_TYPE_NAMES = {
    CIRelationshipType.depends_on: "Depends on::Used by",
    CIRelationshipType.runs_on: "Runs on::Runs",
    CIRelationshipType.connects_to: "Connects to::Connected by",
    CIRelationshipType.manages: "Manages::Managed by",
    CIRelationshipType.part_of: "Contains::Contained by",
    CIRelationshipType.backed_up_by: "Backed up by::Backs up",
    CIRelationshipType.replicates_to: "Replicates to::Replicated by",
}
# part_of reads "the child is part of the parent": its source is ServiceNow's child.
PARENT_IS_TARGET = frozenset({CIRelationshipType.part_of})
# Names accepted on input: name -> (type, ServiceNow's parent is our source).
REL_TYPE_ALIASES: dict[str, tuple[CIRelationshipType, bool]] = {
    **{name: (t, t not in PARENT_IS_TARGET) for t, name in REL_TYPE_NAMES.items()},
    "Uses::Used by": (CIRelationshipType.depends_on, True),
    "Hosted on::Hosts": (CIRelationshipType.runs_on, True),
    "Virtualized by::Virtualizes": (CIRelationshipType.runs_on, True),
    "Members::Member of": (CIRelationshipType.part_of, False),
    "Cluster of::Cluster": (CIRelationshipType.part_of, False),
    "Managed by::Manages": (CIRelationshipType.manages, False),
    "Backs up::Backed up by": (CIRelationshipType.backed_up_by, False),
    "Replicated by::Replicates to": (CIRelationshipType.replicates_to, False),
    "Sends data to::Receives data from": (CIRelationshipType.connects_to, True),
    "IP Connection::IP Connection": (CIRelationshipType.connects_to, True),
}


def rel_type_sys_id(name: str) -> str:
    return uuid.uuid5(REL_TYPE_NAMESPACE, name).hex


REL_TYPE_BY_SYS_ID = {rel_type_sys_id(name): name for name in REL_TYPE_ALIASES}

# ---- knowledge --------------------------------------------------------------------------------------

WORKFLOW_STATES = {"draft": "Draft", "review": "Review", "published": "Published", "retired": "Retired"}
WORKFLOW_STATE_OF = {ArticleStatus.draft: "draft", ArticleStatus.review: "review",
                     ArticleStatus.published: "published", ArticleStatus.retired: "retired"}
