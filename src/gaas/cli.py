"""The `gaas` command: serve the platform and administer it.

With no GAAS_DATABASE_URL every command uses the embedded PostgreSQL in GAAS_DATA_DIR.
"""

from __future__ import annotations

import os
import signal
import sys
import uuid
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from gaas import __version__

app = typer.Typer(help=__doc__, no_args_is_help=True, rich_markup_mode="rich")
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
user_app = typer.Typer(help="Users.", no_args_is_help=True)
token_app = typer.Typer(help="API tokens.", no_args_is_help=True)
import_app = typer.Typer(help="Imports.", no_args_is_help=True)
sla_app = typer.Typer(help="SLA timers.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(user_app, name="user")
app.add_typer(token_app, name="token")
app.add_typer(import_app, name="import")
app.add_typer(sla_app, name="sla")
knowledge_app = typer.Typer(help="The knowledge base.", no_args_is_help=True)
search_app = typer.Typer(help="Global search.", no_args_is_help=True)
app.add_typer(knowledge_app, name="knowledge")
app.add_typer(search_app, name="search")
audit_app = typer.Typer(help="The tamper-evident audit log.", no_args_is_help=True)
app.add_typer(audit_app, name="audit")

console = Console()
err = Console(stderr=True)


def _in_batches(work, batch: int) -> int:
    """Run `work(db) -> rows done` as the platform, one transaction per batch, until a batch
    comes back short; the total."""
    from gaas.core.db import unit_of_work
    from gaas.iam import service as iam

    total = 0
    while True:
        with unit_of_work(iam.system_actor()) as db:
            done = work(db)
        total += done
        if done < batch:
            return total


def _fail(message: str) -> typer.Exit:
    err.print(f"[red]error:[/red] {message}")
    return typer.Exit(code=1)


@app.command()
def version() -> None:
    """Print the version."""
    console.print(__version__)


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    migrate: Annotated[bool, typer.Option(help="Run `db upgrade` first (always on the embedded database).")] = False,
    demo: Annotated[bool, typer.Option(help="Load the demo portfolio first (once; see `gaas demo-data`).")] = False,
    workers: Annotated[int, typer.Option(min=1, max=64, help="API processes (behind one listening socket).")] = 1,
) -> None:
    """Start the HTTP API and web UI.

    On the embedded database it migrates first and, on a database without one, creates the
    platform administrator [bold]admin[/bold] (password from GAAS_ADMIN_PASSWORD, or generated
    and printed once).
    """
    import uvicorn

    from gaas.core import bootstrap
    from gaas.core.db import app_engine
    from gaas.core.settings import get_settings

    settings = get_settings()
    try:
        if migrate or settings.uses_embedded_database:
            console.print("Migrating the database…")
            bootstrap.upgrade_database()
        bootstrap.check_app_role(app_engine())
    except bootstrap.SetupError as exc:
        raise _fail(str(exc)) from exc
    if not settings.uses_embedded_database and not (settings.secret_key and settings.app_database_url):
        err.print("[yellow]warning:[/yellow] GAAS_SECRET_KEY and GAAS_APP_DATABASE_URL are not set: this host "
                  f"keeps its own in {settings.data_dir}. Set both when several hosts serve one database.")
    bootstrap.ensure_audit_partitions()
    admin = bootstrap.ensure_admin()
    if admin.created and admin.password:
        console.print(f"[bold]Created platform administrator 'admin' with password:[/bold] {admin.password}")
        console.print("It is shown only this once; change it after logging in.")
    elif admin.created:
        console.print("Created platform administrator 'admin' (password from GAAS_ADMIN_PASSWORD).")
    if demo:
        demo_data(scale=1, seed=2026, password=os.environ.get("GAAS_DEMO_PASSWORD", "gaas-demo-password"))
    console.print(f"GaaS {__version__} on http://{host}:{port}  (API docs: http://{host}:{port}/api/docs)")
    from gaas.core.app import create_app

    # uvicorn re-raises SIGTERM after its graceful shutdown; turn it into a normal exit so that
    # exit handlers run (they stop the embedded PostgreSQL).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    from gaas.core.logs import configure_logging

    configure_logging(settings.log_format)
    if workers == 1:
        uvicorn.run(create_app(), host=host, port=port, log_level="info", proxy_headers=True, log_config=None)
        return
    # Worker processes start afresh: hand them the database this process settled on (the
    # embedded one included, which only this process manages) and a shared metrics directory.
    os.environ["GAAS_DATABASE_URL"] = settings.owner_url().render_as_string(hide_password=False)
    os.environ["GAAS_APP_DATABASE_URL"] = settings.app_url().render_as_string(hide_password=False)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(_fresh_dir(settings.ensure_data_dir() / "metrics"))
    uvicorn.run("gaas.cli:worker_app", factory=True, workers=workers, host=host, port=port, log_level="info",
                proxy_headers=True, log_config=None)


def worker_app():
    """The application in one of `serve --workers N`'s processes, logging like the parent."""
    from gaas.core.app import create_app
    from gaas.core.logs import configure_logging
    from gaas.core.settings import get_settings

    configure_logging(get_settings().log_format)
    return create_app()


def _fresh_dir(path: Path) -> Path:
    import shutil

    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    return path


@app.command("demo-data")
def demo_data(
    scale: Annotated[int, typer.Option(min=1, max=50, help="Business services per domain, in pairs.")] = 1,
    seed: Annotated[int, typer.Option(help="Random seed: the same seed gives the same portfolio.")] = 2026,
    password: Annotated[str, typer.Option(envvar="GAAS_DEMO_PASSWORD", help="Password of every demo user.")]
    = "gaas-demo-password",  # noqa: S107 - demo users' password is meant to be known
) -> None:
    """Load a demo government portfolio: healthcare, education and justice, with users for every
    role (e.g. healthcare.service_owner), services four levels deep, stakeholders and twelve
    months of cost entries. Does nothing if the demo domains exist already."""
    from gaas import demo

    with console.status("Loading demo data…"):
        counts = demo.load_demo(seed=seed, scale=scale, password=password)
    if not counts["domains"]:
        console.print("Demo data is already loaded.")
        return
    console.print("Loaded " + ", ".join(f"{n} {k.replace('_', ' ')}" for k, n in counts.items()) + ".")
    console.print(f"Demo users log in as <domain>.<role> (e.g. healthcare.service_owner) with password {password!r}.")


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Create or migrate the schema to the latest version, as the owner role (GAAS_DATABASE_URL).

    Also creates the application role if it is missing and syncs the default roles.
    """
    from gaas.core import bootstrap

    try:
        bootstrap.upgrade_database()
    except bootstrap.SetupError as exc:
        raise _fail(str(exc)) from exc
    console.print(f"Database at revision {bootstrap.head_revision()}.")


@user_app.command("create")
def user_create(
    email: Annotated[str, typer.Option(help="E-mail address (also a login name).")],
    name: Annotated[str, typer.Option(help="Full name.")],
    username: Annotated[str | None, typer.Option(help="Optional short login name.")] = None,
    domain: Annotated[str | None, typer.Option(help="Home domain code; omit for a global user.")] = None,
    role: Annotated[list[str] | None,
                    typer.Option(help="Default role to give (repeatable), e.g. service_desk_agent.")] = None,
    password: Annotated[str | None, typer.Option(prompt=True, hide_input=True, confirmation_prompt=True,
                                                 help="Password (prompted when not given).")] = None,
) -> None:
    """Create a user, optionally with roles (scoped to the user's domain, or global)."""
    from gaas.core.db import unit_of_work
    from gaas.core.errors import Problem
    from gaas.iam import service as iam
    from gaas.iam.schemas import UserCreate, UserRoleCreate

    actor = iam.system_actor()
    try:
        with unit_of_work(actor) as db:
            user = iam.create_user(db, actor, UserCreate(email=email, name=name, username=username, domain=domain,
                                                         password=password or None))
            for role_name in role or []:
                found = iam.role_by_name(db, role_name) or (domain and iam.role_by_name(db, role_name, domain))
                if not found:
                    raise _fail(f"no role '{role_name}'")
                if domain:
                    scope = iam.domain_by_code(db, domain)
                    iam.assign_role(db, actor, user.id, UserRoleCreate(role_id=found.id, scope_type="domain",
                                                                       scope_id=scope.id))
                else:
                    iam.assign_role(db, actor, user.id, UserRoleCreate(role_id=found.id))
    except Problem as exc:
        raise _fail(exc.detail) from exc
    except ValueError as exc:
        raise _fail(str(exc)) from exc
    console.print(f"Created user {user.email} ({user.id}).")


@user_app.command("reset-password")
def user_reset_password(
    login: Annotated[str, typer.Argument(help="E-mail or user name.")],
    password: Annotated[str, typer.Option(prompt=True, hide_input=True, confirmation_prompt=True)],
) -> None:
    """Set a user's password and clear any lockout."""
    from pydantic import ValidationError

    from gaas.core.db import unit_of_work
    from gaas.core.errors import Problem
    from gaas.iam import service as iam
    from gaas.iam.schemas import PasswordReset

    actor = iam.system_actor()
    try:
        checked = PasswordReset(new_password=password).new_password
        with unit_of_work(actor) as db:
            user = _find_user(db, actor, login)
            iam.reset_password(db, actor, user.id, checked)
    except ValidationError as exc:
        raise _fail("password: " + exc.errors()[0]["msg"]) from exc
    except Problem as exc:
        raise _fail(exc.detail) from exc
    console.print(f"Password of {user.email} reset.")


@token_app.command("create")
def token_create(
    login: Annotated[str, typer.Argument(help="E-mail or user name of the token's owner.")],
    name: Annotated[str, typer.Option(help="What the token is for, e.g. 'monitoring'.")] = "cli token",
    read_only: Annotated[bool, typer.Option(help="The token may only read.")] = False,
    days: Annotated[int, typer.Option(help="Days until it expires.")] = 90,
) -> None:
    """Create an API token for a user and print it (shown only once)."""
    from gaas.core.db import unit_of_work
    from gaas.core.errors import Problem
    from gaas.iam import service as iam
    from gaas.iam.schemas import TokenCreate

    actor = iam.system_actor()
    try:
        with unit_of_work(actor) as db:
            user = _find_user(db, actor, login)
            text, _ = iam.create_token(db, actor, TokenCreate(name=name, read_only=read_only, expires_in_days=days),
                                       user.id)
    except Problem as exc:
        raise _fail(exc.detail) from exc
    console.print(text)


@import_app.command("cis")
def import_cis(
    file: Annotated[typer.FileBinaryRead, typer.Argument(help="CSV, NDJSON or JSON file of CIs and relationships.")],
    source: Annotated[str, typer.Option(help="Who discovered these, e.g. aws-auto-discovery.")],
    owner: Annotated[str, typer.Option(help="E-mail or user name of the owner of CIs that name none.")],
    domain: Annotated[str | None, typer.Option(help="Domain of rows that name none.")] = None,
    format: Annotated[str | None, typer.Option(help="csv, ndjson or json (default: from the file name).")] = None,
    dry_run: Annotated[bool, typer.Option(help="Report what would change; write nothing.")] = False,
    partial: Annotated[bool, typer.Option(help="Commit the good rows even if some are bad.")] = False,
) -> None:
    """Reconcile discovered CIs into the CMDB: match by each class's identification rule, update
    what this source may write, create the rest. Streams the file in batches."""
    import os as _os

    from rich.progress import BarColumn, DownloadColumn, Progress, TimeRemainingColumn

    from gaas.cmdb import importer
    from gaas.cmdb.api import FORMATS
    from gaas.core.db import unit_of_work
    from gaas.core.errors import Problem
    from gaas.iam import service as iam

    fmt = format or next((f for suffix, f in FORMATS.items() if file.name.lower().endswith(suffix)), None)
    if fmt is None:
        raise _fail("say --format csv|ndjson|json, or name the file .csv/.ndjson/.json")
    size = _os.fstat(file.fileno()).st_size if hasattr(file, "fileno") else None

    class _Rollback(Exception):
        pass

    actor = iam.system_actor()
    result = None
    try:
        with Progress("[progress.description]{task.description}", BarColumn(), DownloadColumn(),
                      TimeRemainingColumn(), console=err) as progress:
            task = progress.add_task(f"importing {file.name}", total=size)

            def advance(_rows: int) -> None:
                progress.update(task, completed=file.tell() if hasattr(file, "tell") else None)

            with unit_of_work(actor) as db:
                owner_id = _find_user(db, actor, owner).id
                result = importer.import_cis(db, actor, importer.read_rows(file, fmt), source=source,
                                             dry_run=dry_run, partial=partial, default_domain=domain,
                                             owner_id=owner_id, progress=advance)
                if not result.committed:
                    raise _Rollback
    except _Rollback:
        pass
    except Problem as exc:
        raise _fail(exc.detail) from exc
    assert result is not None
    if result.committed and result.created:
        # What the worker would do within seconds, done here too: a laptop may run no worker.
        from gaas.cmdb import service as cmdb

        with err.status("indexing the new CIs' names for fuzzy search"), unit_of_work(actor) as db:
            cmdb.drain_pending_search_names(db)
    for error in result.errors[:50]:
        err.print(f"line {error['line']}: {error['field']}: {error['message']}")
    console.print(f"{result.rows} rows: {result.created} created, {result.updated} updated, {result.unchanged} "
                  f"unchanged, {result.merged} merged, {result.rejected} rejected; relationships: "
                  f"{result.relationships_created} created, {result.relationships_unchanged} unchanged.")
    if dry_run:
        console.print("Dry run: nothing was written.")
    elif not result.committed:
        raise _fail("bad rows and no --partial: nothing was written")


@import_app.command("servicenow")
def import_servicenow(
    files: Annotated[list[Path], typer.Argument(exists=True, dir_okay=False, readable=True,
                                                help="ServiceNow exports: XML unloads, JSON or CSV, each named "
                                                     "after its table (incident.json) unless --table says.")],
    domain: Annotated[str, typer.Option(help="The GaaS domain the records go into.")],
    owner: Annotated[str | None, typer.Option(help="E-mail or user name of the owner of CIs that name none.")] = None,
    table: Annotated[str | None, typer.Option(help="The table every file is an export of.")] = None,
    dry_run: Annotated[bool, typer.Option(help="Report what would change; write nothing.")] = False,
    partial: Annotated[bool, typer.Option(help="Commit the good rows even if some are bad.")] = False,
) -> None:
    """Import ServiceNow exports (incident, problem, change_request, cmdb_ci*, cmdb_rel_ci, sys_user,
    sys_user_group, kb_knowledge) through the modules' services. sys_id is kept as an external key:
    importing the same export again changes nothing. References are resolved across the files."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    from gaas.core.context import RequestInfo
    from gaas.core.db import unit_of_work
    from gaas.core.errors import Problem
    from gaas.iam import service as iam
    from gaas.servicenow import importer

    class _Rollback(Exception):
        pass

    actor = iam.system_actor(RequestInfo(request_id=f"servicenow-import-{uuid.uuid4()}", entry_point="cli"))
    result = None
    try:
        with Progress("[progress.description]{task.description}", BarColumn(), MofNCompleteColumn(),
                      TimeRemainingColumn(), console=err) as progress:
            task = progress.add_task(f"importing {len(files)} file(s)", total=None)
            with unit_of_work(actor) as db:
                iam.require_active_domain(db, domain)
                owner_id = _find_user(db, actor, owner).id if owner else None
                result = importer.import_files(db, actor, files, domain=domain, owner_id=owner_id, table=table,
                                               progress=lambda n: progress.advance(task, n),
                                               on_total=lambda n: progress.update(task, total=n))
                result.committed = not dry_run and (partial or not result.errors)
                if not result.committed:
                    raise _Rollback
    except _Rollback:
        pass
    except Problem as exc:
        raise _fail(exc.detail) from exc
    assert result is not None
    for error in result.errors[:100]:
        err.print(f"{error['file']}:{error['line']}: {error['table']} {error['sys_id']}: {error['field']}: "
                  f"{error['message']}", markup=False, highlight=False, soft_wrap=True)
    if len(result.errors) > 100:
        err.print(f"... and {len(result.errors) - 100} more errors")
    for name, fields in sorted(result.ignored_fields.items()):
        if fields:
            err.print(f"{name}: not kept by GaaS: {', '.join(sorted(fields))}", markup=False, highlight=False,
                      soft_wrap=True)
    console.print(f"{result.rows} rows: {result.created} created, {result.updated} updated, {result.unchanged} "
                  f"unchanged, {result.rejected} rejected.")
    if dry_run:
        console.print("Dry run: nothing was written.")
    elif not result.committed:
        raise _fail("bad rows and no --partial: nothing was written")


@sla_app.command("check")
def sla_check(
    batch: Annotated[int, typer.Option(min=1, max=100_000, help="Incidents marked per transaction.")] = 1000,
) -> None:
    """Mark open incidents past their SLA due date as breached (each exactly once, with its audit
    row and incident.sla_breached event). Safe to run from several hosts at once; the worker will
    run it on a schedule."""
    from gaas.incidents import service as incidents

    total = _in_batches(lambda db: incidents.mark_sla_breaches(db, batch=batch), batch)
    console.print(f"{total} incident(s) newly marked as breached.")


@knowledge_app.command("retire-expired")
def knowledge_retire_expired(
    batch: Annotated[int, typer.Option(min=1, max=100_000, help="Articles retired per transaction.")] = 1000,
) -> None:
    """Retire published articles whose valid_to has passed (audited, with an article.retired
    event each). Safe to run from several hosts at once; the worker runs it on a schedule."""
    from gaas.knowledge import service as knowledge

    total = _in_batches(lambda db: knowledge.retire_expired(db, batch=batch), batch)
    console.print(f"{total} article(s) retired.")


@search_app.command("reindex")
def search_reindex(
    domain: Annotated[str | None, typer.Option(help="Only this domain's records (default: all).")] = None,
    batch: Annotated[int, typer.Option(min=100, max=100_000, help="Rows per transaction.")] = 5000,
) -> None:
    """Recompute the full-text vectors of articles, incidents, problems, changes and services,
    after a domain's search language changed (PUT /api/v1/search/language)."""
    from gaas.core.db import unit_of_work
    from gaas.iam import service as iam
    from gaas.search import service as search

    totals = search.reindex(lambda: unit_of_work(iam.system_actor()), domain, batch=batch)
    console.print(", ".join(f"{count:,} {kind}" for kind, count in totals.items()) + " reindexed.")


@app.command("worker")
def worker_command(
    concurrency: Annotated[int | None, typer.Option(min=1, max=64, help="Worker threads (GAAS_WORKER_CONCURRENCY).")]
    = None,
    once: Annotated[bool, typer.Option(help="Do everything due now, then exit.")] = False,
) -> None:
    """Deliver events (webhooks, event-triggered workflows), advance workflows, send e-mail, escalate
    overdue steps, fire schedules and keep partitions ahead. Run as many as you like, on as many hosts
    as you like: they share the work through PostgreSQL. Stops cleanly on SIGTERM."""
    import logging

    from sqlalchemy.orm import sessionmaker

    from gaas.core import bootstrap
    from gaas.core.db import make_engine
    from gaas.core.settings import get_settings
    from gaas.workflow.worker import Worker

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = get_settings()
    try:
        if settings.uses_embedded_database:
            bootstrap.upgrade_database()
        threads = concurrency or settings.worker_concurrency
        # application_name shows each worker in pg_stat_activity.
        engine = make_engine(settings.app_url(), pool_size=threads + 1, max_overflow=2,
                             connect_args={"application_name": f"gaas-worker:{os.getpid()}"})
        bootstrap.check_app_role(engine)
    except bootstrap.SetupError as exc:
        raise _fail(str(exc)) from exc
    listen_url = settings.app_url().set(drivername="postgresql").render_as_string(hide_password=False)
    worker = Worker(sessionmaker(bind=engine, expire_on_commit=False), settings, concurrency=threads,
                    listen_url=listen_url)
    if once:
        console.print(f"{worker.run_until_idle()} item(s) of work done.")
        return
    worker.serve()


def _find_user(db, actor, login: str):
    from sqlalchemy import or_, select

    from gaas.iam.models import User

    value = login.strip().lower()
    user = db.scalar(select(User).where(or_(User.email == value, User.username == value),
                                        User.deleted_at.is_(None)))
    if user is None:
        try:
            user = db.get(User, uuid.UUID(login))
        except ValueError:
            user = None
    if user is None:
        raise _fail(f"no user '{login}'")
    return user


if __name__ == "__main__":
    app()


@app.command("backup")
def backup_command(
    to: Annotated[Path | None, typer.Option(help="Directory for the dumps (default: <data dir>/backups).")] = None,
    keep: Annotated[int, typer.Option(min=1, help="How many backups of this database to keep.")] = 7,
) -> None:
    """Back up the database: pg_dump custom format, with a SHA-256 and a manifest of row counts
    taken from the same snapshot; older backups beyond --keep are removed."""
    from gaas.core import backup
    from gaas.core.settings import get_settings

    settings = get_settings()
    try:
        with console.status("Dumping…"):
            done = backup.backup(settings.owner_url(), to or settings.ensure_data_dir() / "backups", keep=keep)
    except backup.BackupError as exc:
        raise _fail(str(exc)) from exc
    console.print(f"Backed up {sum(done.tables.values()):,} rows in {len(done.tables)} tables to {done.path}")
    console.print(f"SHA-256 {done.sha256}")
    for old in done.removed:
        console.print(f"Removed old backup {old.name}")


@app.command("restore")
def restore_command(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="A .dump written by `gaas backup`.")],
) -> None:
    """Restore a backup into the empty database GAAS_DATABASE_URL names, after checking its
    SHA-256; then migrate, compare every table's row count with the backup's manifest and verify
    the audit log's seals (as `gaas audit verify`)."""
    from gaas.core import backup
    from gaas.core.settings import get_settings

    try:
        with console.status("Restoring…"):
            restored = backup.restore(file, get_settings().owner_url())
    except backup.BackupError as exc:
        raise _fail(str(exc)) from exc
    for table, (expected, actual) in restored.differences.items():
        err.print(f"[red]{table}[/red]: {actual} rows, the backup had {expected}")
    for finding in restored.audit_findings:
        err.print(f"[red]audit log[/red]: {finding}")
    if not restored.faithful:
        raise _fail("The restored database does not match the backup.")
    console.print(f"Restored {file.name}; every table has the backup's row count and the audit log verifies.")


@audit_app.command("seal")
def audit_seal() -> None:
    """Seal every audit row whose transaction has ended into its domain's monthly SHA-256 chain
    (the worker does this every minute)."""
    from gaas.audit import seal
    from gaas.core.db import unit_of_work
    from gaas.iam.service import system_actor

    with unit_of_work(system_actor()) as db:
        count = seal.seal(db)
    console.print(f"Sealed {count:,} audit rows.")


@audit_app.command("verify")
def audit_verify(
    period: Annotated[str | None, typer.Option(help="Only this month, YYYY-MM.")] = None,
) -> None:
    """Recompute every sealed chain and name, per chain, the first row that was changed, removed
    or inserted out of band; print the chain heads to keep elsewhere. Exit code 1 on any finding."""
    from datetime import date

    from sqlalchemy import create_engine, pool

    from gaas.audit import seal
    from gaas.core.settings import get_settings

    month = None
    if period:
        try:
            month = date.fromisoformat(f"{period}-01")
        except ValueError as exc:
            raise _fail("--period is a month, YYYY-MM") from exc
    engine = create_engine(get_settings().owner_url(), poolclass=pool.NullPool)
    try:
        with engine.connect() as conn:
            result = seal.verify(conn, period=month)
    finally:
        engine.dispose()
    for chain, head in sorted(result.heads.items()):
        console.print(f"{chain}  {head}")
    if result.intact:
        console.print(f"Audit log intact: {result.rows:,} sealed rows in {result.chains} chains.")
        return
    for finding in result.findings:
        err.print(f"[red]{finding.kind}[/red] {finding.chain_domain or '(global)'}/{finding.period:%Y-%m} "
                  f"position {finding.position}: row {finding.audit_id}: {finding.detail}")
    raise _fail(f"{len(result.findings)} chain(s) do not verify.")


@audit_app.command("archive")
def audit_archive(
    before: Annotated[str, typer.Option(help="Archive the months that end on or before this date, YYYY-MM-DD.")],
    to: Annotated[Path | None, typer.Option(help="Directory for the exports (default: <data dir>/audit-archive).")]
    = None,
) -> None:
    """Export old monthly partitions of the audit log (verified and fully sealed) to gzip'd CSV,
    record each file's SHA-256 in gaas_audit.archives, then detach and drop them."""
    from datetime import date

    from sqlalchemy import create_engine, pool

    from gaas.audit import seal
    from gaas.core.settings import get_settings

    try:
        cutoff = date.fromisoformat(before)
    except ValueError as exc:
        raise _fail("--before is a date, YYYY-MM-DD") from exc
    settings = get_settings()
    engine = create_engine(settings.owner_url(), poolclass=pool.NullPool)
    try:
        with engine.begin() as conn:
            done = seal.archive(conn, cutoff, to or settings.ensure_data_dir() / "audit-archive")
    except seal.ArchiveRefused as exc:
        raise _fail(str(exc)) from exc
    finally:
        engine.dispose()
    for item in done:
        console.print(f"{item.partition}: {item.rows:,} rows to {item.path} (SHA-256 {item.sha256})")
    if not done:
        console.print("Nothing to archive before that date.")
