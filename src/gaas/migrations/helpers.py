"""SQL building blocks every module's migrations reuse: the base-table columns, row-level
security on the domain column, and grants to the application role.

Migrations run as the owner role; the application role only ever gets the privileges
granted here, so it can never alter, disable or bypass what these helpers set up.
"""

from __future__ import annotations

from alembic import op

from gaas.core.settings import get_settings


def app_role() -> str:
    return get_settings().app_role


def q(identifier: str) -> str:
    """Quote one SQL identifier."""
    return '"' + identifier.replace('"', '""') + '"'


def base_columns(*, domain: str | None = "VARCHAR(100)") -> str:
    """The specification's base-table pattern, with timestamptz and gen_random_uuid()."""
    domain_line = f"    domain {domain},\n" if domain else ""
    return (
        "    id UUID PRIMARY KEY DEFAULT gen_random_uuid(),\n"
        f"{domain_line}"
        "    deleted_at TIMESTAMPTZ,\n"
        "    created_at TIMESTAMPTZ NOT NULL DEFAULT NOW(),\n"
        "    created_by UUID NOT NULL,\n"
        "    updated_at TIMESTAMPTZ NOT NULL DEFAULT NOW(),\n"
        "    updated_by UUID NOT NULL,\n"
        "    version INTEGER NOT NULL DEFAULT 1"
    )


def base_indexes(schema: str, table: str, short: str | None = None, *, domain: bool = True) -> None:
    short = short or table
    if domain:
        op.execute(f"CREATE INDEX idx_{short}_domain ON {schema}.{table}(domain) WHERE deleted_at IS NULL")
    op.execute(f"CREATE INDEX idx_{short}_created_at ON {schema}.{table}(created_at)")


def grant(schema: str, table: str, privileges: str) -> None:
    op.execute(f"GRANT {privileges} ON {schema}.{table} TO {q(app_role())}")


def enable_domain_rls(schema: str, table: str, *, column: str = "domain", global_rows_readable: bool = True) -> None:
    """Forced row-level security: a transaction sees and writes only rows of its domains.

    `global_rows_readable`: rows whose domain is NULL (global records) are readable by every
    acting user; they stay writable by global users only.
    """
    full = f"{schema}.{table}"
    read = "gaas_iam.sees_row" if global_rows_readable else "gaas_iam.sees_domain"
    op.execute(f"ALTER TABLE {full} ENABLE ROW LEVEL SECURITY")
    op.execute(f"ALTER TABLE {full} FORCE ROW LEVEL SECURITY")
    op.execute(f"CREATE POLICY {table}_select ON {full} FOR SELECT USING ({read}({column}))")
    op.execute(f"CREATE POLICY {table}_insert ON {full} FOR INSERT WITH CHECK (gaas_iam.writes_domain({column}))")
    op.execute(
        f"CREATE POLICY {table}_update ON {full} FOR UPDATE "
        f"USING (gaas_iam.writes_domain({column})) WITH CHECK (gaas_iam.writes_domain({column}))"
    )
    op.execute(f"CREATE POLICY {table}_delete ON {full} FOR DELETE USING (gaas_iam.writes_domain({column}))")


def enable_rls_by(schema: str, table: str, *, read: str, write: str) -> None:
    """Forced row-level security with explicit expressions, for tables without a domain column."""
    full = f"{schema}.{table}"
    op.execute(f"ALTER TABLE {full} ENABLE ROW LEVEL SECURITY")
    op.execute(f"ALTER TABLE {full} FORCE ROW LEVEL SECURITY")
    op.execute(f"CREATE POLICY {table}_select ON {full} FOR SELECT USING ({read})")
    op.execute(f"CREATE POLICY {table}_insert ON {full} FOR INSERT WITH CHECK ({write})")
    op.execute(f"CREATE POLICY {table}_update ON {full} FOR UPDATE USING ({write}) WITH CHECK ({write})")
    op.execute(f"CREATE POLICY {table}_delete ON {full} FOR DELETE USING ({write})")


def definer_function(signature: str, body: str) -> None:
    """A SECURITY DEFINER function with a fixed search_path, executable by the app role only."""
    op.execute(body)
    op.execute(f"REVOKE ALL ON FUNCTION {signature} FROM PUBLIC")
    op.execute(f"GRANT EXECUTE ON FUNCTION {signature} TO {q(app_role())}")
