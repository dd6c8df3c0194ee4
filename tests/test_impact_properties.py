"""Impact analysis against the specification's own query, on small random graphs with cycles
and diamonds: the same set, each CI at its minimal depth, with a path that really exists."""

from __future__ import annotations

import uuid

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import text

from gaas.cmdb import service as cmdb
from gaas.cmdb.models import CIRelationship, CIRelationshipType
from gaas.cmdb.schemas import CICreate
from gaas.core.db import set_context
from gaas.iam import service as iam
from tests.support import World

# The specification's impact query, with its `ci.class` typo read as `ci.ci_class`.
SPEC_IMPACT = text("""
WITH RECURSIVE impact_chain AS (
    SELECT id, name, ci_class, 0 as depth
    FROM gaas_cmdb.configuration_items
    WHERE id = :x

    UNION

    SELECT ci.id, ci.name, ci.ci_class, ic.depth + 1
    FROM gaas_cmdb.configuration_items ci
    JOIN gaas_cmdb.ci_relationships rel ON rel.source_ci_id = ci.id
    JOIN impact_chain ic ON rel.target_ci_id = ic.id
    WHERE rel.relationship_type IN ('depends_on', 'runs_on')
      AND ic.depth < 10
)
SELECT * FROM impact_chain ORDER BY depth, name""")

TYPES = ["depends_on", "runs_on", "part_of", "connects_to"]
graphs = st.integers(2, 14).flatmap(lambda n: st.tuples(
    st.just(n),
    st.lists(st.tuples(st.integers(0, n - 1), st.integers(0, n - 1), st.sampled_from(TYPES)), max_size=3 * n),
    st.integers(0, n - 1)))


@pytest.fixture(scope="module")
def sandbox(database, world: World):
    domain = world.domain()
    return {"factory": database.factory, "domain": domain, "owner": world.user(domain, "cmdb_admin").id}


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(graph=graphs)
def test_impact_equals_the_specification_query(sandbox, graph):
    n, edges, start = graph
    actor = iam.system_actor()
    db = sandbox["factory"]()
    db.begin()
    set_context(db, actor)
    try:
        nodes = [cmdb.create_ci(db, actor, CICreate(domain=sandbox["domain"], name=f"n{i}", ci_class="application",
                                                    environment="test", owner_id=sandbox["owner"])).id
                 for i in range(n)]
        present = set()
        for source, target, type_ in edges:
            if source != target and (source, target, type_) not in present:
                present.add((source, target, type_))
                db.add(CIRelationship(source_ci_id=nodes[source], target_ci_id=nodes[target],
                                      relationship_type=type_, created_by=actor.user_id))
        db.flush()
        expected: dict = {}
        for row in db.execute(SPEC_IMPACT, {"x": nodes[start]}):
            expected[row.id] = min(row.depth, expected.get(row.id, row.depth))
        expected.pop(nodes[start])

        report = cmdb.impact(db, actor, nodes[start], max_depth=10,
                             relationship_types=[CIRelationshipType.depends_on, CIRelationshipType.runs_on])
        assert {uuid.UUID(c["id"]): c["depth"] for c in report["cis"]} == expected
        assert report["total"] == len(expected)
        for impacted in report["cis"]:
            assert len(impacted["path"]) == impacted["depth"] and impacted["path"][-1]["ci_id"] == impacted["id"]
            previous = nodes[start]
            for step in impacted["path"]:  # every hop is a real edge carrying impact to the next CI
                hop = uuid.UUID(step["ci_id"])
                assert (nodes.index(hop), nodes.index(previous), step["relationship_type"]) in present
                previous = hop
    finally:
        db.rollback()
        db.close()


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(graph=graphs, extra=st.lists(st.integers(0, 13), max_size=3))
def test_impact_of_several_cis_is_the_union_of_their_impacts(sandbox, graph, extra):
    n, edges, start = graph
    actor = iam.system_actor()
    db = sandbox["factory"]()
    db.begin()
    set_context(db, actor)
    try:
        nodes = [cmdb.create_ci(db, actor, CICreate(domain=sandbox["domain"], name=f"n{i}", ci_class="application",
                                                    environment="test", owner_id=sandbox["owner"])).id
                 for i in range(n)]
        for source, target, type_ in {e for e in edges if e[0] != e[1]}:
            db.add(CIRelationship(source_ci_id=nodes[source], target_ci_id=nodes[target],
                                  relationship_type=type_, created_by=actor.user_id))
        db.flush()
        roots = [nodes[start], *(nodes[i] for i in extra if i < n)]
        expected = set(roots)
        for root in roots:
            expected |= {uuid.UUID(c["id"]) for c in cmdb.impact(db, actor, root, limit=5000)["cis"]}
        assert cmdb.impact_of(db, actor, [*roots, uuid.uuid4()]).cis == expected  # unknown ids are ignored
    finally:
        db.rollback()
        db.close()
