"""CMDB health: what an administrator should fix, per domain and class.

One SQL pass computes, for every live CI, the flags below from the CI, its class (a domain's
own class of that name first) and its relationships; the summary counts them and the CI list
filters on them (`GET /cis?health=<flag>`)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

FLAGS = ("missing_required", "missing_recommended", "stale", "never_discovered", "orphan", "duplicate",
         "broken_links")

FLAGS_SQL = """
WITH classed AS (
    SELECT DISTINCT ON (ci.id) ci.id, ci.domain, ci.ci_class, ci.name, ci.environment, ci.attributes,
           ci.service_id, ci.last_discovered_at,
           coalesce(c.attribute_schema -> 'required', '[]'::jsonb) AS required,
           coalesce(c.recommended, '[]'::jsonb) AS recommended,
           coalesce(c.identification, '[]'::jsonb) AS identification,
           coalesce(c.staleness_days, :default_staleness) AS staleness_days
    FROM gaas_cmdb.configuration_items ci
    LEFT JOIN gaas_cmdb.ci_classes c
           ON c.name = ci.ci_class AND c.deleted_at IS NULL AND (c.domain IS NULL OR c.domain = ci.domain)
    WHERE ci.deleted_at IS NULL AND ci.status <> 'retired' {scope}
    ORDER BY ci.id, c.domain NULLS LAST
),
identities AS (
    -- one identity per identification rule whose values are all present
    SELECT k.id, k.ci_class, k.domain, r.ordinality AS rule, ident.value AS identity
    FROM classed k
    CROSS JOIN LATERAL jsonb_array_elements(k.identification) WITH ORDINALITY AS r(keys, ordinality)
    CROSS JOIN LATERAL (
        SELECT jsonb_agg(CASE key WHEN 'domain' THEN to_jsonb(k.domain) WHEN 'name' THEN to_jsonb(k.name)
                                  WHEN 'environment' THEN to_jsonb(k.environment::text)
                                  ELSE k.attributes -> key END) AS value,
               bool_and(CASE key WHEN 'domain' THEN k.domain IS NOT NULL WHEN 'name' THEN true
                                 WHEN 'environment' THEN true
                                 ELSE k.attributes ? key AND k.attributes -> key <> 'null'::jsonb END) AS complete
        FROM jsonb_array_elements_text(r.keys) AS key
    ) ident
    WHERE ident.complete
),
duplicated AS (
    SELECT DISTINCT i.id FROM identities i
    JOIN identities j ON j.ci_class = i.ci_class AND j.rule = i.rule AND j.identity = i.identity AND j.id <> i.id
),
flags AS (
    SELECT k.id, k.domain, k.ci_class,
        NOT (k.attributes ?& ARRAY(SELECT jsonb_array_elements_text(k.required))) AS missing_required,
        NOT (k.attributes ?& ARRAY(SELECT jsonb_array_elements_text(k.recommended))) AS missing_recommended,
        k.last_discovered_at < now() - make_interval(days => k.staleness_days) AS stale,
        k.last_discovered_at IS NULL AS never_discovered,
        k.service_id IS NULL AND NOT EXISTS (
            SELECT 1 FROM gaas_cmdb.ci_relationships r WHERE r.source_ci_id = k.id OR r.target_ci_id = k.id
        ) AS orphan,
        k.id IN (SELECT id FROM duplicated) AS duplicate,
        EXISTS (
            SELECT 1 FROM gaas_cmdb.ci_relationships r
            JOIN gaas_cmdb.configuration_items o
              ON o.id = CASE WHEN r.source_ci_id = k.id THEN r.target_ci_id ELSE r.source_ci_id END
            WHERE (r.source_ci_id = k.id OR r.target_ci_id = k.id)
              AND (o.deleted_at IS NOT NULL OR o.status = 'retired')
        ) AS broken_links
    FROM classed k
)
"""


def _scope(domain: str | None, ci_class: str | None, params: dict[str, Any]) -> str:
    conditions = []
    if domain is not None:
        conditions.append("AND ci.domain = :domain")
        params["domain"] = domain
    if ci_class is not None:
        conditions.append("AND ci.ci_class = :ci_class")
        params["ci_class"] = ci_class
    return " ".join(conditions)


def summary(db: Session, *, domain: str | None, ci_class: str | None, default_staleness: int) -> list[dict[str, Any]]:
    params: dict[str, Any] = {"default_staleness": default_staleness}
    counts = ", ".join(f"count(*) FILTER (WHERE {flag}) AS {flag}" for flag in FLAGS)
    sql = FLAGS_SQL.format(scope=_scope(domain, ci_class, params)) + f"""
        SELECT domain, ci_class, count(*) AS total, {counts}
        FROM flags GROUP BY domain, ci_class ORDER BY domain NULLS FIRST, ci_class"""
    return [dict(row) for row in db.execute(text(sql), params).mappings()]


def flagged_ids_sql(flag: str) -> str:
    """A subquery of CI ids carrying `flag` (a name from FLAGS: never user text)."""
    assert flag in FLAGS
    return FLAGS_SQL.format(scope="") + f"SELECT id FROM flags WHERE {flag}"
