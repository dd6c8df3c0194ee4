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


def number_sequence(schema: str, name: str) -> None:
    """A sequence for human numbers (SRV0000001): unique, never reused, gap-tolerant."""
    op.execute(f"CREATE SEQUENCE {schema}.{name}")
    op.execute(f"GRANT USAGE ON SEQUENCE {schema}.{name} TO {q(app_role())}")


def number_default(schema: str, sequence: str, prefix: str) -> str:
    return f"'{prefix}' || lpad(nextval('{schema}.{sequence}')::text, 7, '0')"


def partition_maintainer(schema: str, table: str, column: str, unit: str) -> None:
    """`{schema}.ensure_{table}_partitions(back, ahead)`: range partitions by `unit` ('month' or
    'year') around today, built detached, filled with whatever the DEFAULT partition caught for
    that range, then attached. A definer function, so the worker can keep partitions ahead."""
    fmt = "YYYY_MM" if unit == "month" else "YYYY"
    fn = f"{schema}.ensure_{table}_partitions"
    definer_function(f"{fn}(integer, integer)", f"""
CREATE FUNCTION {fn}(p_back integer, p_ahead integer) RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp SET TimeZone = 'UTC' AS $$
DECLARE
    v_start date;
    v_from text;
    v_to text;
    v_name text;
    v_created integer := 0;
BEGIN
    PERFORM pg_advisory_xact_lock(hashtext('{fn}'));
    -- Bounded: a caller cannot make this create thousands of tables.
    FOR i IN -least(greatest(p_back, 0), 240)..least(greatest(p_ahead, 0), 240) LOOP
        v_start := (date_trunc('{unit}', now()) + make_interval({unit}s => i))::date;
        v_name := '{table}_' || to_char(v_start, '{fmt}');
        CONTINUE WHEN to_regclass('{schema}.' || v_name) IS NOT NULL;
        v_from := quote_literal(v_start::text);
        v_to := quote_literal((v_start + interval '1 {unit}')::date::text);
        EXECUTE format('CREATE TABLE {schema}.%I (LIKE {schema}.{table} INCLUDING DEFAULTS INCLUDING CONSTRAINTS)', v_name);
        EXECUTE format('WITH moved AS (DELETE FROM {schema}.{table}_default WHERE {column} >= %s AND {column} < %s RETURNING *) '
                       'INSERT INTO {schema}.%I SELECT * FROM moved', v_from, v_to, v_name);
        EXECUTE format('ALTER TABLE {schema}.{table} ATTACH PARTITION {schema}.%I FOR VALUES FROM (%s) TO (%s)',
                       v_name, v_from, v_to);
        v_created := v_created + 1;
    END LOOP;
    RETURN v_created;
END
$$""")


# Row-level security lets an index serve a filter only when its operator is LEAKPROOF (otherwise
# the policy must run first, on every row, and the index is useless). These operators cannot
# reveal a row through an error or a side effect: identity lookup (&&), attribute containment (@>)
# and trigram similarity (%, <%, %>). Marking them is database-wide and needs a superuser owner;
# without one it is skipped (those filters then scan). A dump and restore drops the marks:
# `gaas db upgrade` applies them again every time.
LEAKPROOF_FUNCTIONS = ("arrayoverlap(anyarray, anyarray)", "jsonb_contains(jsonb, jsonb)",
                       "similarity_op(text, text)", "word_similarity_op(text, text)",
                       "word_similarity_commutator_op(text, text)", "ts_match_vq(tsvector, tsquery)")
LEAKPROOF_SQL = """
DO $$
DECLARE f text;
BEGIN
    IF (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) THEN
        FOREACH f IN ARRAY ARRAY[__FUNCTIONS__] LOOP
            IF to_regprocedure(f) IS NOT NULL THEN
                EXECUTE format('ALTER FUNCTION %s LEAKPROOF', to_regprocedure(f));
            END IF;
        END LOOP;
    ELSE
        RAISE WARNING 'not a superuser: filters on && @> and trigram similarity will not use indexes under RLS';
    END IF;
END
$$""".replace("__FUNCTIONS__", ", ".join(f"'{f}'" for f in LEAKPROOF_FUNCTIONS))
