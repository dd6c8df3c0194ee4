"""The ServiceNow Table API in process: encoded queries, codes, references and display values,
paging headers, writes through the services, authentication and ServiceNow's error shape."""

from __future__ import annotations

import base64
import uuid

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gaas.iam import basic_auth
from gaas.servicenow import query as encoded
from tests.support import PASSWORD, World, audit_rows


def basic(login: str, password: str = PASSWORD) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{login}:{password}".encode()).decode()}


@pytest.fixture(scope="module")
def setup(world: World):
    domain = world.domain()
    other = world.domain()
    admin = world.user(domain, "domain_admin")
    agent = world.user(domain, "service_desk_agent")
    stranger = world.user(other, "domain_admin")
    client = world.client
    server = client.post("/api/now/table/cmdb_ci_server", headers=admin.headers,
                         json={"name": "web01", "ip_address": "10.0.0.1", "used_for": "Production"}).json()["result"]
    return {"domain": domain, "other": other, "admin": admin, "agent": agent, "stranger": stranger, "client": client,
            "server": server}


def error_of(response) -> dict:
    body = response.json()
    assert body["status"] == "failure" and set(body["error"]) == {"message", "detail"}, body
    return body["error"]


def test_parser_reads_and_or_nq_and_order():
    q = encoded.parse("active=true^priority=1^ORpriority=2^NQstate=6^ORDERBYDESCnumber^ORDERBYsys_created_on")
    assert [[[t.field for t in g] for g in groups] for groups in q.queries] == [[["active"], ["priority", "priority"]],
                                                                             [["state"]]]
    assert q.order == [("number", True), ("sys_created_on", False)]
    assert encoded.parse("short_descriptionLIKEa^^b").queries[0][0][0].value == "a^b"
    assert encoded.parse("stateIN1,2").queries[0][0][0].op == "IN"
    assert encoded.parse("assigned_toISEMPTY").queries[0][0][0].op == "ISEMPTY"
    with pytest.raises(encoded.QueryError) as refused:
        encoded.parse("sys_created_onBETWEEN2024-01-01@2024-02-01")
    assert "BETWEEN" in refused.value.detail


def test_create_get_query_update_delete_incident(setup, database):
    client, admin, server = setup["client"], setup["admin"], setup["server"]
    created = client.post("/api/now/table/incident", headers=admin.headers, json={
        "short_description": "Disk full on web01", "impact": "1", "urgency": "1", "cmdb_ci": server["sys_id"],
        "assignment_group": "Linux Team", "assigned_to": str(admin.id), "contact_type": "monitoring"})
    assert created.status_code == 201, created.text
    inc = created.json()["result"]
    assert inc["state"] == "1" and inc["priority"] == "1" and inc["impact"] == "1" and inc["active"] == "true"
    assert inc["cmdb_ci"] == {"link": f"http://testserver/api/now/table/cmdb_ci/{server['sys_id']}",
                              "value": server["sys_id"]}
    assert inc["assigned_to"]["value"] == admin.id.hex
    assert inc["number"].startswith("INC") and len(inc["sys_id"]) == 32
    assert len(inc["sys_created_on"]) == 19 and inc["sys_created_on"][10] == " "
    assert inc["sys_domain"] == setup["domain"]

    found = client.get("/api/now/table/incident", headers=admin.headers,
                       params={"sysparm_query": f"number={inc['number']}^active=true"})
    assert [r["sys_id"] for r in found.json()["result"]] == [inc["sys_id"]]
    assert found.headers["X-Total-Count"] == "1"

    shown = client.get(f"/api/now/table/incident/{inc['sys_id']}", headers=admin.headers,
                       params={"sysparm_display_value": "true", "sysparm_fields": "state,priority,cmdb_ci,"
                               "assignment_group,assigned_to"}).json()["result"]
    assert shown["state"] == "New" and shown["priority"] == "1 - Critical"
    assert shown["cmdb_ci"]["display_value"] == "web01" and shown["assignment_group"]["display_value"] == "Linux Team"
    assert set(shown) == {"state", "priority", "cmdb_ci", "assignment_group", "assigned_to"}
    both = client.get(f"/api/now/table/incident/{inc['sys_id']}", headers=admin.headers,
                      params={"sysparm_display_value": "all", "sysparm_exclude_reference_link": "true",
                              "sysparm_fields": "state,cmdb_ci"}).json()["result"]
    assert both == {"state": {"display_value": "New", "value": "1"},
                    "cmdb_ci": {"display_value": "web01", "value": server["sys_id"]}}
    plain = client.get(f"/api/now/table/incident/{inc['sys_id']}", headers=admin.headers,
                       params={"sysparm_exclude_reference_link": "true", "sysparm_fields": "cmdb_ci"}).json()
    assert plain == {"result": {"cmdb_ci": server["sys_id"]}}

    # New -> Resolved in one write: GaaS walks New -> In Progress -> Resolved through its rules.
    resolved = client.patch(f"/api/now/table/incident/{inc['sys_id']}", headers=admin.headers,
                            json={"state": "6", "close_notes": "Cleaned /var/log", "close_code": "Solved"})
    assert resolved.status_code == 200, resolved.text
    assert resolved.json()["result"]["state"] == "6" and resolved.json()["result"]["active"] == "false"
    rid = resolved.headers["x-request-id"]
    actions = [(r["action"], r["entity_type"]) for r in audit_rows(database, rid)]
    assert actions.count(("update", "incident")) == 2  # two steps of the lifecycle, each audited

    assert client.delete(f"/api/now/table/incident/{inc['sys_id']}", headers=admin.headers).status_code == 204
    gone = client.get(f"/api/now/table/incident/{inc['sys_id']}", headers=admin.headers)
    assert gone.status_code == 404 and error_of(gone)["message"] == "No Record found"


def test_encoded_query_operators(setup):
    client, admin = setup["client"], setup["admin"]
    for i, (impact, desc) in enumerate([("1", "alpha printer"), ("2", "beta printer"), ("3", "gamma disk")]):
        client.post("/api/now/table/incident", headers=admin.headers,
                    json={"short_description": f"{desc} q{i}", "impact": impact, "urgency": "2",
                          "assignment_group": "Queue" if i else None})

    def numbers(query: str) -> list[str]:
        r = client.get("/api/now/table/incident", headers=admin.headers,
                       params={"sysparm_query": query + "^ORDERBYshort_description",
                               "sysparm_fields": "short_description"})
        assert r.status_code == 200, r.text
        return [x["short_description"] for x in r.json()["result"]]

    assert numbers("short_descriptionLIKEprinter") == ["alpha printer q0", "beta printer q1"]
    assert numbers("short_descriptionSTARTSWITHgamma") == ["gamma disk q2"]
    assert numbers("impactIN1,3^short_descriptionLIKE q") == ["alpha printer q0", "gamma disk q2"]
    assert numbers("impact!=1^short_descriptionLIKE q") == ["beta printer q1", "gamma disk q2"]
    assert numbers("impact<2^short_descriptionLIKE q") == ["alpha printer q0"]
    assert numbers("impact>1^short_descriptionLIKE q") == ["beta printer q1", "gamma disk q2"]
    assert numbers("assignment_groupISEMPTY^short_descriptionLIKE q") == ["alpha printer q0"]
    assert numbers("assignment_groupISNOTEMPTY^short_descriptionLIKE q") == ["beta printer q1", "gamma disk q2"]
    assert numbers("short_descriptionLIKEalpha^NQshort_descriptionLIKEgamma") == ["alpha printer q0",
                                                                                 "gamma disk q2"]
    assert numbers("short_descriptionLIKEalpha^ORshort_descriptionLIKEbeta^impact=2") == ["beta printer q1"]
    assert numbers("sys_created_on>2000-01-01 00:00:00^short_descriptionLIKE q")[0] == "alpha printer q0"
    assert numbers("sys_created_on<2000-01-01 00:00:00") == []
    desc = client.get("/api/now/table/incident", headers=admin.headers,
                      params={"sysparm_query": "short_descriptionLIKE q^ORDERBYDESCshort_description",
                              "sysparm_fields": "short_description"}).json()["result"]
    assert [d["short_description"] for d in desc] == ["gamma disk q2", "beta printer q1", "alpha printer q0"]


@pytest.mark.parametrize(("query", "named"), [
    ("sys_created_onBETWEEN2024-01-01@2024-02-01", "BETWEEN"),
    ("short_descriptionSAMEASdescription", "SAMEAS"),
    ("caller_id.name=Bob", "caller_id.name"),
    ("u_custom=1", "u_custom"),
    ("state=Resolved", "state"),
    ("short_description>=a^ORDERBYdescription", "description"),
    ("sys_created_on>javascript:gs.daysAgo(7)", "javascript"),
])
def test_unsupported_query_is_a_clear_400(setup, query, named):
    r = setup["client"].get("/api/now/table/incident", headers=setup["admin"].headers,
                            params={"sysparm_query": query})
    assert r.status_code == 400, r.text
    error = error_of(r)
    assert named in error["message"] + (error["detail"] or "")


def test_paging_headers_and_fields(setup):
    client, admin = setup["client"], setup["admin"]
    for i in range(5):
        client.post("/api/now/table/incident", headers=admin.headers,
                    json={"short_description": f"paged {i}", "category": "paging"})
    r = client.get("/api/now/table/incident", headers=admin.headers,
                   params={"sysparm_query": "category=paging", "sysparm_limit": "2", "sysparm_offset": "2"})
    assert r.headers["X-Total-Count"] == "5" and len(r.json()["result"]) == 2
    links = {rel: link["url"] for rel, link in r.links.items()}
    assert set(links) == {"first", "prev", "next", "last"}
    assert "sysparm_offset=4" in links["next"] and "sysparm_offset=0" in links["prev"]
    assert "sysparm_offset=4" in links["last"] and "sysparm_query=category%3Dpaging" in links["next"]
    last = client.get(links["last"], headers=admin.headers)
    assert len(last.json()["result"]) == 1 and "next" not in last.links
    bad = client.get("/api/now/table/incident", headers=admin.headers, params={"sysparm_fields": "nope"})
    assert bad.status_code == 400 and "nope" in error_of(bad)["message"]
    too_many = client.get("/api/now/table/incident", headers=admin.headers, params={"sysparm_limit": "10001"})
    assert too_many.status_code == 400


def test_other_tables_answer(setup):
    client, admin, server = setup["client"], setup["admin"], setup["server"]
    servers = client.get("/api/now/table/cmdb_ci_server", headers=admin.headers,
                         params={"sysparm_query": "name=web01"}).json()["result"]
    assert servers[0]["sys_class_name"] == "cmdb_ci_server" and servers[0]["ip_address"] == "10.0.0.1"
    assert servers[0]["install_status"] == "1" and servers[0]["used_for"] == "Production"
    db = client.post("/api/now/table/cmdb_ci_database", headers=admin.headers,
                     json={"name": "pg01", "u_unused": "x"})
    assert db.status_code == 400 and "u_unused" in error_of(db)["message"]
    db = client.post("/api/now/table/cmdb_ci_database", headers=admin.headers, json={"name": "pg01"}).json()["result"]
    rel = client.post("/api/now/table/cmdb_rel_ci", headers=admin.headers,
                      json={"parent": db["sys_id"], "child": server["sys_id"], "type": "Runs on::Runs"})
    assert rel.status_code == 201, rel.text
    rels = client.get("/api/now/table/cmdb_rel_ci", headers=admin.headers,
                      params={"sysparm_query": f"child={server['sys_id']}", "sysparm_display_value": "true"})
    assert rels.json()["result"][0]["type"]["display_value"] == "Runs on::Runs"
    assert rels.json()["result"][0]["parent"]["display_value"] == "pg01"
    everything = client.get("/api/now/table/cmdb_ci", headers=admin.headers,
                            params={"sysparm_query": "sys_class_name=cmdb_ci_database"}).json()["result"]
    assert [x["name"] for x in everything] == ["pg01"]
    client.post("/api/now/table/incident", headers=admin.headers,
                json={"short_description": "grouped", "assignment_group": "Storage Team"})
    groups = client.get("/api/now/table/sys_user_group", headers=admin.headers,
                        params={"sysparm_query": "nameSTARTSWITHstorage"}).json()["result"]
    assert [g["name"] for g in groups] == ["Storage Team"]
    incs = client.get("/api/now/table/incident", headers=admin.headers,
                      params={"sysparm_query": f"assignment_group={groups[0]['sys_id']}"}).json()["result"]
    assert [i["short_description"] for i in incs] == ["grouped"]
    users = client.get("/api/now/table/sys_user", headers=admin.headers,
                       params={"sysparm_query": f"email={admin.email}"}).json()["result"]
    assert users[0]["sys_id"] == admin.id.hex and users[0]["active"] == "true"
    problem = client.post("/api/now/table/problem", headers=admin.headers,
                          json={"short_description": "Printers keep failing", "priority": "2"})
    assert problem.status_code == 201 and problem.json()["result"]["state"] == "101"
    change = client.post("/api/now/table/change_request", headers=admin.headers,
                         json={"short_description": "Patch web01", "type": "normal", "cmdb_ci": server["sys_id"]})
    assert change.status_code == 201, change.text
    assert change.json()["result"]["state"] == "-5" and change.json()["result"]["cmdb_ci"]["value"] == server["sys_id"]
    ro = client.post("/api/now/table/sys_user_group", headers=admin.headers, json={"name": "x"})
    assert ro.status_code == 400 and "assignment" in error_of(ro)["message"]
    unknown = client.get("/api/now/table/sc_req_item", headers=admin.headers)
    assert unknown.status_code == 400 and error_of(unknown)["message"] == "Invalid table sc_req_item"
    nowhere = client.get("/api/now/stats/incident", headers=admin.headers)
    assert nowhere.status_code == 400


def test_authentication_basic_and_domains(setup, database):
    client, admin, stranger = setup["client"], setup["admin"], setup["stranger"]
    basic_auth.forget_all()
    ok = client.get("/api/now/table/incident", headers=basic(admin.email), params={"sysparm_limit": "1"})
    assert ok.status_code == 200
    logins = database.owner_rows("SELECT count(*) AS n FROM gaas_audit.audit_log WHERE action = 'login' "
                                 "AND user_id = :u", u=admin.id)[0]["n"]
    client.get("/api/now/table/incident", headers=basic(admin.email), params={"sysparm_limit": "1"})
    assert database.owner_rows("SELECT count(*) AS n FROM gaas_audit.audit_log WHERE action = 'login' "
                               "AND user_id = :u", u=admin.id)[0]["n"] == logins  # remembered: one login
    wrong = client.get("/api/now/table/incident", headers=basic(admin.email, "wrong password"))
    assert wrong.status_code == 401 and error_of(wrong)["message"] == "User Not Authenticated"
    assert "Basic" in wrong.headers["www-authenticate"]
    failed = database.owner_rows("SELECT failed_login_attempts AS n FROM gaas_iam.users WHERE id = :u", u=admin.id)
    assert failed[0]["n"] == 1  # counted towards the lockout, and kept although the request failed
    none = client.get("/api/now/table/incident")
    assert none.status_code == 401
    theirs = client.get("/api/now/table/incident", headers=stranger.headers)
    assert theirs.status_code == 200 and theirs.json()["result"] == [] and theirs.headers["X-Total-Count"] == "0"
    mine = client.get("/api/now/table/cmdb_ci_server", headers=admin.headers).json()["result"][0]["sys_id"]
    assert client.get(f"/api/now/table/cmdb_ci_server/{mine}", headers=stranger.headers).status_code == 404
    write = client.patch(f"/api/now/table/cmdb_ci_server/{mine}", headers=stranger.headers, json={"name": "x"})
    assert write.status_code == 404


def test_basic_authentication_locks_the_account_like_a_login_and_tokens_keep_working(setup, world, database):
    from gaas.core.settings import get_settings

    client = setup["client"]
    user = world.user(setup["domain"], "service_desk_agent")
    basic_auth.forget_all()
    url, params = "/api/now/table/incident", {"sysparm_limit": "1"}
    assert client.get(url, headers=basic(user.email), params=params).status_code == 200  # remembered from now on
    for _ in range(get_settings().login_max_failures):
        refused = client.get(url, headers=basic(user.email, "not the password"), params=params)
        assert refused.status_code == 401 and error_of(refused)["message"] == "User Not Authenticated"
    [row] = database.owner_rows("SELECT locked_until, failed_login_attempts AS n FROM gaas_iam.users WHERE id = :u",
                                u=user.id)
    assert row["locked_until"] is not None
    # locked: the right password no longer opens it, even one this process remembers as good ...
    assert client.get(url, headers=basic(user.email), params=params).status_code == 401
    assert client.post("/api/v1/auth/token", data={"username": user.email, "password": PASSWORD}).status_code == 401
    # ... while the account's API tokens, which a password lockout must not switch off, still work
    assert client.get(url, headers=user.headers, params=params).status_code == 200
    failures = database.owner_rows("SELECT count(*) AS n FROM gaas_audit.audit_log WHERE user_id = :u "
                                   "AND action = 'login_failed'", u=user.id)[0]["n"]
    assert failures >= get_settings().login_max_failures


def test_agent_permissions_hold(setup):
    client, agent = setup["client"], setup["agent"]
    inc = client.post("/api/now/table/incident", headers=agent.headers,
                      json={"short_description": "Agent's incident"}).json()["result"]
    denied = client.delete(f"/api/now/table/incident/{inc['sys_id']}", headers=agent.headers)
    assert denied.status_code == 403 and "incident.delete" in error_of(denied)["message"]
    bad = client.patch(f"/api/now/table/incident/{inc['sys_id']}", headers=agent.headers, json={"state": "7"})
    assert bad.status_code == 400 and "close_notes" in str(error_of(bad))
    assert uuid.UUID(inc["sys_id"])


_PIECES = st.sampled_from(["state", "priority", "impact", "short_description", "assigned_to", "cmdb_ci",
                           "sys_created_on", "active", "number", "caller_id.name", "u_x", "hold_reason",
                           "assignment_group", "sys_id", "made_sla", "sys_mod_count"])
_OPS = st.sampled_from(["=", "!=", "<", ">", "<=", ">=", "LIKE", "NOT LIKE", "STARTSWITH", "ENDSWITH", "IN",
                        "NOT IN", "ISEMPTY", "ISNOTEMPTY", "BETWEEN", "ON", "SAMEAS", ""])
_VALUES = st.one_of(st.sampled_from(["1", "3", "6", "true", "2025-01-01 00:00:00", "a" * 32, "x,y", "", "é^^",
                                     "javascript:gs.now()", "-1", "99"]), st.text(max_size=12))
_TERMS = st.tuples(_PIECES, _OPS, _VALUES).map(lambda t: "".join(t))
_QUERIES = st.lists(st.tuples(st.sampled_from(["^", "^OR", "^NQ", "^ORDERBY", "^ORDERBYDESC"]), _TERMS),
                    max_size=4).map(lambda parts: "".join(j + t for j, t in parts).lstrip("^"))


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(query=_QUERIES)
def test_any_encoded_query_is_answered_or_refused_never_a_500(setup, query):
    r = setup["client"].get("/api/now/table/incident", headers=setup["admin"].headers,
                            params={"sysparm_query": query, "sysparm_limit": "5"})
    assert r.status_code in (200, 400), r.text  # StrictClient fails any 5xx on the spot
    if r.status_code == 400:
        error_of(r)


@pytest.mark.parametrize(("body", "named"), [
    ({"short_description": "x", "state": "5"}, "state"),
    ({"short_description": "x", "impact": "high"}, "impact"),
    ({"short_description": "x", "cmdb_ci": "f" * 32}, "cmdb_ci"),
    ({"short_description": "x", "cmdb_ci": "no such ci name"}, "cmdb_ci"),
    ({"short_description": "x", "assigned_to": "nobody@example.org"}, "assigned_to"),
    ({"short_description": ""}, "short_description"),
    ({"short_description": "x", "u_custom": "1"}, "u_custom"),
    ({"short_description": "x", "sys_domain": "no-such-domain"}, "no-such-domain"),  # 403, as elsewhere
    ([{"short_description": "x"}], "body"),
])
def test_bad_writes_are_400_naming_the_field(setup, body, named):
    r = setup["client"].post("/api/now/table/incident", headers=setup["admin"].headers, json=body)
    assert r.status_code in (400, 403), r.text
    error = error_of(r)
    assert named in error["message"] + (error["detail"] or ""), error


def test_malformed_json_is_400(setup):
    r = setup["client"].post("/api/now/table/incident", headers={**setup["admin"].headers,
                                                                 "content-type": "application/json"},
                             content=b"{not json")
    assert r.status_code == 400 and error_of(r)
