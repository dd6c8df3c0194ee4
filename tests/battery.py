"""The same battery of API tests for every resource, from a few lines of declaration.

A subclass names the collection path and how to build bodies; it inherits: create, get, list,
bad input (each kind names the field), update with ETag, stale update (409, nothing changed),
soft delete and restore, permission denied, another domain's record invisible and unwritable,
and the exact audit rows each write leaves, with before/after values.
"""

from __future__ import annotations

from typing import Any, ClassVar

import pytest

from tests.support import Person, World, assert_problem, audit_rows, rid


class ResourceBattery:
    path: ClassVar[str]
    entity_type: ClassVar[str]
    table: ClassVar[str]
    history_resource: ClassVar[str]
    # (body change, field the problem must name)
    bad_inputs: ClassVar[list[tuple[dict[str, Any], str]]] = []
    update: ClassVar[dict[str, Any]]
    list_filter: ClassVar[str | None] = None  # query parameter that narrows the list to our record

    # ---- declared by each resource ----
    def writer(self, world: World, domain: str) -> Person:
        raise NotImplementedError

    def non_writer(self, world: World, domain: str) -> Person:
        """Sees the domain, lacks the write permission."""
        raise NotImplementedError

    def body(self, domain: str) -> dict[str, Any]:
        raise NotImplementedError

    def filter_value(self, record: dict[str, Any]) -> str:
        raise NotImplementedError

    # ---- fixtures ----
    @pytest.fixture
    def home(self, world: World) -> str:
        return world.domain()

    @pytest.fixture
    def elsewhere(self, world: World) -> str:
        return world.domain()

    @pytest.fixture
    def me(self, world: World, home: str) -> Person:
        return self.writer(world, home)

    def create(self, client, me: Person, home: str, **overrides: Any) -> dict[str, Any]:
        response = client.post(self.path, json={**self.body(home), **overrides}, headers=me.headers)
        assert response.status_code == 201, response.text
        return response.json()

    # ---- the battery ----
    def test_create_get_and_list(self, client, database, me, home):
        request_id = rid()
        body = self.body(home)
        response = client.post(self.path, json=body, headers={**me.headers, "X-Request-ID": request_id})
        assert response.status_code == 201, response.text
        created = response.json()
        assert response.headers["etag"] == '"1"'
        assert created["version"] == 1
        for key, value in body.items():
            if key in created and key != "password":
                assert created[key] == value, key

        fetched = client.get(f"{self.path}/{created['id']}", headers=me.headers)
        assert fetched.status_code == 200
        assert fetched.json() == created

        query = {self.list_filter: self.filter_value(created)} if self.list_filter else {}
        listed = client.get(self.path, params=query, headers=me.headers)
        assert listed.status_code == 200
        assert created["id"] in [item["id"] for item in listed.json()["items"]]

        rows = [r for r in audit_rows(database, request_id) if r["entity_type"] == self.entity_type]
        assert [r["action"] for r in rows] == ["create"]
        assert str(rows[0]["entity_id"]) == created["id"]
        assert rows[0]["user_id"] == me.id
        assert rows[0]["user_email"] == me.email
        after = rows[0]["changes"]["after"]
        for key, value in body.items():
            if key == "password":
                assert after["password_hash"] == "[redacted]"
                assert value not in str(rows[0]["changes"])
            else:
                assert after[key] == value, key

    def test_bad_input_names_the_field(self, client, database, me, home, bad_input):
        # `bad_input` is parametrized from the class's bad_inputs (conftest.pytest_generate_tests)
        change, field = bad_input
        request_id = rid()
        body = {**self.body(home), **change}
        response = client.post(self.path, json=body, headers={**me.headers, "X-Request-ID": request_id})
        assert_problem(response, 422, field)
        assert audit_rows(database, request_id) == []

    def test_update_with_version_and_etag(self, client, database, me, home):
        record = self.create(client, me, home)
        request_id = rid()
        response = client.patch(f"{self.path}/{record['id']}", json=self.update,
                                headers={**me.headers, "If-Match": '"1"', "X-Request-ID": request_id})
        assert response.status_code == 200, response.text
        updated = response.json()
        assert updated["version"] == 2
        assert response.headers["etag"] == '"2"'
        for key, value in self.update.items():
            assert updated[key] == value
        rows = audit_rows(database, request_id)
        assert [r["action"] for r in rows] == ["update"]
        assert rows[0]["changes"] == {
            "before": {k: record[k] for k in self.update},
            "after": dict(self.update),
        }
        # The version may also come in the body.
        again = client.patch(f"{self.path}/{record['id']}", json={**self.update, "version": 2}, headers=me.headers)
        assert again.status_code == 200
        assert again.json()["version"] == 2  # nothing changed: no new version

    def test_stale_update_is_409_and_changes_nothing(self, client, database, me, home):
        record = self.create(client, me, home)
        first = client.patch(f"{self.path}/{record['id']}", json={**self.update, "version": 1}, headers=me.headers)
        assert first.status_code == 200
        request_id = rid()
        stale = client.patch(f"{self.path}/{record['id']}", json={**self.stale_update(), "version": 1},
                             headers={**me.headers, "X-Request-ID": request_id})
        body = assert_problem(stale, 409, "version")
        assert body["current_version"] == 2
        missing = client.patch(f"{self.path}/{record['id']}", json=self.stale_update(), headers=me.headers)
        assert assert_problem(missing, 409, "version")["current_version"] == 2
        now = client.get(f"{self.path}/{record['id']}", headers=me.headers).json()
        assert now == first.json()
        assert audit_rows(database, request_id) == []

    def stale_update(self) -> dict[str, Any]:
        return self.update

    def test_soft_delete_and_restore(self, client, database, me, home):
        record = self.create(client, me, home)
        request_id = rid()
        deleted = client.delete(f"{self.path}/{record['id']}", headers={**me.headers, "X-Request-ID": request_id})
        assert deleted.status_code == 200, deleted.text
        assert deleted.json()["deleted_at"] is not None
        rows = audit_rows(database, request_id)
        assert [r["action"] for r in rows] == ["delete"]
        assert rows[0]["changes"]["before"] == {"deleted_at": None}
        assert rows[0]["changes"]["after"]["deleted_at"] == deleted.json()["deleted_at"]

        query = {self.list_filter: self.filter_value(record)} if self.list_filter else {}
        listed = client.get(self.path, params=query, headers=me.headers).json()["items"]
        assert record["id"] not in [item["id"] for item in listed]
        listed = client.get(self.path, params={**query, "include_deleted": "true"}, headers=me.headers)
        assert record["id"] in [item["id"] for item in listed.json()["items"]]
        still_there = database.owner_rows(f"SELECT count(*) AS n FROM {self.table} WHERE id = :id", id=record["id"])
        assert still_there[0]["n"] == 1

        assert_problem(client.delete(f"{self.path}/{record['id']}", headers=me.headers), 409)
        request_id = rid()
        restored = client.post(f"{self.path}/{record['id']}/restore",
                               headers={**me.headers, "X-Request-ID": request_id})
        assert restored.status_code == 200
        assert restored.json()["deleted_at"] is None
        assert [r["action"] for r in audit_rows(database, request_id)] == ["restore"]
        assert_problem(client.post(f"{self.path}/{record['id']}/restore", headers=me.headers), 409)

    def test_permission_denied(self, client, database, world, me, home):
        reader = self.non_writer(world, home)
        request_id = rid()
        response = client.post(self.path, json=self.body(home), headers={**reader.headers, "X-Request-ID": request_id})
        assert assert_problem(response, 403)["permission"]
        record = self.create(client, me, home)
        assert_problem(client.patch(f"{self.path}/{record['id']}", json={**self.update, "version": 1},
                                    headers=reader.headers), 403)
        assert_problem(client.delete(f"{self.path}/{record['id']}", headers=reader.headers), 403)
        assert audit_rows(database, request_id) == []

    def test_other_domain_record_is_invisible_and_unwritable(self, client, world, me, home, elsewhere):
        record = self.create(client, me, home)
        stranger = self.writer(world, elsewhere)
        url = f"{self.path}/{record['id']}"
        assert_problem(client.get(url, headers=stranger.headers), 404)
        assert_problem(client.patch(url, json={**self.update, "version": 1}, headers=stranger.headers), 404)
        assert_problem(client.delete(url, headers=stranger.headers), 404)
        assert_problem(client.post(f"{url}/restore", headers=stranger.headers), 404)
        assert_problem(client.get(f"/api/v1/{self.history_resource}/{record['id']}/history",
                                  headers=stranger.headers), 404)
        query = {self.list_filter: self.filter_value(record)} if self.list_filter else {}
        listed = client.get(self.path, params=query, headers=stranger.headers)
        if listed.status_code == 200:
            assert record["id"] not in [item["id"] for item in listed.json()["items"]]
        # and cannot create into the other domain
        response = client.post(self.path, json=self.body(home), headers=stranger.headers)
        assert response.status_code in (403, 404, 422), response.text
        assert response.headers["content-type"].startswith("application/problem+json")
        assert client.get(url, headers=me.headers).json() == record

    def test_history_lists_every_change_in_order(self, client, me, home):
        record = self.create(client, me, home)
        client.patch(f"{self.path}/{record['id']}", json={**self.update, "version": 1}, headers=me.headers)
        client.delete(f"{self.path}/{record['id']}", headers=me.headers)
        history = client.get(f"/api/v1/{self.history_resource}/{record['id']}/history", headers=me.headers)
        assert history.status_code == 200
        items = history.json()["items"]
        assert [h["action"] for h in items] == ["create", "update", "delete"]
        assert all(h["user_id"] == str(me.id) for h in items)
