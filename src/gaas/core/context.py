"""Who is acting, from where, and what they may do: the subject of every service call."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

# The built-in identity the platform acts as on its own (CLI administration, bootstrap, worker).
SYSTEM_USER_ID = uuid.UUID("00000000-0000-7000-8000-000000000000")
SYSTEM_USER_EMAIL = "system@gaas.local"


@dataclass(frozen=True)
class RequestInfo:
    """Where an action came from; copied into every audit row."""

    request_id: str | None = None
    ip_address: str | None = None
    user_agent: str | None = None
    entry_point: str = "api"


@dataclass(frozen=True)
class Grant:
    """One role assignment: a set of permissions valid in a scope.

    scope_type 'global' applies in every domain the user may see; 'domain' in one domain;
    'service' to one service and its sub-tree (checked by the catalog with the service's path).
    """

    permissions: frozenset[str]
    scope_type: str = "global"
    scope_domain: str | None = None
    scope_id: uuid.UUID | None = None


@dataclass(frozen=True)
class Actor:
    user_id: uuid.UUID
    email: str
    home_domain: str | None
    # None: every domain (a global user); otherwise the domain codes this actor may see.
    visible_domains: frozenset[str] | None
    grants: tuple[Grant, ...] = ()
    read_only: bool = False
    request: RequestInfo = field(default_factory=RequestInfo)

    @property
    def is_global(self) -> bool:
        return self.visible_domains is None

    def sees(self, domain: str | None) -> bool:
        """Mirror of the database's gaas_iam.sees_domain(): a NULL domain (global record) is for global users."""
        if self.is_global:
            return True
        return domain is not None and domain in (self.visible_domains or ())

    def can(self, permission: str, domain: str | None, service_path: tuple[uuid.UUID, ...] = ()) -> bool:
        """May this actor use `permission` on a record of `domain` (and of that service path)?"""
        if self.read_only and not permission.endswith(".view"):
            return False
        if not self.sees(domain):
            return False
        for grant in self.grants:
            if permission not in grant.permissions:
                continue
            if grant.scope_type == "global":
                return True
            if grant.scope_type == "domain" and domain is not None and grant.scope_domain == domain:
                return True
            if grant.scope_type == "service" and grant.scope_id in service_path:
                return True
        return False

    def can_anywhere(self, permission: str) -> bool:
        """Holds `permission` in at least one scope (used to filter lists, not to authorise writes)."""
        if self.read_only and not permission.endswith(".view"):
            return False
        return any(permission in g.permissions for g in self.grants)

    def domains_with(self, permission: str) -> frozenset[str] | None:
        """Domains where `permission` holds for every record; None means all visible domains."""
        result: set[str] = set()
        for grant in self.grants:
            if permission not in grant.permissions:
                continue
            if grant.scope_type == "global":
                return self.visible_domains
            if grant.scope_type == "domain" and grant.scope_domain:
                result.add(grant.scope_domain)
        return frozenset(result)
