"""Knowledge base (gaas_knowledge) and global search.

The specification names the Knowledge Base service and its schema but gives it no tables; they
follow the base-table pattern of the others (see docs/architecture.md, "Knowledge base"):
- articles: one row per article (number KB…), holding the content readers get (the published
  version, or the first draft until there is one) and its full-text vector;
- article_versions: every version of the content, with its review (draft → review → published
  → superseded, or discarded);
- article_links (services, CIs, problems), article_incidents (the incidents an article solved),
  article_feedback (helpful or not, comments), article_stats (counters, written only by the
  functions and triggers below);
- search_settings: the text-search language of each domain (NULL domain: the platform default).

Search: every searchable table gets a `search_vector` kept by a trigger (the language comes
from the row's domain, so it cannot be a generated column): record numbers and codes through
the `simple` configuration, titles weighted A, summaries and keywords B, categories C, bodies D.
CIs are searched by name and number through their existing trigram indexes.

Revision ID: 0006_knowledge
Revises: 0005_workflow
Create Date: 2026-11-29
"""

from alembic import op

from gaas.migrations.helpers import (
    app_role,
    base_columns,
    definer_function,
    enable_domain_rls,
    grant,
    number_default,
    number_sequence,
    q,
)

revision = "0006_knowledge"
down_revision = "0005_workflow"
branch_labels = None
depends_on = None

K = "gaas_knowledge"
S = "gaas_service_catalog"
I = "gaas_incident_mgmt"  # noqa: E741 - the module's schema, as in the other migrations
C = "gaas_change_mgmt"
SYSTEM_USER = "00000000-0000-7000-8000-000000000000"

# Full-text matching (tsvector @@ tsquery) cannot reveal a row through an error or side effect;
# marked LEAKPROOF, row-level security lets the GIN indexes serve it (see migrations.helpers).
LEAKPROOF_TS = """
DO $$
BEGIN
    IF (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) THEN
        ALTER FUNCTION pg_catalog.ts_match_vq(tsvector, tsquery) __MARK__;
    ELSE
        RAISE WARNING 'not a superuser: full-text filters will not use indexes under RLS';
    END IF;
END
$$"""

# (schema, table, trigger columns, the vector from NEW.* with `cfg` the row's language)
SEARCHED = {
    (S, "services"): ("domain, number, name, description", """
        setweight(to_tsvector('simple', coalesce(NEW.number, '')), 'A') ||
        setweight(to_tsvector(cfg, coalesce(NEW.name, '')), 'A') ||
        setweight(to_tsvector(cfg, coalesce(NEW.description, '')), 'D')"""),
    (I, "incidents"): ("domain, number, short_description, description, category, subcategory, resolution_notes", """
        setweight(to_tsvector('simple', coalesce(NEW.number, '')), 'A') ||
        setweight(to_tsvector(cfg, coalesce(NEW.short_description, '')), 'A') ||
        setweight(to_tsvector('simple', concat_ws(' ', NEW.category, NEW.subcategory)), 'C') ||
        setweight(to_tsvector(cfg, concat_ws(' ', NEW.description, NEW.resolution_notes)), 'D')"""),
    (I, "problems"): ("domain, number, short_description, description, root_cause, workaround, permanent_fix", """
        setweight(to_tsvector('simple', coalesce(NEW.number, '')), 'A') ||
        setweight(to_tsvector(cfg, coalesce(NEW.short_description, '')), 'A') ||
        setweight(to_tsvector(cfg, concat_ws(' ', NEW.root_cause, NEW.workaround)), 'B') ||
        setweight(to_tsvector(cfg, concat_ws(' ', NEW.description, NEW.permanent_fix)), 'D')"""),
    (C, "changes"): ("domain, number, short_description, description", """
        setweight(to_tsvector('simple', coalesce(NEW.number, '')), 'A') ||
        setweight(to_tsvector(cfg, coalesce(NEW.short_description, '')), 'A') ||
        setweight(to_tsvector(cfg, coalesce(NEW.description, '')), 'D')"""),
    (K, "articles"): ("domain, number, title, summary, keywords, category, body_text", """
        setweight(to_tsvector('simple', coalesce(NEW.number, '')), 'A') ||
        setweight(to_tsvector(cfg, NEW.title), 'A') ||
        setweight(to_tsvector(cfg, concat_ws(' ', NEW.summary, array_to_string(NEW.keywords, ' '))), 'B') ||
        setweight(to_tsvector('simple', array_to_string(NEW.keywords, ' ')), 'B') ||
        setweight(to_tsvector(cfg, coalesce(NEW.category, '')), 'C') ||
        setweight(to_tsvector(cfg, NEW.body_text), 'D')"""),
}


def upgrade() -> None:
    _types()
    _search_settings()
    _articles()
    _versions()
    _links_feedback_stats()
    for (schema, table), (columns, vector) in SEARCHED.items():
        _searchable(schema, table, columns, vector)
    op.execute(LEAKPROOF_TS.replace("__MARK__", "LEAKPROOF"))


def _types() -> None:
    op.execute(f"CREATE TYPE {K}.article_status AS ENUM ('draft', 'review', 'published', 'retired')")
    op.execute(f"CREATE TYPE {K}.article_version_status AS ENUM "
               "('draft', 'review', 'published', 'superseded', 'discarded')")
    op.execute(f"CREATE TYPE {K}.article_audience AS ENUM ('agents', 'everyone')")
    op.execute(f"CREATE TYPE {K}.article_kind AS ENUM ('article', 'known_error')")
    op.execute(f"CREATE TYPE {K}.article_link_type AS ENUM ('service', 'ci', 'problem')")


def _search_settings() -> None:
    op.execute(f"""
CREATE TABLE {K}.search_settings (
{base_columns()},
    -- a text search configuration (pg_ts_config): english, french, simple, ...
    language VARCHAR(63) NOT NULL DEFAULT 'english'
)""")
    op.execute(f"CREATE UNIQUE INDEX uq_search_settings_domain ON {K}.search_settings (domain) NULLS NOT DISTINCT "
               "WHERE deleted_at IS NULL")
    op.execute(f"CREATE INDEX idx_search_settings_created_at ON {K}.search_settings(created_at)")
    enable_domain_rls(K, "search_settings")
    grant(K, "search_settings", "SELECT, INSERT, UPDATE")
    op.execute(f"INSERT INTO {K}.search_settings (domain, language, created_by, updated_by) "
               f"VALUES (NULL, 'english', '{SYSTEM_USER}', '{SYSTEM_USER}')")
    # The language of a domain's documents: read by the triggers of every searchable table, as
    # whoever writes the row (so a definer, to be independent of that writer's domains).
    definer_function(f"{K}.search_config(text)", f"""
CREATE FUNCTION {K}.search_config(p_domain text) RETURNS regconfig
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    -- (to_regconfig() would read better, but PostgreSQL 15 lacks it)
    SELECT coalesce(
        (SELECT c.oid::regconfig FROM {K}.search_settings s JOIN pg_catalog.pg_ts_config c ON c.cfgname = s.language
         WHERE s.domain = p_domain AND s.deleted_at IS NULL),
        (SELECT c.oid::regconfig FROM {K}.search_settings s JOIN pg_catalog.pg_ts_config c ON c.cfgname = s.language
         WHERE s.domain IS NULL AND s.deleted_at IS NULL),
        'pg_catalog.english'::regconfig)
$$""")


def _articles() -> None:
    number_sequence(K, "article_number_seq")
    op.execute(f"""
CREATE TABLE {K}.articles (
{base_columns()},
    number VARCHAR(50) UNIQUE NOT NULL DEFAULT {number_default(K, "article_number_seq", "KB")},
    kind {K}.article_kind NOT NULL DEFAULT 'article',
    status {K}.article_status NOT NULL DEFAULT 'draft',
    audience {K}.article_audience NOT NULL DEFAULT 'everyone',
    -- The content readers get: the published version's (the first draft's until one is published).
    title VARCHAR(200) NOT NULL,
    summary VARCHAR(1000),
    body TEXT NOT NULL,              -- Markdown, as written
    body_html TEXT NOT NULL,         -- rendered and sanitised
    body_text TEXT NOT NULL,         -- plain text: search and snippets
    category VARCHAR(100),
    keywords TEXT[] NOT NULL DEFAULT '{{}}',
    author_id UUID NOT NULL,         -- who answers for the article (its first author)
    problem_id UUID,                 -- a known error's problem (gaas_incident_mgmt, checked by that module)
    published_version INTEGER,       -- the version readers get
    latest_version INTEGER NOT NULL DEFAULT 1,
    pending_version INTEGER,         -- the version in draft or review, if any
    valid_to TIMESTAMPTZ,            -- retired automatically once passed
    published_at TIMESTAMPTZ,
    published_by UUID,
    retired_at TIMESTAMPTZ,
    retired_by UUID,
    retirement_reason VARCHAR(500),
    search_vector TSVECTOR,
    CONSTRAINT chk_article_title CHECK (btrim(title) <> ''),
    CONSTRAINT chk_article_published CHECK (status IN ('draft', 'review') OR
                                            (published_version IS NOT NULL AND published_at IS NOT NULL)),
    CONSTRAINT chk_article_unpublished CHECK (status NOT IN ('draft', 'review') OR published_version IS NULL),
    CONSTRAINT chk_article_retired CHECK ((status = 'retired') = (retired_at IS NOT NULL AND retired_by IS NOT NULL)),
    CONSTRAINT chk_article_known_error CHECK (kind <> 'known_error' OR problem_id IS NOT NULL),
    CONSTRAINT chk_article_versions CHECK (latest_version >= 1 AND published_version <= latest_version
                                           AND pending_version <= latest_version)
)""")
    op.execute(f"CREATE INDEX idx_articles_domain ON {K}.articles(domain) WHERE deleted_at IS NULL")
    op.execute(f"CREATE INDEX idx_articles_created_at ON {K}.articles(created_at)")
    op.execute(f"CREATE INDEX idx_articles_status ON {K}.articles(status) WHERE deleted_at IS NULL")
    # Domain first (btree_gin): a reader of one domain is served from that domain's entries, not from
    # every domain's rows filtered one by one by row-level security; global articles have their own.
    op.execute(f"CREATE INDEX idx_articles_search ON {K}.articles USING gin(domain, search_vector)")
    op.execute(f"CREATE INDEX idx_articles_search_global ON {K}.articles USING gin(search_vector) "
               "WHERE domain IS NULL")
    op.execute(f"CREATE INDEX idx_articles_title_trgm ON {K}.articles USING gin(domain, title gin_trgm_ops)")
    op.execute(f"CREATE INDEX idx_articles_title_trgm_global ON {K}.articles USING gin(title gin_trgm_ops) "
               "WHERE domain IS NULL")
    op.execute(f"CREATE INDEX idx_articles_valid_to ON {K}.articles(valid_to) "
               "WHERE status = 'published' AND valid_to IS NOT NULL AND deleted_at IS NULL")
    op.execute(f"CREATE INDEX idx_articles_problem ON {K}.articles(problem_id) WHERE problem_id IS NOT NULL")
    # One live known-error article per problem.
    op.execute(f"CREATE UNIQUE INDEX uq_article_known_error ON {K}.articles(problem_id) "
               "WHERE kind = 'known_error' AND deleted_at IS NULL")
    enable_domain_rls(K, "articles")  # global (NULL-domain) articles are readable by everyone
    grant(K, "articles", "SELECT, INSERT, UPDATE")


def _versions() -> None:
    op.execute(f"""
CREATE TABLE {K}.article_versions (
{base_columns()},
    article_id UUID NOT NULL,
    version_number INTEGER NOT NULL,
    status {K}.article_version_status NOT NULL DEFAULT 'draft',
    title VARCHAR(200) NOT NULL,
    summary VARCHAR(1000),
    body TEXT NOT NULL,
    body_html TEXT NOT NULL,
    body_text TEXT NOT NULL,
    category VARCHAR(100),
    keywords TEXT[] NOT NULL DEFAULT '{{}}',
    audience {K}.article_audience NOT NULL,
    change_note VARCHAR(1000),
    author_id UUID NOT NULL,                     -- who opened this version
    contributors UUID[] NOT NULL DEFAULT '{{}}',   -- everyone who wrote its content
    reviewer_id UUID,                            -- the reviewer asked for on submission
    submitted_at TIMESTAMPTZ,
    submitted_by UUID,
    reviewed_at TIMESTAMPTZ,
    reviewed_by UUID,
    review_comment TEXT,
    published_at TIMESTAMPTZ,
    published_by UUID,
    CONSTRAINT fk_article_version_article FOREIGN KEY (article_id) REFERENCES {K}.articles(id),
    CONSTRAINT uq_article_version UNIQUE (article_id, version_number),
    CONSTRAINT chk_article_version_number CHECK (version_number >= 1),
    CONSTRAINT chk_article_version_title CHECK (btrim(title) <> ''),
    -- the reviewer is never one of the authors, whatever writes the row
    CONSTRAINT chk_article_version_reviewer CHECK (reviewed_by IS NULL OR reviewed_by <> ALL (contributors)),
    CONSTRAINT chk_article_version_published CHECK (
        status NOT IN ('published', 'superseded') OR (published_at IS NOT NULL AND published_by IS NOT NULL
                                                      AND reviewed_by IS NOT NULL))
)""")
    op.execute(f"CREATE UNIQUE INDEX uq_article_open_version ON {K}.article_versions(article_id) "
               "WHERE status IN ('draft', 'review')")
    op.execute(f"CREATE UNIQUE INDEX uq_article_published_version ON {K}.article_versions(article_id) "
               "WHERE status = 'published'")
    op.execute(f"CREATE INDEX idx_article_versions_domain ON {K}.article_versions(domain) WHERE deleted_at IS NULL")
    op.execute(f"CREATE INDEX idx_article_versions_created_at ON {K}.article_versions(created_at)")
    op.execute(f"CREATE INDEX idx_article_versions_review ON {K}.article_versions(reviewer_id) "
               "WHERE status = 'review'")
    enable_domain_rls(K, "article_versions")
    grant(K, "article_versions", "SELECT, INSERT, UPDATE")


def _links_feedback_stats() -> None:
    # Links to services, CIs and problems (other schemas: checked by their modules when written).
    op.execute(f"""
CREATE TABLE {K}.article_links (
    id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    domain VARCHAR(100),
    article_id UUID NOT NULL,
    target_type {K}.article_link_type NOT NULL,
    target_id UUID NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT NOW(),
    created_by UUID NOT NULL,
    CONSTRAINT fk_article_link_article FOREIGN KEY (article_id) REFERENCES {K}.articles(id) ON DELETE CASCADE,
    CONSTRAINT uq_article_link UNIQUE (article_id, target_type, target_id)
)""")
    op.execute(f"CREATE INDEX idx_article_links_target ON {K}.article_links(target_type, target_id)")
    enable_domain_rls(K, "article_links")
    grant(K, "article_links", "SELECT, INSERT, DELETE")

    # The incidents an article solved (domain: the incident's), counted for ranking.
    op.execute(f"""
CREATE TABLE {K}.article_incidents (
    id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    domain VARCHAR(100) NOT NULL,
    article_id UUID NOT NULL,
    incident_id UUID NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT NOW(),
    created_by UUID NOT NULL,
    CONSTRAINT fk_article_incident_article FOREIGN KEY (article_id) REFERENCES {K}.articles(id) ON DELETE CASCADE,
    CONSTRAINT uq_article_incident UNIQUE (article_id, incident_id)
)""")
    op.execute(f"CREATE INDEX idx_article_incidents_incident ON {K}.article_incidents(incident_id)")
    enable_domain_rls(K, "article_incidents", global_rows_readable=False)
    grant(K, "article_incidents", "SELECT, INSERT, DELETE")

    # Feedback: one per reader and article (they may change it). Its domain is the article's, or
    # for a global article the reader's home domain (where the reader can write).
    op.execute(f"""
CREATE TABLE {K}.article_feedback (
{base_columns()},
    article_id UUID NOT NULL,
    article_version INTEGER,
    user_id UUID NOT NULL,
    helpful BOOLEAN,
    comment TEXT,
    CONSTRAINT fk_article_feedback_article FOREIGN KEY (article_id) REFERENCES {K}.articles(id) ON DELETE CASCADE,
    CONSTRAINT chk_article_feedback_content CHECK (helpful IS NOT NULL OR coalesce(btrim(comment), '') <> '')
)""")
    op.execute(f"CREATE UNIQUE INDEX uq_article_feedback_user ON {K}.article_feedback(article_id, user_id) "
               "WHERE deleted_at IS NULL")
    op.execute(f"CREATE INDEX idx_article_feedback_domain ON {K}.article_feedback(domain) WHERE deleted_at IS NULL")
    op.execute(f"CREATE INDEX idx_article_feedback_created_at ON {K}.article_feedback(created_at)")
    enable_domain_rls(K, "article_feedback")
    grant(K, "article_feedback", "SELECT, INSERT, UPDATE")

    # Counters: read by anyone who sees the article, written only by the definers below, so that a
    # reader of a global article can count a view or a vote without write access to the article.
    op.execute(f"""
CREATE TABLE {K}.article_stats (
    article_id UUID PRIMARY KEY,
    domain VARCHAR(100),
    view_count BIGINT NOT NULL DEFAULT 0,
    helpful_count INTEGER NOT NULL DEFAULT 0,
    not_helpful_count INTEGER NOT NULL DEFAULT 0,
    solved_count INTEGER NOT NULL DEFAULT 0,
    last_viewed_at TIMESTAMPTZ,
    CONSTRAINT fk_article_stats_article FOREIGN KEY (article_id) REFERENCES {K}.articles(id) ON DELETE CASCADE,
    CONSTRAINT chk_article_stats_counts CHECK (view_count >= 0 AND helpful_count >= 0 AND not_helpful_count >= 0
                                               AND solved_count >= 0)
)""")
    enable_domain_rls(K, "article_stats")
    grant(K, "article_stats", "SELECT")

    definer_function(f"{K}.article_stats_row()", f"""
CREATE FUNCTION {K}.article_stats_row() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    INSERT INTO {K}.article_stats (article_id, domain) VALUES (NEW.id, NEW.domain);
    RETURN NULL;
END
$$""")
    op.execute(f"CREATE TRIGGER article_stats_row AFTER INSERT ON {K}.articles "
               f"FOR EACH ROW EXECUTE FUNCTION {K}.article_stats_row()")

    # Increments, not recounts: concurrent votes commute.
    definer_function(f"{K}.count_feedback()", f"""
CREATE FUNCTION {K}.count_feedback() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v_helpful integer := 0;
    v_not integer := 0;
BEGIN
    IF TG_OP IN ('INSERT', 'UPDATE') AND NEW.deleted_at IS NULL AND NEW.helpful IS NOT NULL THEN
        IF NEW.helpful THEN v_helpful := v_helpful + 1; ELSE v_not := v_not + 1; END IF;
    END IF;
    IF TG_OP IN ('UPDATE', 'DELETE') AND OLD.deleted_at IS NULL AND OLD.helpful IS NOT NULL THEN
        IF OLD.helpful THEN v_helpful := v_helpful - 1; ELSE v_not := v_not - 1; END IF;
    END IF;
    IF v_helpful <> 0 OR v_not <> 0 THEN
        UPDATE {K}.article_stats SET helpful_count = helpful_count + v_helpful,
                                     not_helpful_count = not_helpful_count + v_not
        WHERE article_id = coalesce(NEW.article_id, OLD.article_id);
    END IF;
    RETURN NULL;
END
$$""")
    op.execute(f"CREATE TRIGGER count_feedback AFTER INSERT OR UPDATE OR DELETE ON {K}.article_feedback "
               f"FOR EACH ROW EXECUTE FUNCTION {K}.count_feedback()")

    definer_function(f"{K}.count_solved()", f"""
CREATE FUNCTION {K}.count_solved() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        UPDATE {K}.article_stats SET solved_count = solved_count + 1 WHERE article_id = NEW.article_id;
    ELSE
        UPDATE {K}.article_stats SET solved_count = solved_count - 1 WHERE article_id = OLD.article_id;
    END IF;
    RETURN NULL;
END
$$""")
    op.execute(f"CREATE TRIGGER count_solved AFTER INSERT OR DELETE ON {K}.article_incidents "
               f"FOR EACH ROW EXECUTE FUNCTION {K}.count_solved()")

    # A view is counted for a reader who sees the article (row-level security's own test).
    definer_function(f"{K}.record_article_view(uuid)", f"""
CREATE FUNCTION {K}.record_article_view(p_article uuid) RETURNS bigint
LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    UPDATE {K}.article_stats s SET view_count = s.view_count + 1, last_viewed_at = now()
    FROM {K}.articles a
    WHERE s.article_id = p_article AND a.id = p_article AND a.deleted_at IS NULL AND gaas_iam.sees_row(a.domain)
    RETURNING s.view_count
$$""")


def _searchable(schema: str, table: str, columns: str, vector: str) -> None:
    """`search_vector` on `schema.table`, kept by a trigger, on a GIN index."""
    function = f"{schema}.{table}_search_vector"
    op.execute(f"ALTER TABLE {schema}.{table} ADD COLUMN IF NOT EXISTS search_vector TSVECTOR")
    op.execute(f"""
CREATE FUNCTION {function}() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    cfg regconfig := {K}.search_config(NEW.domain);
BEGIN
    NEW.search_vector := {vector};
    RETURN NEW;
END
$$""")
    op.execute(f"REVOKE ALL ON FUNCTION {function}() FROM PUBLIC")
    op.execute(f"GRANT EXECUTE ON FUNCTION {function}() TO {q(app_role())}")
    op.execute(f"CREATE TRIGGER search_vector BEFORE INSERT OR UPDATE OF {columns} ON {schema}.{table} "
               f"FOR EACH ROW EXECUTE FUNCTION {function}()")
    # Existing rows: touching a trigger column recomputes the vector.
    op.execute(f"UPDATE {schema}.{table} SET domain = domain")
    if table == "incidents":  # a million rows: domain first, as for articles
        op.execute(f"CREATE INDEX idx_{table}_search ON {schema}.{table} USING gin(domain, search_vector)")
    elif table != "articles":
        op.execute(f"CREATE INDEX idx_{table}_search ON {schema}.{table} USING gin(search_vector)")


def downgrade() -> None:
    op.execute(LEAKPROOF_TS.replace("__MARK__", "NOT LEAKPROOF"))
    for (schema, table), _ in SEARCHED.items():
        if table == "articles":
            continue
        op.execute(f"DROP TRIGGER IF EXISTS search_vector ON {schema}.{table}")
        op.execute(f"DROP FUNCTION IF EXISTS {schema}.{table}_search_vector()")
        op.execute(f"DROP INDEX IF EXISTS {schema}.idx_{table}_search")
        op.execute(f"ALTER TABLE {schema}.{table} DROP COLUMN IF EXISTS search_vector")
    for table in ("article_stats", "article_feedback", "article_incidents", "article_links", "article_versions",
                  "articles", "search_settings"):
        op.execute(f"DROP TABLE IF EXISTS {K}.{table} CASCADE")
    for function in ("record_article_view(uuid)", "count_solved()", "count_feedback()", "article_stats_row()",
                     "articles_search_vector()", "search_config(text)"):
        op.execute(f"DROP FUNCTION IF EXISTS {K}.{function}")
    op.execute(f"DROP SEQUENCE IF EXISTS {K}.article_number_seq")
    for enum in ("article_link_type", "article_kind", "article_audience", "article_version_status", "article_status"):
        op.execute(f"DROP TYPE IF EXISTS {K}.{enum}")
