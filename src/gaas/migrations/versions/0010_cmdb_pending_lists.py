"""CMDB bulk writes: the GIN indexes on CI names and attributes keep a large pending list.

A GIN index with fastupdate appends a new row's entries to a pending list and merges that list
into the index in bulk, sorted, when it outgrows `gin_pending_list_limit` (4 MB by default), by
VACUUM, or by gin_clean_pending_list(). With the default, a discovery import merged every few
thousand rows, inline, entry by entry; with a large limit it only appends, and the worker
merges the list in the background (`gaas_cmdb.merge_pending_index_entries()`, every minute).
Queries stay exact meanwhile: a GIN scan reads the pending list too (a little slower while it
is long). The identity index keeps fastupdate off: an import looks up keys it has just added.

Revision ID: 0010_cmdb_pending_lists
Revises: 0009_servicenow
Create Date: 2026-11-27
"""

from alembic import op

from gaas.migrations.helpers import definer_function

revision = "0010_cmdb_pending_lists"
down_revision = "0009_servicenow"
branch_labels = None
depends_on = None

M = "gaas_cmdb"
INDEXES = ("idx_cis_name_trgm", "idx_cis_attributes")
# kB: 100,000 CIs append about 31 MB in all (measured by the bench); a million-CI import fits too.
PENDING_LIST_LIMIT = 1024 * 1024


def upgrade() -> None:
    for index in INDEXES:
        op.execute(f"ALTER INDEX {M}.{index} SET (fastupdate = on, gin_pending_list_limit = {PENDING_LIST_LIMIT})")
    merged = " + ".join(f"gin_clean_pending_list('{M}.{index}'::regclass)" for index in INDEXES)
    # Definer: gin_clean_pending_list needs the index's owner; the worker acts as the app role.
    definer_function(f"{M}.merge_pending_index_entries()", f"""
CREATE FUNCTION {M}.merge_pending_index_entries() RETURNS bigint
LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    SELECT {merged}
$$""")


def downgrade() -> None:
    op.execute(f"DROP FUNCTION IF EXISTS {M}.merge_pending_index_entries()")
    for index in INDEXES:
        op.execute(f"ALTER INDEX {M}.{index} RESET (fastupdate, gin_pending_list_limit)")
