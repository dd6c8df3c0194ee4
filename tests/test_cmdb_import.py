"""Discovery import: reconciliation by identification rule, source precedence, all or nothing."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import text
from typer.testing import CliRunner

from gaas.cli import app as cli
from gaas.cmdb import importer
from gaas.cmdb.service import _json_values
from tests.support import World, assert_problem, audit_rows, rid, unique


@pytest.fixture(scope="module")
def importer_user(world: World):
    domain = world.domain()
    return {"domain": domain, "admin": world.user(domain, "cmdb_admin")}


def ndjson(rows: list[dict[str, Any]]) -> bytes:
    return "\n".join(json.dumps(r) for r in rows).encode() + b"\n"


def post(client, who, content: bytes, *, name: str = "scan.ndjson", **params: Any):
    request_id = rid()
    response = client.post("/api/v1/cmdb/import", params={"source": "cmdb-scan", **params},
                           files={"file": (name, content)}, headers={**who.headers, "X-Request-ID": request_id})
    return response, request_id


def outbox(database, request_id: str) -> list[dict[str, Any]]:
    return database.owner_rows("SELECT event_type, domain, entity_id, payload FROM gaas_workflow.outbox_events "
                               "WHERE request_id = :r", r=request_id)


def servers(prefix: str, count: int, **attributes: Any) -> list[dict[str, Any]]:
    return [{"ci_class": "server", "name": f"{prefix}-{i}", "environment": "production",
             "attributes": {"hostname": f"{prefix}-{i}", "serial_number": f"{prefix}-SN{i}", **attributes}}
            for i in range(count)]


def test_import_twice_changes_nothing_the_second_time(client, database, importer_user):
    admin, domain = importer_user["admin"], importer_user["domain"]
    rows = servers("idem", 5, os="Ubuntu 22.04", ip="10.9.0.1")
    rows = [{**r, "discovered_at": "2026-11-01T10:00:00Z"} for r in rows]
    rows.append({"relationship_type": "depends_on", "source": {"ci_class": "server", "serial_number": "idem-SN0"},
                 "target": {"ci_class": "server", "serial_number": "idem-SN1"}})
    first, first_id = post(client, admin, ndjson(rows), domain=domain)
    assert first.status_code == 200, first.text
    assert (first.json()["created"], first.json()["relationships_created"], first.json()["committed"]) == (5, 1, True)
    assert sorted(r["action"] for r in audit_rows(database, first_id)) == ["add_relationship"] + ["create"] * 5
    # The created CIs are announced in one outbox row (a batch the worker delivers item by item).
    [event] = outbox(database, first_id)
    assert (event["event_type"], event["domain"], event["entity_id"]) == ("ci.created", domain, None)
    created = {r["entity_id"] for r in audit_rows(database, first_id) if r["action"] == "create"}
    assert {item["entity_id"] for item in event["payload"]["batch"]} == {str(i) for i in created}
    assert {item["name"] for item in event["payload"]["batch"]} == {f"idem-{i}" for i in range(5)}
    second, second_id = post(client, admin, ndjson(rows), domain=domain)
    body = second.json()
    assert (body["created"], body["updated"], body["unchanged"], body["relationships_unchanged"]) == (0, 0, 5, 1)
    assert audit_rows(database, second_id) == [] and outbox(database, second_id) == []
    found = client.get("/api/v1/cis", params={"attr.serial_number": "idem-SN0"}, headers=admin.headers).json()["items"]
    assert len(found) == 1 and found[0]["discovered_by"] == "cmdb-scan"


def test_three_bad_rows_out_of_a_thousand(client, database, importer_user):
    admin, domain = importer_user["admin"], importer_user["domain"]
    rows = servers("bulk", 1000)
    rows[16]["attributes"]["ip"] = "not-an-ip"           # line 17
    rows[499]["ci_class"] = "spaceship"                  # line 500
    rows[998]["environment"] = "moon"                    # line 999
    content = ndjson(rows)
    response, request_id = post(client, admin, content, domain=domain)
    body = assert_problem(response, 422)
    assert [(e["line"], e["field"]) for e in body["errors"]] == [
        (17, "line 17: attributes.ip"), (500, "line 500: ci_class"), (999, "line 999: environment")]
    assert audit_rows(database, request_id) == []
    count = "SELECT count(*) AS n FROM gaas_cmdb.configuration_items WHERE name LIKE 'bulk-%'"
    assert database.owner_rows(count)[0]["n"] == 0
    dry, _ = post(client, admin, content, domain=domain, dry_run="true")
    assert (dry.status_code, dry.json()["created"], dry.json()["rejected"]) == (200, 997, 3)
    assert database.owner_rows(count)[0]["n"] == 0
    partial, _ = post(client, admin, content, domain=domain, partial="true")
    assert partial.status_code == 200 and partial.json()["created"] == 997
    assert [e["line"] for e in partial.json()["errors"]] == [17, 500, 999]
    assert database.owner_rows(count)[0]["n"] == 997


def test_source_precedence_and_freshness(client, database, importer_user):
    admin, domain = importer_user["admin"], importer_user["domain"]
    row = servers("prec", 1, os="Ubuntu 22.04")[0]
    post(client, admin, ndjson([row]), domain=domain)  # cmdb-scan outranks aws-auto-discovery for servers
    lower = {**row, "attributes": {**row["attributes"], "os": "Amazon Linux", "location": "eu-west-1"}}
    response = client.post("/api/v1/cmdb/import", params={"source": "aws-auto-discovery", "domain": domain},
                           files={"file": ("aws.ndjson", ndjson([lower]))}, headers=admin.headers)
    assert response.json()["updated"] == 1
    ci = client.get("/api/v1/cis", params={"attr.serial_number": "prec-SN0"}, headers=admin.headers).json()["items"][0]
    assert ci["attributes"]["os"] == "Ubuntu 22.04"  # the stronger source's fresh value stands
    assert ci["attributes"]["location"] == "eu-west-1"  # a value nobody stronger wrote is taken
    with database.owner_engine.begin() as conn:  # the scan's value grows stale
        conn.exec_driver_sql("UPDATE gaas_cmdb.configuration_items SET attribute_sources = jsonb_set("
                             "attribute_sources, '{os,at}', '\"2020-01-01T00:00:00+00:00\"') WHERE id = %s",
                             (ci["id"],))
    client.post("/api/v1/cmdb/import", params={"source": "aws-auto-discovery", "domain": domain},
                files={"file": ("aws.ndjson", ndjson([lower]))}, headers=admin.headers)
    ci = client.get(f"/api/v1/cis/{ci['id']}", headers=admin.headers).json()
    assert ci["attributes"]["os"] == "Amazon Linux"


def test_last_discovered_only_moves_forward_and_batch_duplicates_merge(client, importer_user):
    admin, domain = importer_user["admin"], importer_user["domain"]
    newer = {**servers("time", 1)[0], "discovered_at": "2026-10-01T00:00:00Z"}
    older = {**newer, "discovered_at": "2025-01-01T00:00:00Z", "attributes": {**newer["attributes"], "os": "old"}}
    response, _ = post(client, admin, ndjson([newer, older]), domain=domain)
    assert (response.json()["created"], response.json()["merged"]) == (1, 1)
    ci = client.get("/api/v1/cis", params={"attr.serial_number": "time-SN0"}, headers=admin.headers).json()["items"][0]
    assert ci["attributes"]["os"] == "old"  # the later row wins the merge
    post(client, admin, ndjson([older]), domain=domain)
    ci = client.get(f"/api/v1/cis/{ci['id']}", headers=admin.headers).json()
    assert ci["last_discovered_at"].startswith("2026-10-01")


def test_rows_across_batches_see_what_earlier_batches_wrote(client, database, importer_user, monkeypatch):
    # Batches of two: a CI created or changed by one batch is matched, as it now is, by the next
    # (which is looked up before the earlier batch's writes reach the database).
    monkeypatch.setattr(importer, "BATCH_SIZE", 2)
    admin, domain = importer_user["admin"], importer_user["domain"]
    a, b, c = servers("flight", 3)
    rows = [{**a, "attributes": {**a["attributes"], "os": "x"}}, b,
            {**a, "attributes": {**a["attributes"], "os": "y"}}, c,
            {**a, "attributes": {**a["attributes"], "os": "z", "ip": "10.1.1.1"}}, b]
    response, request_id = post(client, admin, ndjson(rows), domain=domain)
    body = response.json()
    assert (body["created"], body["updated"], body["unchanged"], body["merged"]) == (3, 2, 1, 0), body
    found = client.get("/api/v1/cis", params={"attr.serial_number": "flight-SN0"}, headers=admin.headers).json()
    [ci] = found["items"]
    assert (ci["attributes"]["os"], ci["attributes"]["ip"], ci["version"]) == ("z", "10.1.1.1", 3)
    trail = [(r["action"], (r["changes"].get("after") or {}).get("attributes", {}).get("os"))
             for r in audit_rows(database, request_id) if str(r["entity_id"]) == ci["id"]]
    assert trail == [("create", "x"), ("update", "y"), ("update", "z")]


def test_a_dry_run_reports_what_the_real_run_does(client, database, importer_user):
    admin, domain = importer_user["admin"], importer_user["domain"]
    a, b = servers("dry", 2)
    link = {"relationship_type": "depends_on", "source": {"ci_class": "server", "serial_number": "dry-SN0"},
            "target": {"ci_class": "server", "serial_number": "dry-SN1"}}
    self_link = {**link, "target": link["source"]}
    dangling = {**link, "target": {"ci_class": "server", "serial_number": "nowhere-SN"}}
    content = ndjson([a, b, link, self_link, dangling])
    keys = ("created", "relationships_created", "rejected")
    dry, _ = post(client, admin, content, domain=domain, dry_run="true", partial="true")
    real, _ = post(client, admin, content, domain=domain, partial="true")
    assert [dry.json()[k] for k in keys] == [real.json()[k] for k in keys] == [2, 1, 2]
    assert [(e["line"], e["field"]) for e in dry.json()["errors"]] == [(4, "target"), (5, "target")]
    assert dry.json()["errors"] == real.json()["errors"]


def test_csv_import_and_permissions(client, world, importer_user):
    admin, domain = importer_user["admin"], importer_user["domain"]
    content = (b"ci_class,name,environment,attr.hostname,attr.serial_number,attr.cpu_cores\n"
               b"server,csv-1,production,csv-1,CSV-SN1,16\n"
               b"server,csv-2,staging,csv-2,CSV-SN2,eight\n")
    response, _ = post(client, admin, content, name="scan.csv", domain=domain, partial="true")
    assert response.json()["created"] == 1
    assert response.json()["errors"] == [{"line": 3, "field": "attributes.cpu_cores",
                                          "message": "'eight' is not of type 'integer'"}]
    agent = world.user(domain, "service_desk_agent")
    assert_problem(post(client, agent, content, name="scan.csv", domain=domain)[0], 403)
    assert_problem(post(client, admin, content, name="scan.txt", domain=domain)[0], 422, "format")
    assert_problem(client.post("/api/v1/cmdb/import", params={"source": "Bad Source!", "domain": domain},
                               files={"file": ("x.csv", content)}, headers=admin.headers), 422, "source")


def test_cli_import(tmp_path, database, importer_user):
    path = tmp_path / "cis.ndjson"
    path.write_bytes(ndjson(servers("cli", 3)))
    runner = CliRunner()
    owner = importer_user["admin"].email
    result = runner.invoke(cli, ["import", "cis", str(path), "--source", "cmdb-scan", "--owner", owner, "--domain",
                                 importer_user["domain"]], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "3 created" in result.output
    # The command indexes the names itself (a laptop may run no worker): nothing is left pending.
    names = database.owner_rows("SELECT n.name FROM gaas_cmdb.ci_search_names n JOIN gaas_cmdb.configuration_items c "
                                "ON c.id = n.ci_id WHERE c.name LIKE 'cli-%' AND c.domain = :d",
                                d=importer_user["domain"])
    assert sorted(r["name"] for r in names) == ["cli-0", "cli-1", "cli-2"]
    assert database.owner_rows("SELECT count(*) AS n FROM gaas_cmdb.ci_search_names_pending")[0]["n"] == 0
    again = runner.invoke(cli, ["import", "cis", str(path), "--source", "cmdb-scan", "--owner", owner, "--domain",
                                importer_user["domain"], "--dry-run"], catch_exceptions=False)
    assert "0 created" in again.output and "3 unchanged" in again.output and "Dry run" in again.output


def test_an_import_cannot_reach_into_another_domain(client, world):
    home, other = world.domain(), world.domain()
    root = world.admin()
    theirs = client.post("/api/v1/cis", json={"domain": other, "name": "their-host", "ci_class": "server",
                                              "environment": "production", "owner_id": str(root.id),
                                              "attributes": {"hostname": "their-host", "serial_number": "SHARED-1"}},
                         headers=root.headers).json()
    # A user of `other` (no rights there) who administers the CMDB of `home`.
    person = world.user(other)
    role = client.get("/api/v1/roles", params={"name": "cmdb_admin"}, headers=root.headers).json()["items"][0]
    home_id = client.get("/api/v1/domains", params={"q": home}, headers=root.headers).json()["items"][0]["id"]
    client.post(f"/api/v1/users/{person.id}/roles", json={"role_id": role["id"], "scope_type": "domain",
                                                          "scope_id": home_id}, headers=root.headers)
    row = {"ci_class": "server", "name": "x", "domain": home,
           "attributes": {"hostname": "x", "serial_number": "SHARED-1", "os": "overwritten"}}
    response, _ = post(client, person, ndjson([row]), partial="true")
    assert response.json()["rejected"] == 1 and response.json()["errors"][0]["field"] == "attributes"
    assert client.get(f"/api/v1/cis/{theirs['id']}", headers=root.headers).json()["attributes"].get("os") is None


def test_manual_values_outrank_discovery_and_manual_is_reserved(client, importer_user):
    admin, domain = importer_user["admin"], importer_user["domain"]
    created = client.post("/api/v1/cis", json={"domain": domain, "name": "hand-made", "ci_class": "server",
                                               "environment": "production", "owner_id": str(admin.id),
                                               "attributes": {"hostname": "hand-made", "serial_number": "HAND-1",
                                                              "os": "set by a person"}}, headers=admin.headers)
    assert created.status_code == 201
    row = {"ci_class": "server", "name": "hand-made", "attributes": {"hostname": "hand-made",
                                                                      "serial_number": "HAND-1", "os": "scanned"}}
    post(client, admin, ndjson([row]), domain=domain)
    ci = client.get(f"/api/v1/cis/{created.json()['id']}", headers=admin.headers).json()
    assert ci["attributes"]["os"] == "set by a person"
    assert_problem(client.post("/api/v1/cmdb/import", params={"source": "manual", "domain": domain},
                               files={"file": ("x.ndjson", ndjson([row]))}, headers=admin.headers), 422, "source")


def test_awkward_rows_are_rejected_not_crashed(client, importer_user):
    admin, domain = importer_user["admin"], importer_user["domain"]
    rows = [
        {"ci_class": "server", "name": "naive", "discovered_at": "2025-01-01T00:00:00",
         "attributes": {"hostname": "naive", "serial_number": "NAIVE-1"}},
        {"ci_class": "server", "name": "nul", "attributes": {"hostname": "a\u0000b", "serial_number": "NUL-1"}},
        {"relationship_type": "depends_on", "source": {"ci_class": "server", "domain": [1], "serial_number": "X"},
         "target": {"ci_class": "server", "serial_number": "NAIVE-1"}},
        {"ci_class": "server", "name": "ghost", "domain": "nowhere", "attributes": {"hostname": "g",
                                                                                 "serial_number": "G-1"}},
    ]
    content = ndjson(rows) + b'{"ci_class": "server", "name": "nan", "attributes": {"ram_gb": NaN}}\n'
    response, _ = post(client, admin, content, domain=domain, partial="true")
    body = response.json()
    assert body["created"] == 1
    assert [(e["line"], e["field"]) for e in body["errors"]] == [(2, "row"), (4, "domain"), (5, "row"), (3, "source")]
    again, _ = post(client, admin, ndjson(rows[:1]), domain=domain)  # naive vs stored aware times: no crash
    assert again.status_code == 200 and again.json()["unchanged"] == 1


def test_csv_keeps_text_that_looks_like_numbers(client, importer_user):
    admin, domain = importer_user["admin"], importer_user["domain"]
    content = b"ci_class,name,attr.hostname,attr.serial_number,attr.cpu_cores\nserver,zero,zero,0123,4\n"
    assert post(client, admin, content, name="z.csv", domain=domain)[0].json()["created"] == 1
    ci = client.get("/api/v1/cis", params={"attr.serial_number": "0123"}, headers=admin.headers).json()["items"][0]
    assert ci["attributes"]["serial_number"] == "0123" and ci["attributes"]["cpu_cores"] == 4


@given(st.lists(st.one_of(st.text(), st.integers(), st.from_regex(r"[ -~]{0,12}", fullmatch=True)),
                min_size=1, max_size=3))
def test_identity_keys_are_rendered_exactly_as_stored_ones_were(values):
    # Stored identity keys were made with the standard library; the fast path must not drift from it.
    assert _json_values(values) == json.dumps(values, sort_keys=True, separators=(",", ":"))


def test_bulk_index_entries_wait_in_the_pending_list_and_queries_stay_exact(client, database, world, importer_user):
    """The GIN indexes on names and attributes keep what an import appends in their pending list
    (merged by the worker, not inline): attribute and name queries find the new CIs before the
    merge and after it."""
    from gaas.cmdb import service as cmdb
    from gaas.workflow.worker import JOBS

    options = {r["relname"]: tuple(sorted(r["reloptions"])) for r in database.owner_rows(
        "SELECT relname, reloptions FROM pg_class WHERE relname IN ('idx_cis_name_trgm', 'idx_cis_attributes')")}
    assert options == dict.fromkeys(("idx_cis_name_trgm", "idx_cis_attributes"),
                                    ("fastupdate=on", "gin_pending_list_limit=1048576"))
    admin, domain = importer_user["admin"], importer_user["domain"]
    response, _ = post(client, admin, ndjson(servers("pend", 300, os="Pending OS 1.0")), domain=domain)
    assert response.json()["created"] == 300, response.text

    def found() -> tuple[int, int]:
        by_attribute = client.get("/api/v1/cis", params={"attr.os": "Pending OS 1.0", "domain": domain, "limit": 500},
                                  headers=admin.headers).json()["items"]
        by_name = database.owner_rows("SELECT count(*) AS n FROM gaas_cmdb.configuration_items "
                                      "WHERE name ILIKE '%pend-29%'")[0]["n"]
        return len(by_attribute), by_name

    assert found() == (300, 11)  # pend-29 and pend-290..299
    with world.session() as db:  # as the application role, like the worker's job
        merged = cmdb.merge_pending_index_entries(db)
        again = cmdb.merge_pending_index_entries(db)
    assert merged > 0 and again == 0
    assert found() == (300, 11)
    assert JOBS["cmdb_pending_index_entries"][0] == 60


def test_an_imports_new_cis_are_searchable_before_and_after_the_worker_indexes_their_names(
        client, database, world, importer_user):
    """An import leaves the GiST name index to the worker: its CIs are listed as pending, found by
    fuzzy search (CI list and global search) straight away, and found exactly once after the
    worker's job has indexed them."""
    from gaas.cmdb import service as cmdb
    from gaas.workflow.worker import JOBS

    admin, domain = importer_user["admin"], importer_user["domain"]
    prefix = unique("quokka")
    response, _ = post(client, admin, ndjson(servers(prefix, 30)), domain=domain)
    created = {str(r["id"]) for r in database.owner_rows(
        "SELECT id FROM gaas_cmdb.configuration_items WHERE name LIKE :p", p=f"{prefix}-%")}
    assert response.json()["created"] == 30 and len(created) == 30

    def state() -> tuple[int, int]:
        indexed = database.owner_rows("SELECT count(*) AS n FROM gaas_cmdb.ci_search_names "
                                      "WHERE ci_id = ANY(CAST(:ids AS uuid[]))", ids=sorted(created))[0]["n"]
        pending = database.owner_rows("SELECT count(*) AS n FROM gaas_cmdb.ci_search_names_pending p, "
                                      "unnest(p.ci_ids) AS i WHERE i = ANY(CAST(:ids AS uuid[]))",
                                      ids=sorted(created))[0]["n"]
        return indexed, pending

    def found() -> tuple[list[str], list[str]]:
        typo = f"{prefix[:-1]}-7"  # one character of the name's prefix lost
        listed = client.get("/api/v1/cis", params={"q": typo, "domain": domain, "limit": 50},
                            headers=admin.headers).json()["items"]
        hits = client.get("/api/v1/search", params={"q": f"{prefix}-7", "types": "cis", "limit": 50},
                          headers=admin.headers).json()["items"]
        return [r["name"] for r in listed], [h["title"] for h in hits]

    assert state() == (0, 30)
    before = found()
    assert before[0][0] == f"{prefix}-7" and f"{prefix}-7" in before[1]
    with world.session() as db:  # as the application role, like the worker's job
        assert cmdb.drain_pending_search_names(db) >= 30
        assert cmdb.index_pending_search_names(db) == 0
    assert state() == (30, 0)
    after = found()
    assert after == before  # the same CIs, each once
    assert len(after[0]) == len(set(after[0])) and len(after[1]) == len(set(after[1]))
    assert JOBS["cmdb_search_names"][0] <= 10


def test_ordinary_writes_keep_search_names_in_step(client, database, importer_user):
    """Outside imports a trigger writes the name row with the CI: created, renamed, found by the
    new name and no longer by the old."""
    admin, domain = importer_user["admin"], importer_user["domain"]
    name = unique("wombat-")
    ci = client.post("/api/v1/cis", json={"domain": domain, "name": name, "ci_class": "server",
                                          "environment": "production", "owner_id": str(admin.id),
                                          "attributes": {"hostname": name}}, headers=admin.headers).json()

    def row() -> list[dict[str, Any]]:
        return database.owner_rows("SELECT domain, name FROM gaas_cmdb.ci_search_names WHERE ci_id = :id",
                                   id=ci["id"])

    assert row() == [{"domain": domain, "name": name}]
    renamed = unique("platypus-")
    patched = client.patch(f"/api/v1/cis/{ci['id']}", json={"name": renamed, "version": ci["version"]},
                           headers=admin.headers)
    assert patched.status_code == 200, patched.text
    assert row() == [{"domain": domain, "name": renamed}]
    by_new = client.get("/api/v1/cis", params={"q": renamed, "domain": domain}, headers=admin.headers).json()
    by_old = client.get("/api/v1/cis", params={"q": name, "domain": domain}, headers=admin.headers).json()
    assert [r["id"] for r in by_new["items"]][:1] == [ci["id"]]
    assert ci["id"] not in [r["id"] for r in by_old["items"]]


def test_search_names_obey_domain_isolation_in_sql(client, database, world):
    """Raw SQL as the application role: another domain's CI names, pending or indexed, stay
    invisible, and nothing can be written into another domain's pending list."""
    import psycopg

    from gaas.cmdb import service as cmdb
    from tests.test_database_security import act_as

    mine, theirs = world.domain(), world.domain()
    owner, reader = world.user(theirs, "cmdb_admin"), world.user(mine, "cmdb_admin")
    name = unique("secret-host-")
    response, _ = post(client, owner, ndjson([{"ci_class": "server", "name": name,
                                               "attributes": {"hostname": name, "serial_number": name}}]),
                       domain=theirs)
    assert response.json()["created"] == 1

    def seen_by(person, domain: str) -> tuple[int, int]:
        with database.psycopg_app() as conn:
            act_as(conn, person.id, domain)
            names = conn.execute("SELECT count(*) FROM gaas_cmdb.ci_search_names WHERE name = %s",
                                 (name,)).fetchone()[0]
            pending = conn.execute("SELECT count(*) FROM gaas_cmdb.ci_search_names_pending WHERE domain = %s",
                                   (theirs,)).fetchone()[0]
            return names, pending

    assert seen_by(owner, theirs) == (0, 1) and seen_by(reader, mine) == (0, 0)
    with world.session() as db:
        cmdb.drain_pending_search_names(db)
    assert seen_by(owner, theirs) == (1, 0) and seen_by(reader, mine) == (0, 0)
    with database.psycopg_app() as conn:
        act_as(conn, reader.id, mine)
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("INSERT INTO gaas_cmdb.ci_search_names_pending (domain, ci_ids) VALUES (%s, '{}')",
                         (theirs,))


def test_a_rename_while_pending_is_not_undone_by_the_worker(client, database, world, importer_user):
    """A CI renamed after its import, while the worker is indexing it: the worker's statement read
    the old name and then waits for the rename's own name row; once the rename commits, that
    newer row stands (the worker does not write the old name over it)."""
    import threading
    import time

    from gaas.cmdb import service as cmdb
    from tests.test_database_security import act_as

    admin, domain = importer_user["admin"], importer_user["domain"]
    with world.session() as db:
        cmdb.drain_pending_search_names(db)  # only this test's CI pending from here on
    old, new = unique("echidna-"), unique("numbat-")
    post(client, admin, ndjson([{"ci_class": "server", "name": old,
                                 "attributes": {"hostname": old, "serial_number": old}}]), domain=domain)
    ci_id = database.owner_rows("SELECT id FROM gaas_cmdb.configuration_items WHERE name = :n", n=old)[0]["id"]
    with database.psycopg_app() as renaming:
        act_as(renaming, admin.id, domain)
        renaming.execute("UPDATE gaas_cmdb.configuration_items SET name = %s WHERE id = %s", (new, ci_id))
        done: list[int] = []

        def worker() -> None:
            with world.session() as db:
                done.append(cmdb.index_pending_search_names(db))

        thread = threading.Thread(target=worker)
        thread.start()
        for _ in range(200):  # until the worker waits for the rename's uncommitted name row
            if database.owner_rows("SELECT count(*) AS n FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                                   "AND query LIKE '%ci_search_names_pending%'")[0]["n"]:
                break
            time.sleep(0.05)
        else:
            pytest.fail("the worker never waited for the rename")
        renaming.commit()
    thread.join(10)
    assert done == [1]
    assert database.owner_rows("SELECT name FROM gaas_cmdb.ci_search_names WHERE ci_id = :id",
                               id=ci_id) == [{"name": new}]


def test_an_import_that_fails_midway_stops_deferring_search_names(database, world, importer_user):
    """The deferral is for the import's own rows: if reading the file fails halfway, writes later
    in the same transaction keep their name rows again (were the caller to go on)."""
    from gaas.iam import service as iam

    admin, domain = importer_user["admin"], importer_user["domain"]

    def rows():
        yield from importer.read_rows(io.BytesIO(ndjson(servers(unique("dingo"), 1500))), "ndjson")
        raise OSError("the upload was cut off")

    with world.session() as db:
        with pytest.raises(OSError):
            importer.import_cis(db, iam.system_actor(), rows(), source="cmdb-scan", dry_run=False, partial=False,
                                default_domain=domain, owner_id=admin.id)
        assert db.execute(text("SELECT current_setting('gaas.defer_search_names', true)")).scalar() == "off"
        db.rollback()
