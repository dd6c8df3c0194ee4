"""The `gaas` command against a real database, as an administrator would use it."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from gaas.cli import app
from gaas.core import bootstrap
from tests.support import World, unique

runner = CliRunner()


def gaas(*args: str, input: str | None = None):
    result = runner.invoke(app, list(args), input=input, catch_exceptions=False)
    return result


@pytest.mark.parametrize("command", [[], ["serve"], ["db", "upgrade"], ["user", "create"], ["user", "reset-password"],
                                     ["demo-data"], ["import", "cis"],
                                     ["token", "create"]])
def test_every_command_explains_itself(command):
    result = gaas(*command, "--help")
    assert result.exit_code == 0
    assert "Usage" in result.output
    assert len(result.output.splitlines()) > 5


def test_db_upgrade_is_idempotent(database):
    result = gaas("db", "upgrade")
    assert result.exit_code == 0, result.output
    assert bootstrap.head_revision() in result.output


def test_user_create_token_create_and_reset_password(client, database, world: World):
    domain = world.domain()
    email = f"{unique('cli')}@example.org"
    result = gaas("user", "create", "--email", email, "--name", "Cli Person", "--domain", domain,
                  "--role", "service_desk_agent", "--password", "a long cli password")
    assert result.exit_code == 0, result.output
    rows = database.owner_rows("SELECT a.action, a.user_email FROM gaas_audit.audit_log a"
                               " JOIN gaas_iam.users u ON u.id = a.entity_id WHERE u.email = :e ORDER BY a.timestamp",
                               e=email)
    assert [(r["action"], r["user_email"]) for r in rows] == [("create", "system@gaas.local"),
                                                            ("assign_role", "system@gaas.local")]

    token = gaas("token", "create", email, "--name", "script", "--read-only").output.strip()
    me = client.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"})
    assert me.status_code == 200
    assert me.json()["email"] == email
    assert me.json()["permissions"][0]["scope_domain"] == domain

    result = gaas("user", "reset-password", email, "--password", "another cli password")
    assert result.exit_code == 0, result.output
    login = client.post("/api/v1/auth/token", data={"username": email, "password": "another cli password"})
    assert login.status_code == 200


def test_cli_errors_are_one_clear_line(database, world: World):
    result = gaas("user", "create", "--email", "not-an-email", "--name", "X", "--password", "a long cli password")
    assert result.exit_code == 1
    assert "error" in result.output.lower() or "error" in (result.stderr or "").lower()
    assert "Traceback" not in result.output
    result = gaas("token", "create", "nobody-here@example.org")
    assert result.exit_code == 1
    result = gaas("user", "create", "--email", f"{unique('r')}@example.org", "--name", "X", "--role", "wizard",
                  "--password", "a long cli password")
    assert result.exit_code == 1


def test_reset_password_applies_the_password_policy(world: World):
    person = world.user(world.domain())
    result = gaas("user", "reset-password", person.email, "--password", "short")
    assert result.exit_code == 1
    assert "password" in result.output.lower()
