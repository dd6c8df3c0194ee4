"""The in-memory impact graph gives exactly what the SQL walk gives, and is never used stale."""

from __future__ import annotations

import pytest

from gaas.cmdb import graph as impact_graph
from gaas.cmdb import service as cmdb
from gaas.core.db import set_context
from gaas.iam import service as iam
from tests.support import World
from tests.test_cmdb import ci, link


@pytest.fixture(scope="module")
def graph_world(client, world: World):
    home, other = world.domain(), world.domain()
    root = world.admin()
    nodes = {}
    for name, domain in (("core", home), ("a", home), ("b", home), ("c", other), ("d", home), ("e", home)):
        nodes[name] = ci(client, root, domain, name=name)
    for source, target, type_ in (("a", "core", "depends_on"), ("b", "core", "runs_on"), ("c", "a", "depends_on"),
                                  ("d", "c", "runs_on"), ("d", "b", "depends_on"), ("e", "d", "part_of"),
                                  ("core", "e", "depends_on"), ("a", "b", "connects_to")):
        link(client, root, nodes[source], nodes[target], type_)
    return {"home": home, "other": other, "root": root, "nodes": nodes}


def _impacts(database, actor, node_id, graph):
    with database.factory() as db:
        db.begin()
        set_context(db, actor)
        results = []
        for dependents, types in ((True, ["depends_on", "runs_on", "part_of"]), (False, ["depends_on", "runs_on"])):
            sql = impact_graph.SqlWalk(node_id, cmdb._walk(db, node_id, dependents=dependents, types=types,
                                                           max_depth=10, view_domains=actor.domains_with("ci.view")))
            copy = graph.walk(node_id, dependents=dependents, types=types, max_depth=10,
                              visible=impact_graph.visibility(actor))
            results += [_plain(sql), _plain(copy)]
        db.rollback()
    return results


def _plain(walk):
    """Everything a walk answers, comparable across the two implementations."""
    ids = walk.page(0, 10**6)
    return {"total": walk.total, "by_depth": walk.by_depth, "order": ids, "by_service": walk.by_service(),
            "paths": {i: (walk.depth(i), walk.path(i)) for i in ids}}


def test_the_copy_walks_exactly_like_sql(database, world, graph_world):
    graph = cmdb.build_graph(database.factory)
    import uuid

    core = uuid.UUID(graph_world["nodes"]["core"]["id"])
    walked, copied, back, back_copy = _impacts(database, iam.system_actor(), core, graph)
    assert walked == copied and walked["total"] == 5  # order, depths, paths and services too
    assert back == back_copy
    # A user of the home domain only: the other domain's CI is a wall for both.
    person = world.user(graph_world["home"], "cmdb_admin")
    from gaas.core.context import RequestInfo

    actor = iam._actor(person.id, person.email, person.domain,
                       [{"permissions": ["ci.view"], "scope_type": "domain", "scope_domain": graph_world["home"],
                         "scope_id": None}], read_only=False, info=RequestInfo())
    walked, copied, _, _ = _impacts(database, actor, core, graph)
    assert walked == copied
    assert uuid.UUID(graph_world["nodes"]["c"]["id"]) not in copied["order"]


def test_a_stale_copy_is_never_used(client, database, graph_world):
    graph = cmdb.build_graph(database.factory)
    with database.factory() as db:
        db.begin()
        set_context(db, iam.system_actor())
        assert impact_graph.is_fresh(db, graph)
        db.rollback()
    root, nodes = graph_world["root"], graph_world["nodes"]
    link(client, root, nodes["e"], nodes["a"], "depends_on")  # a committed change after the copy
    with database.factory() as db:
        db.begin()
        set_context(db, iam.system_actor())
        assert not impact_graph.is_fresh(db, graph)
        db.rollback()
    newer = cmdb.build_graph(database.factory)
    with database.factory() as db:
        db.begin()
        set_context(db, iam.system_actor())
        assert impact_graph.is_fresh(db, newer)
        # An uncommitted change in this very transaction makes the copy stale for it, not for others.
        cmdb.delete_ci(db, iam.system_actor(), __import__("uuid").UUID(nodes["e"]["id"]), None)
        assert not impact_graph.is_fresh(db, newer)
        db.rollback()


def test_the_endpoint_uses_a_fresh_copy_when_the_cmdb_is_large(client, database, graph_world, monkeypatch):
    from gaas.core.settings import get_settings

    monkeypatch.setattr(get_settings(), "impact_graph_min_cis", 0)
    monkeypatch.setattr(impact_graph, "CACHE", impact_graph.GraphCache())
    impact_graph.CACHE.graph = cmdb.build_graph(database.factory)
    calls = []
    original = impact_graph.ImpactGraph.walk

    def spy(self, *args, **kwargs):
        calls.append(1)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(impact_graph.ImpactGraph, "walk", spy)
    root, core = graph_world["root"], graph_world["nodes"]["core"]
    from gaas.changes import impact as change_work
    from gaas.incidents import impact as incident_work
    from tests.support import api_incident

    on_d = api_incident(client, root, graph_world["home"], ci_id=graph_world["nodes"]["d"]["id"])
    # In memory, the open incidents are matched against the walk's own marks (as for a core switch
    # with half a million dependents); through SQL, by the CIs' ids.
    monkeypatch.setattr(incident_work, "ID_FILTER_MAX", 0)
    monkeypatch.setattr(change_work, "ID_FILTER_MAX", 0)
    via_copy = client.get(f"/api/v1/cis/{core['id']}/impact", headers=root.headers).json()
    assert calls == [1]
    monkeypatch.undo()
    monkeypatch.setattr(get_settings(), "impact_graph_min_cis", 10**9)
    via_sql = client.get(f"/api/v1/cis/{core['id']}/impact", headers=root.headers).json()
    assert calls == [1]
    assert (via_copy.pop("computed_with"), via_sql.pop("computed_with")) == ("memory", "database")
    assert via_copy == via_sql
    assert [i["id"] for i in via_copy["open_incidents"]["items"]] == [on_d["id"]]
