"""A published ServiceNow client from PyPI (pysnow), unmodified, against a real `gaas serve`:
create an incident, find it by an encoded query, page with the client's own paging, resolve it,
attach it to a CI, delete it; another domain's user sees nothing; a bearer token works too."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import warnings

import httpx
import pysnow
import pytest
import requests
from pysnow.exceptions import NoResults

from tests.support import PASSWORD, World, unique
from tests.test_serve_processes import free_port


@pytest.fixture(scope="module")
def server(database, tmp_path_factory):
    port = free_port()
    env = {**os.environ, "GAAS_DATA_DIR": str(tmp_path_factory.mktemp("sn")), "GAAS_LOG_FORMAT": "json"}
    process = subprocess.Popen([sys.executable, "-m", "gaas.cli", "serve", "--port", str(port)], env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    base = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            if httpx.get(f"{base}/api/ready", timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        if process.poll() is not None:
            break
        time.sleep(0.2)
    else:
        process.kill()
        raise AssertionError(f"gaas serve did not become ready: {process.communicate()[1].decode()[-3000:]}")
    if process.poll() is not None:
        raise AssertionError(f"gaas serve exited: {process.communicate()[1].decode()[-3000:]}")
    yield f"127.0.0.1:{port}"
    process.send_signal(signal.SIGTERM)
    try:
        _, errors = process.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        raise
    assert b"Traceback" not in errors, errors.decode()[-3000:]


@pytest.fixture(scope="module")
def people(world: World):
    mine, theirs = world.domain(), world.domain()
    return {"agent": world.user(mine, "domain_admin"), "stranger": world.user(theirs, "domain_admin")}


def client_for(host: str, person) -> pysnow.Client:
    return pysnow.Client(host=host, user=person.email, password=PASSWORD, use_ssl=False)


def test_pysnow_drives_the_incident_lifecycle(server, people):
    snow = client_for(server, people["agent"])
    incidents = snow.resource(api_path="/table/incident")
    cis = snow.resource(api_path="/table/cmdb_ci_server")
    tag = unique("disk")

    # create
    created = incidents.create(payload={"short_description": f"{tag} full on app server", "impact": "2",
                                        "urgency": "1", "category": "hardware", "caller_id": "ignored",
                                        "contact_type": "monitoring"}).one()
    assert created["state"] == "1" and created["priority"] == "2" and created["number"].startswith("INC")

    # find it by an encoded query (a string, and pysnow's own QueryBuilder)
    found = incidents.get(query=f"short_descriptionLIKE{tag}^active=true^impact=2").one()
    assert found["sys_id"] == created["sys_id"]
    built = pysnow.QueryBuilder().field("number").equals(created["number"]).AND().field("state").equals("1")
    assert incidents.get(query=built).one()["sys_id"] == created["sys_id"]

    # resolve it: ServiceNow's state 6, with close notes
    resolved = incidents.update(query={"number": created["number"]},
                                payload={"state": "6", "close_notes": "Rotated the logs",
                                         "close_code": "Solved (Permanently)"}).one()
    assert resolved["state"] == "6" and resolved["close_notes"] == "Rotated the logs"
    assert resolved["resolved_at"] != ""

    # attach it to a CI
    ci = cis.create(payload={"name": f"{tag}-app01", "ip_address": "10.1.2.3", "used_for": "Production"}).one()
    attached = incidents.update(query={"sys_id": created["sys_id"]}, payload={"cmdb_ci": ci["sys_id"]}).one()
    assert attached["cmdb_ci"]["value"] == ci["sys_id"]
    shown = incidents.get(query={"sys_id": created["sys_id"]}, display_value=True,
                          fields=["cmdb_ci", "state", "priority"]).one()
    assert shown["cmdb_ci"]["display_value"] == f"{tag}-app01" and shown["state"] == "Resolved"
    by_ci = incidents.get(query=f"cmdb_ci={ci['sys_id']}").all()
    assert [r["number"] for r in by_ci] == [created["number"]]

    # delete it
    assert incidents.delete(query={"number": created["number"]}) == {"status": "record deleted"}
    with pytest.raises(NoResults):
        incidents.get(query={"number": created["number"]}).one()


def test_pysnow_pages_with_its_own_paging(server, people):
    snow = client_for(server, people["agent"])
    incidents = snow.resource(api_path="/table/incident")
    category = unique("paging")
    numbers = [incidents.create(payload={"short_description": f"paged {i:02d}", "category": category}).one()["number"]
               for i in range(23)]

    # the Resource interface: limit and offset, page after page
    seen: list[str] = []
    offset = 0
    while True:
        page = incidents.get(query=f"category={category}^ORDERBYnumber", limit=5, offset=offset).all()
        if not page:
            break
        seen += [r["number"] for r in page]
        offset += 5
    assert seen == sorted(numbers)

    # the legacy interface follows the Link: rel="next" headers the server sends
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        legacy = pysnow.Client(host=server, user=people["agent"].email, password=PASSWORD, use_ssl=False,
                               request_params={"sysparm_limit": 4})
        request = legacy.query(table="incident", query={"category": category})
        followed = [r["number"] for r in request.get_multiple(order_by=["number"])]
    assert followed == sorted(numbers)
    assert request.url_link is not None and "sysparm_offset=20" in request.url_link  # it paged through Link


def test_another_domain_sees_nothing(server, people):
    mine = client_for(server, people["agent"]).resource(api_path="/table/incident")
    created = mine.create(payload={"short_description": "private to my domain"}).one()
    theirs = client_for(server, people["stranger"]).resource(api_path="/table/incident")
    assert theirs.get(query={"number": created["number"]}).all() == []
    assert theirs.get(query="short_descriptionLIKEprivate to my").all() == []
    response = theirs.get(query={"sys_id": created["sys_id"]})
    assert response.all() == []
    with pytest.raises(requests.HTTPError) as refused:
        theirs.request("GET", path_append=f"/{created['sys_id']}").one()
    assert refused.value.response.status_code == 404
    assert refused.value.response.json()["error"]["message"] == "No Record found"


def test_bearer_token_and_errors_in_servicenow_shape(server, people):
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {people['agent'].token}"
    snow = pysnow.Client(host=server, session=session, use_ssl=False)
    incidents = snow.resource(api_path="/table/incident")
    created = incidents.create(payload={"short_description": "through a token"}).one()
    assert incidents.get(query={"sys_id": created["sys_id"]}).one()["short_description"] == "through a token"
    with pytest.raises(requests.HTTPError) as refused:
        incidents.get(query="sys_created_onBETWEEN2024-01-01@2024-02-01").all()
    body = refused.value.response.json()
    assert refused.value.response.status_code == 400 and body["status"] == "failure"
    assert "BETWEEN" in body["error"]["message"]
    wrong = pysnow.Client(host=server, user=people["agent"].email, password="not the password", use_ssl=False)
    with pytest.raises(requests.HTTPError) as denied:
        wrong.resource(api_path="/table/incident").get(query={}).all()
    assert denied.value.response.status_code == 401
    assert denied.value.response.json()["error"]["message"] == "User Not Authenticated"
