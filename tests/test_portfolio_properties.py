"""Property-based tests of the hierarchy (no sequence of operations breaks it) and of the cost
roll-up (a node's rolled-up costs are its own plus its descendants')."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import TypeAdapter
from sqlalchemy import text

from gaas.catalog import service as catalog
from gaas.catalog.models import ServiceType
from gaas.catalog.schemas import ServiceCreate, ServiceUpdate, TreeNode
from gaas.core.db import set_context
from gaas.core.errors import Problem
from gaas.iam import service as iam
from tests.support import World

PROPERTY_SETTINGS = settings(max_examples=40, deadline=None,
                             suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

operation = st.tuples(st.sampled_from(["create", "reparent", "retype", "orphan"]), st.integers(0, 1000),
                      st.integers(0, 1000), st.sampled_from(list(ServiceType)))


@pytest.fixture(scope="module")
def sandbox(database, world: World):
    domain = world.domain()
    owner = world.user(domain, "domain_admin")
    return {"factory": database.factory, "domain": domain, "owner": owner.id}


def _transaction(sandbox):
    session = sandbox["factory"]()
    session.begin()
    set_context(session, iam.system_actor())
    return session


@PROPERTY_SETTINGS
@given(ops=st.lists(operation, min_size=1, max_size=30))
def test_no_sequence_of_creates_and_re_parents_breaks_the_hierarchy(sandbox, ops):
    actor = iam.system_actor()
    db = _transaction(sandbox)
    try:
        ids = []
        for kind, i, j, type_ in ops:
            try:
                with db.begin_nested():
                    if kind == "create":
                        parent = ids[j % len(ids)] if ids and j % 4 else None
                        ids.append(catalog.create_service(db, actor, ServiceCreate(
                            domain=sandbox["domain"], name=f"s{len(ids)}", type=type_, owner_id=sandbox["owner"],
                            parent_service_id=parent)).id)
                    elif ids:
                        target = catalog.get_service(db, actor, ids[i % len(ids)])
                        changes = {"reparent": {"parent_service_id": ids[j % len(ids)]},
                                   "orphan": {"parent_service_id": None},
                                   "retype": {"type": type_}}[kind]
                        catalog.update_service(db, actor, target.id, ServiceUpdate(**changes, version=target.version),
                                               None)
            except Problem:
                pass  # refused operations are fine; what matters is the state afterwards
        _assert_hierarchy_sound(db, sandbox["domain"])
    finally:
        db.rollback()
        db.close()


def _assert_hierarchy_sound(db, domain):
    rows = db.execute(text("SELECT id, parent_service_id, type::text AS type, domain FROM gaas_service_catalog.services"
                           " WHERE domain = :d AND deleted_at IS NULL"), {"d": domain}).mappings().all()
    nodes = {r["id"]: r for r in rows}
    levels = {t.value: t.level for t in ServiceType}
    for node in nodes.values():
        seen, current = set(), node
        while current["parent_service_id"] is not None:  # walking up always reaches a root
            assert current["id"] not in seen, "cycle"
            seen.add(current["id"])
            parent = nodes[current["parent_service_id"]]
            assert parent["domain"] == current["domain"]
            assert levels[current["type"]] - levels[parent["type"]] in (0, 1), "level violation"
            current = parent


money = st.decimals(min_value=0, max_value=10**6, places=2, allow_nan=False, allow_infinity=False)


@PROPERTY_SETTINGS
@given(shape=st.lists(st.tuples(st.integers(0, 1000), money, money, money), min_size=1, max_size=25))
def test_rolled_up_costs_are_own_plus_descendants(sandbox, shape):
    actor = iam.system_actor()
    db = _transaction(sandbox)
    try:
        created: list[tuple] = []
        for position, (pick, people, process, technology) in enumerate(shape):
            parent = created[pick % len(created)] if created and pick % 5 else None
            type_ = ServiceType.business if parent is None else list(ServiceType)[
                min(list(ServiceType).index(parent[1]) + pick % 2, 3)]
            service = catalog.create_service(db, actor, ServiceCreate(
                domain=sandbox["domain"], name=f"n{position}", type=type_, owner_id=sandbox["owner"],
                parent_service_id=parent[0] if parent else None, cost_people=people, cost_process=process,
                cost_technology=technology))
            created.append((service.id, type_, parent[0] if parent else None, people, process, technology))
        nodes = {n.id: n for n in TypeAdapter(list[TreeNode]).validate_json(
            catalog.tree_json(db, actor, domain=sandbox["domain"]))}
        assert set(nodes) == {c[0] for c in created}
        children: dict = {}
        for c in created:
            children.setdefault(c[2], []).append(c[0])
        own = {c[0]: (c[3], c[4], c[5]) for c in created}

        def subtree_sum(node_id) -> tuple[Decimal, Decimal, Decimal]:
            total = own[node_id]
            for child in children.get(node_id, []):
                total = tuple(a + b for a, b in zip(total, subtree_sum(child), strict=True))
            return total

        for node_id, node in nodes.items():
            expected = subtree_sum(node_id)
            rolled = node.rolled_up
            assert (rolled.people, rolled.process, rolled.technology) == expected
            assert rolled.total == sum(expected)
    finally:
        db.rollback()
        db.close()
