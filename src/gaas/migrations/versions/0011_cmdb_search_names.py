"""CMDB fuzzy search: the GiST trigram index moves off the CI table's write path.

Nearest-first name search needs a GiST trigram index (GIN cannot order by distance), and it was
the dearest of the CI table's twelve indexes to write. It now lives on `ci_search_names` (one row
per CI: id, domain, name), which triggers keep in step with every ordinary write. A discovery
import sets `gaas.defer_search_names` for its transaction instead: its new CIs skip the trigger
and are listed, a batch at a time, in `ci_search_names_pending`, which the worker folds into
`ci_search_names` in the background (`cmdb_search_names`, every few seconds). Search reads both:
nearest-first through the index, and the few pending CIs scored directly, so a CI is found the
moment its import commits.

Revision ID: 0011_cmdb_search_names
Revises: 0010_cmdb_pending_lists
Create Date: 2026-11-27
"""

from alembic import op

from gaas.migrations.helpers import enable_domain_rls, grant

revision = "0011_cmdb_search_names"
down_revision = "0010_cmdb_pending_lists"
branch_labels = None
depends_on = None

M = "gaas_cmdb"


def upgrade() -> None:
    # No CI may be written between the copy below and the triggers that keep the copy in step.
    op.execute(f"LOCK TABLE {M}.configuration_items IN SHARE ROW EXCLUSIVE MODE")
    op.execute(f"""
CREATE TABLE {M}.ci_search_names (
    ci_id UUID PRIMARY KEY REFERENCES {M}.configuration_items(id) ON DELETE CASCADE,
    domain VARCHAR(100),
    name VARCHAR(200) NOT NULL
)""")
    op.execute(f"INSERT INTO {M}.ci_search_names (ci_id, domain, name) "
               f"SELECT id, domain, name FROM {M}.configuration_items")
    op.execute(f"CREATE INDEX idx_ci_search_names_knn ON {M}.ci_search_names USING gist(name gist_trgm_ops)")
    op.execute(f"DROP INDEX {M}.idx_cis_name_trgm_knn")
    enable_domain_rls(M, "ci_search_names")
    grant(M, "ci_search_names", "SELECT, INSERT, UPDATE")

    # One row per import batch and domain: the CIs it created, not yet in ci_search_names.
    op.execute(f"""
CREATE TABLE {M}.ci_search_names_pending (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    domain VARCHAR(100),
    ci_ids UUID[] NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
)""")
    enable_domain_rls(M, "ci_search_names_pending")
    grant(M, "ci_search_names_pending", "SELECT, INSERT, UPDATE, DELETE")  # UPDATE: FOR UPDATE SKIP LOCKED

    # Invoker's rights: the name row is written under the same row-level security as the CI.
    op.execute(f"""
CREATE FUNCTION {M}.keep_search_name() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO {M}.ci_search_names (ci_id, domain, name) VALUES (NEW.id, NEW.domain, NEW.name)
    ON CONFLICT (ci_id) DO UPDATE SET domain = EXCLUDED.domain, name = EXCLUDED.name;
    RETURN NULL;
END
$$""")
    op.execute(f"""
CREATE TRIGGER search_name_on_insert AFTER INSERT ON {M}.configuration_items FOR EACH ROW
WHEN (current_setting('gaas.defer_search_names', true) IS DISTINCT FROM 'on')
EXECUTE FUNCTION {M}.keep_search_name()""")
    op.execute(f"""
CREATE TRIGGER search_name_on_update AFTER UPDATE OF name, domain ON {M}.configuration_items FOR EACH ROW
WHEN (OLD.name IS DISTINCT FROM NEW.name OR OLD.domain IS DISTINCT FROM NEW.domain)
EXECUTE FUNCTION {M}.keep_search_name()""")


def downgrade() -> None:
    op.execute(f"DROP TRIGGER IF EXISTS search_name_on_update ON {M}.configuration_items")
    op.execute(f"DROP TRIGGER IF EXISTS search_name_on_insert ON {M}.configuration_items")
    op.execute(f"DROP FUNCTION IF EXISTS {M}.keep_search_name()")
    op.execute(f"DROP TABLE IF EXISTS {M}.ci_search_names_pending")
    op.execute(f"DROP TABLE IF EXISTS {M}.ci_search_names")
    op.execute(f"CREATE INDEX idx_cis_name_trgm_knn ON {M}.configuration_items USING gist(name gist_trgm_ops)")
