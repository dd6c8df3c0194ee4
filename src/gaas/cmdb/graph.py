"""An in-memory copy of the impact graph, for walks that reach hundreds of thousands of CIs.

The copy is built from one REPEATABLE READ snapshot of every CI (id, domain, deleted, service)
and relationship, as integer adjacency arrays in both directions. It is *fresh* for a request
exactly when no transaction that changed the graph (one row each in gaas_cmdb.graph_changes,
written by triggers) is invisible to that snapshot but visible to the request. A stale copy is
never used: the request walks in SQL while a new copy is built in the background.

Visibility is applied during the walk with the same rules as row-level security and ci.view,
so the copy (built with a global context) never shows a caller what SQL would hide.
"""

from __future__ import annotations

import threading
import time
import uuid
from array import array
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.orm import Session

from gaas.cmdb.models import CIRelationshipType
from gaas.core.context import Actor

TYPE_CODES = {t.value: i for i, t in enumerate(CIRelationshipType)}
TYPE_NAMES = list(TYPE_CODES)
MAX_AGE_SECONDS = 6 * 3600  # change rows are kept a day; an older copy is rebuilt
SAMPLES = 20  # CIs named per service reached; the rest are counted


@dataclass
class _Adjacency:
    offsets: array  # per node: start of its neighbours in `neighbours`
    neighbours: array
    types: bytearray


@dataclass
class ImpactGraph:
    snapshot: str
    built: float
    index: dict[uuid.UUID, int]
    ids: list[uuid.UUID]
    domains: list[str | None]
    domain_of: array  # per node: index into `domains`
    deleted: bytearray
    service_of: list[uuid.UUID | None]
    dependents: _Adjacency  # target -> sources (what fails if it fails)
    dependencies: _Adjacency  # source -> targets (what it needs)

    def walk(self, root: uuid.UUID, *, dependents: bool, types: list[str], max_depth: int,
             visible: Callable[[str | None], bool]) -> GraphWalk | None:
        """The same result as the SQL walk (same CIs, depths and first-found paths), or None if
        the root is not in this copy. Nodes are numbered in uuid order, so sorting numbers sorts
        uuids, and each level takes, like SQL, the lowest (via, type) edge to a new node."""
        start = self.index.get(root)
        if start is None:
            return None
        allowed_types = bytearray(len(TYPE_NAMES))
        for t in types:
            allowed_types[TYPE_CODES[t]] = 1
        allowed_domain = bytearray(1 if visible(d) else 0 for d in self.domains)
        adjacency = self.dependents if dependents else self.dependencies
        offsets, neighbours, codes = adjacency.offsets, adjacency.neighbours, adjacency.types
        deleted, domain_of = self.deleted, self.domain_of
        seen, parent, code_of, depth_of = self._scratch()
        seen[start] = 1
        order: list[int] = []
        levels: dict[int, int] = {}
        frontier = [start]
        for depth in range(1, max_depth + 1):
            if not frontier:
                break
            found = []
            for node in frontier:
                for k in range(offsets[node], offsets[node + 1]):
                    other = neighbours[k]
                    if seen[other] or not allowed_types[codes[k]] or deleted[other] \
                            or not allowed_domain[domain_of[other]]:
                        continue
                    seen[other] = 1
                    parent[other] = node
                    code_of[other] = codes[k]
                    depth_of[other] = depth
                    found.append(other)
            found.sort()
            if found:
                levels[depth] = len(found)
            order.extend(found)
            frontier = found
        # Give the scratch back clean: only what this walk touched (a typical walk touches a few
        # nodes; clearing a million-entry buffer per request would cost more than the walk).
        seen[start] = 0
        for node in order:
            seen[node] = 0
        return GraphWalk(self, start, order, parent, code_of, depth_of, levels)

    def _scratch(self) -> tuple[bytearray, array, bytearray, bytearray]:
        """Per-thread buffers sized to the graph: `seen` is all zeros between walks; the others are
        read only for nodes a walk marked, so they need no clearing."""
        local = self.__dict__.setdefault("_local", threading.local())
        if not hasattr(local, "buffers"):
            count = len(self.ids)
            local.buffers = (bytearray(count), array("i", bytes(4 * count)), bytearray(count), bytearray(count))
        return local.buffers


@dataclass
class GraphWalk:
    """A walk over the copy, kept as node numbers: uuids are made only for what is returned."""

    graph: ImpactGraph
    start: int
    order: list[int]
    parent: array
    code_of: bytearray
    depth_of: bytearray
    levels: dict[int, int]

    @property
    def total(self) -> int:
        return len(self.order)

    @property
    def by_depth(self) -> dict[int, int]:
        return self.levels

    def page(self, offset: int, limit: int) -> list[uuid.UUID]:
        return [self.graph.ids[n] for n in self.order[offset:offset + limit]]

    def reached_ids(self) -> ReachedCIs:
        """The start and every CI reached, as a collection that answers `in` without making a
        uuid per node (a core switch reaches more than half a million)."""
        return ReachedCIs(self.graph, [self.start, *self.order])

    def depth(self, ci_id: uuid.UUID) -> int:
        return self.depth_of[self.graph.index[ci_id]]

    def path(self, ci_id: uuid.UUID) -> list[dict[str, str]]:
        node, hops = self.graph.index[ci_id], []
        while node != self.start:
            hops.append({"ci_id": str(self.graph.ids[node]), "relationship_type": TYPE_NAMES[self.code_of[node]]})
            node = self.parent[node]
        return hops[::-1]

    def by_service(self) -> dict[uuid.UUID, tuple[int, list[uuid.UUID]]]:
        """Per service reached: how many CIs lead to it, and the nearest few of them."""
        services, ids = self.graph.service_of, self.graph.ids
        counts: dict[uuid.UUID, int] = {}
        samples: dict[uuid.UUID, list[uuid.UUID]] = {}
        for node in self.order:
            service = services[node]
            if service is not None:
                counts[service] = counts.get(service, 0) + 1
                if counts[service] <= SAMPLES:
                    samples.setdefault(service, []).append(ids[node])
        return {service: (count, samples[service]) for service, count in counts.items()}


@dataclass
class ReachedCIs(Collection[uuid.UUID]):
    graph: ImpactGraph
    nodes: list[int]
    _marks: bytearray | None = None  # made on the first `in`: a typical walk is only iterated

    def __len__(self) -> int:
        return len(self.nodes)

    def __contains__(self, ci_id: object) -> bool:
        if self._marks is None:
            self._marks = bytearray(len(self.graph.ids))
            for node in self.nodes:
                self._marks[node] = 1
        node = self.graph.index.get(ci_id)  # type: ignore[arg-type]
        return node is not None and self._marks[node] == 1

    def __iter__(self) -> Iterator[uuid.UUID]:
        ids = self.graph.ids
        return (ids[n] for n in self.nodes)


@dataclass
class SqlWalk:
    """The same interface over the SQL walk's result (CI -> depth, via, type, service)."""

    root: uuid.UUID
    reached: dict[uuid.UUID, tuple[int, uuid.UUID | None, str | None, uuid.UUID | None]]

    def __post_init__(self) -> None:
        self.order = [ci for ci in self.reached if ci != self.root]  # breadth-first: by depth already

    @property
    def total(self) -> int:
        return len(self.order)

    @property
    def by_depth(self) -> dict[int, int]:
        levels: dict[int, int] = {}
        for ci in self.order:
            levels[self.reached[ci][0]] = levels.get(self.reached[ci][0], 0) + 1
        return levels

    def page(self, offset: int, limit: int) -> list[uuid.UUID]:
        return self.order[offset:offset + limit]

    def reached_ids(self) -> set[uuid.UUID]:
        return {self.root, *self.order}

    def depth(self, ci_id: uuid.UUID) -> int:
        return self.reached[ci_id][0]

    def path(self, ci_id: uuid.UUID) -> list[dict[str, str]]:
        hops = []
        while True:
            _, via, type_, _ = self.reached[ci_id]
            if via is None:
                return hops[::-1]
            hops.append({"ci_id": str(ci_id), "relationship_type": type_})
            ci_id = via

    def by_service(self) -> dict[uuid.UUID, tuple[int, list[uuid.UUID]]]:
        grouped: dict[uuid.UUID, list[uuid.UUID]] = {}
        for ci in self.order:
            service = self.reached[ci][3]
            if service is not None:
                grouped.setdefault(service, []).append(ci)
        return {service: (len(cis), cis[:SAMPLES]) for service, cis in grouped.items()}


def _adjacency(count: int, pairs: list[tuple[int, int, int]]) -> _Adjacency:
    """Compressed rows: pairs (from, to, type) sorted by (from, to id order, type)."""
    offsets = array("q", [0]) * (count + 1)
    for origin, _, _ in pairs:
        offsets[origin + 1] += 1
    for i in range(count):
        offsets[i + 1] += offsets[i]
    neighbours = array("i", [0]) * len(pairs)
    types = bytearray(len(pairs))
    fill = array("q", offsets[:-1])
    for origin, other, code in pairs:
        neighbours[fill[origin]] = other
        types[fill[origin]] = code
        fill[origin] += 1
    return _Adjacency(offsets, neighbours, types)


def build(db: Session) -> ImpactGraph:
    """Load the whole graph from one snapshot: the session's transaction must be REPEATABLE READ
    and act globally (the system actor)."""
    snapshot = db.execute(text("SELECT pg_current_snapshot()::text")).scalar_one()
    db.execute(text("SELECT gaas_cmdb.prune_graph_changes(24)"))
    index: dict[uuid.UUID, int] = {}
    ids: list[uuid.UUID] = []
    domains: list[str | None] = []
    domain_index: dict[str | None, int] = {}
    domain_of = array("i")
    deleted = bytearray()
    service_of: list[uuid.UUID | None] = []
    for ci_id, domain, is_deleted, service_id in db.execute(text(
            "SELECT id, domain, deleted_at IS NOT NULL, service_id FROM gaas_cmdb.configuration_items ORDER BY id")):
        index[ci_id] = len(ids)
        ids.append(ci_id)
        if domain not in domain_index:
            domain_index[domain] = len(domains)
            domains.append(domain)
        domain_of.append(domain_index[domain])
        deleted.append(1 if is_deleted else 0)
        service_of.append(service_id)
    dependents, dependencies = [], []
    for source, target, type_ in db.execute(text(
            "SELECT source_ci_id, target_ci_id, relationship_type::text FROM gaas_cmdb.ci_relationships "
            "ORDER BY source_ci_id, target_ci_id, relationship_type")):
        s, t, code = index[source], index[target], TYPE_CODES[type_]
        dependents.append((t, s, code))
        dependencies.append((s, t, code))
    dependents.sort(key=lambda p: p[0])  # stable: keeps (source, target, type) order within a node
    dependencies.sort(key=lambda p: p[0])
    return ImpactGraph(snapshot=snapshot, built=time.monotonic(), index=index, ids=ids, domains=domains,
                       domain_of=domain_of, deleted=deleted, service_of=service_of,
                       dependents=_adjacency(len(ids), dependents), dependencies=_adjacency(len(ids), dependencies))


_FRESH = text("""
    SELECT NOT EXISTS (
        SELECT 1 FROM gaas_cmdb.graph_changes
        WHERE xid >= pg_snapshot_xmin(CAST(:snapshot AS pg_snapshot))
          AND NOT pg_visible_in_snapshot(xid, CAST(:snapshot AS pg_snapshot)))""")


def is_fresh(db: Session, graph: ImpactGraph) -> bool:
    if time.monotonic() - graph.built > MAX_AGE_SECONDS:
        return False
    return bool(db.execute(_FRESH, {"snapshot": graph.snapshot}).scalar_one())


class GraphCache:
    """One copy per process; rebuilt in the background when a request finds it stale."""

    def __init__(self) -> None:
        self.graph: ImpactGraph | None = None
        self.lock = threading.Lock()
        self.building = False

    def fresh_graph(self, db: Session, rebuild: Callable[[], ImpactGraph]) -> ImpactGraph | None:
        graph = self.graph
        if graph is not None and is_fresh(db, graph):
            return graph
        self._rebuild_in_background(rebuild)
        return None

    def _rebuild_in_background(self, rebuild: Callable[[], ImpactGraph]) -> None:
        with self.lock:
            if self.building:
                return
            self.building = True

        def run() -> None:
            try:
                self.graph = rebuild()
            finally:
                self.building = False

        threading.Thread(target=run, name="gaas-impact-graph", daemon=True).start()


CACHE = GraphCache()


def visibility(actor: Actor) -> Callable[[str | None], bool]:
    """Row-level security (global rows readable, else the actor's domains) and ci.view."""
    view = actor.domains_with("ci.view")

    def visible(domain: str | None) -> bool:
        if domain is None:
            return True
        return actor.sees(domain) and (view is None or domain in view)

    return visible
