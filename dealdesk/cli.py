"""The ``dealdesk`` command."""

from __future__ import annotations

import asyncio
import getpass
import os
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from dealdesk.settings import get_settings
from store.db import make_engine, make_session_factory, write_lock

app = typer.Typer(help="dealdesk: deal-desk engine on Temporal", no_args_is_help=True)
users_app = typer.Typer(help="Manage users", no_args_is_help=True)
audit_app = typer.Typer(help="The audit log: hash chain, Merkle tree, signed tree heads",
                        no_args_is_help=True)
policies_app = typer.Typer(help="Approval policies", no_args_is_help=True)
pki_app = typer.Typer(help="The internal PKI under var/pki", no_args_is_help=True)
app.add_typer(users_app, name="users")
app.add_typer(audit_app, name="audit")
app.add_typer(policies_app, name="policies")
catalog_app = typer.Typer(help="The product catalog and price books", no_args_is_help=True)
app.add_typer(catalog_app, name="catalog")
app.add_typer(pki_app, name="pki")
tokens_app = typer.Typer(help="API tokens: list and revoke", no_args_is_help=True)
app.add_typer(tokens_app, name="tokens")
console = Console()
err = Console(stderr=True)


def _sessions() -> sessionmaker[Session]:
    return make_session_factory(make_engine(get_settings().database_url))


def _warn_missing_tools() -> None:
    """Name what this machine lacks, with its package, at start-up: better than a traceback
    at the first Word upload. The app still starts; only those features are off."""
    from dealdesk.tools import missing, warnings

    for line in warnings(missing()):
        err.print(f"warning: {line}", style="yellow", markup=False, highlight=False,
                  soft_wrap=True)


@app.command()
def migrate() -> None:
    """Apply database migrations (Alembic) up to the newest."""
    from store.migrate import upgrade

    upgrade(get_settings().database_url)
    console.print("database is up to date")


@app.command()
def worker(standby: Annotated[Path | None, typer.Option(
        help="load everything, create this file, then wait for SIGUSR1 before polling (the "
             "warm spare `dealdesk up` keeps)", hidden=True)] = None) -> None:
    """Run a Temporal worker for the deal workflows and their activities."""
    from dealdesk.runtime import run_worker

    _warn_missing_tools()
    os.nice(WORKER_NICE)
    asyncio.run(run_worker(get_settings(), standby=standby))


WORKER_NICE = 10
"""The worker and what it starts (LibreOffice, sandboxed renders) yield the CPU to the web
process: people waiting on a page come before background work when both want the cores."""
KEEP_ALIVE_S = 90


@app.command()
def web() -> None:
    """Serve the web UI and the JSON API."""
    import uvicorn

    from web.health_first import HealthFirstProtocol

    settings = get_settings()
    _warn_missing_tools()
    # Idle connections are kept longer than clients and proxies keep theirs (httpx 5 s, nginx
    # 75 s): with uvicorn's 5 s, a client reusing a connection just as the server closed it
    # got "disconnected without sending a response" under load.
    uvicorn.run("web.app:create_app", factory=True, host=settings.web_host,
                port=settings.web_port, log_level="warning", proxy_headers=True,
                timeout_keep_alive=KEEP_ALIVE_S, http=HealthFirstProtocol)


@app.command()
def up(demo: Annotated[bool, typer.Option(help="seed demo users, policy and quotes")] = False
       ) -> None:
    """Start everything on this machine: Temporal dev server, migrations, worker, web."""
    from dealdesk.stack import run_stack

    _warn_missing_tools()
    sys.exit(run_stack(get_settings(), demo=demo))


@users_app.command("create")
def users_create(
    email: str,
    name: Annotated[str, typer.Option(help="full name")],
    role: Annotated[list[str], typer.Option(help="a role; repeat for several")],
    manager: Annotated[str | None, typer.Option(help="manager's email")] = None,
    password: Annotated[str | None, typer.Option(
        help="password (prompted when omitted; or set DEALDESK_NEW_PASSWORD)")] = None,
) -> None:
    """Create a user with roles."""
    from store import audit
    from store.models import ROLES, User, UserRole
    from store.who import Who
    from web.services.passwords import hash_password

    bad = [r for r in role if r not in ROLES]
    if bad:
        err.print(f"unknown role(s) {', '.join(bad)}; use {', '.join(ROLES)}")
        raise typer.Exit(2)
    password = password or os.environ.get("DEALDESK_NEW_PASSWORD") or getpass.getpass()
    if len(password) < 4:
        err.print("the password is too short")
        raise typer.Exit(2)
    password_hash = hash_password(password)  # before the write lock: it takes a while
    with _sessions()() as s:
        write_lock(s)
        if s.scalar(select(User).where(func.lower(User.email) == email.lower())):
            err.print(f"a user with email {email} exists already")
            raise typer.Exit(2)
        boss = None
        if manager:
            boss = s.scalar(select(User).where(func.lower(User.email) == manager.lower()))
            if boss is None:
                err.print(f"no user with email {manager}")
                raise typer.Exit(2)
        user = User(email=email, name=name, password_hash=password_hash,
                    manager_id=boss.id if boss else None)
        user.role_rows = [UserRole(role=r) for r in sorted(set(role))]
        s.add(user)
        s.flush()
        audit.append(s, event_key=f"user-{user.id}-created", actor=Who.system("cli:users"),
                     action="user.created", entity=audit.entity("user", user.id),
                     data={"email": user.email, "roles": sorted(set(role))})
        s.commit()
    console.print(f"created {email} ({', '.join(role)})")


@tokens_app.command("list")
def tokens_list(user: Annotated[str | None, typer.Option(
        "--user", help="only this user's tokens (their email)")] = None) -> None:
    """List API tokens, newest first: number, owner, name, first characters, dates, status."""
    from store.models import User
    from web.services import api_tokens

    def when(value: object) -> str:
        return f"{value:%Y-%m-%d %H:%M}" if value else "never"

    with _sessions()() as s:
        owner = None
        if user:
            owner = s.scalar(select(User).where(func.lower(User.email) == user.strip().lower()))
            if owner is None:
                err.print(f"no user with email {user}")
                raise typer.Exit(2)
        rows = api_tokens.tokens_of(s, owner.id if owner else None)
        emails = {uid: email for uid, email in s.execute(select(User.id, User.email))}
        line = "{:>5}  {:<28}  {:<20}  {:<14}  {:<16}  {:<16}  {:<16}  {}"
        typer.echo(line.format("ID", "USER", "NAME", "TOKEN", "CREATED (UTC)", "EXPIRES",
                               "LAST USED", "STATUS"))
        for t in rows:
            typer.echo(line.format(t.id, emails.get(t.user_id, "?")[:28], (t.name or "-")[:20],
                                   f"{t.prefix}…" if t.prefix else "-", when(t.created_at),
                                   when(t.expires_at), when(t.last_used_at),
                                   api_tokens.status(t)))
    if not rows:
        err.print("no API tokens" + (f" of {user}" if user else ""))


@tokens_app.command("revoke")
def tokens_revoke(token: Annotated[str, typer.Argument(
        help="the token's number (ID in `tokens list`) or its first characters, ddk_…")]) -> None:
    """Revoke an API token: requests with it get 401 from now on."""
    from web.errors import AppError
    from web.services import api_tokens

    with _sessions()() as s:
        write_lock(s)
        try:
            row = api_tokens.find(s, token)
        except AppError as e:
            err.print(e.message, markup=False, highlight=False)
            raise typer.Exit(2) from None
        revoked = api_tokens.revoke(s, row, actor="system", via="cli")
        s.commit()
        label = f"token {row.id} ({row.name or row.prefix or 'unnamed'}) of {row.user.email}"
    console.print(f"revoked {label}" if revoked else f"{label} was revoked already",
                  markup=False, highlight=False)


@audit_app.command("export")
def audit_export(deal: Annotated[int, typer.Argument(help="the deal's id")],
                 output: Annotated[Path, typer.Option("-o", "--output",
                                                      help="the zip to write")]) -> None:
    """Write a deal's evidence bundle: a zip whose verify.py checks it offline."""
    from dealdesk.parts import open_pki
    from dealdesk.runtime import connect
    from documents.timestamps import internal_timestamper
    from store.blobs import BlobStore
    from web.errors import NotFound
    from web.services import deal_history, evidence

    settings = get_settings()

    async def run() -> bytes:
        try:
            client = await connect(settings, attempts=4)
        except RuntimeError:
            err.print(f"Temporal at {settings.temporal_address} doesn't answer: the bundle "
                      "has no live workflow histories")
            client = None
        runs = await deal_history.recorded(client, _sessions(), settings.workflow_prefix, deal)
        pki = open_pki(settings)
        with _sessions()() as s, evidence.seal_signer(pki, settings.hsm) as seal:
            _, data = await evidence.export(
                s, None, deal, blobs=BlobStore(settings.blob_dir), pki=pki, seal=seal,
                tsa=internal_timestamper(pki), histories=runs)
        return data

    try:
        data = asyncio.run(run())
    except NotFound as e:
        err.print(e.message)
        raise typer.Exit(1) from None
    output.write_bytes(data)
    console.print(f"wrote {output} ({len(data):,} bytes); check it with: unzip it, then "
                  "python verify.py")


@audit_app.command("verify")
def audit_verify(documents: Annotated[bool, typer.Option(
        help="also check every stored document against its hash and every sealed PDF's "
             "signatures")] = True) -> None:
    """Check the whole audit log: the hash chain, the Merkle tree against the rows, and every
    signed tree head (root, seal signature, timestamp); then the documents behind it. Exits 1
    naming each break: the row, node or head, the document, the envelope and signature."""
    from dealdesk.parts import open_pki
    from store.blobs import BlobStore
    from web.services import transparency
    from web.services.document_checks import check_documents

    settings = get_settings()
    roots = open_pki(settings).trust_roots()
    with _sessions()() as s:
        result = transparency.verify_log(s, roots)
        docs = check_documents(s, BlobStore(settings.blob_dir), roots) if documents else None
    for problem in docs.problems if docs else []:
        err.print(f"document BROKEN: {problem}", markup=False, highlight=False)
    if result.ok:
        console.print(f"audit chain intact: {result.rows} rows verified")
        console.print(f"Merkle tree intact: {result.rows} leaves; {result.heads} signed tree "
                      "heads valid")
        if docs is not None and docs.ok:
            console.print(f"documents intact: {docs.blobs} stored files match their hashes; "
                          f"{docs.sealed} sealed PDFs validate")
        if docs is not None and not docs.ok:
            raise typer.Exit(1)
        return
    if result.bad_head_id is not None:
        where = f"tree head {result.bad_head_id}"
    elif result.bad_row_id is not None:
        where = f"row {result.bad_row_id}"
    elif result.bad_node is not None:
        where = f"node (level {result.bad_node[0]}, index {result.bad_node[1]})"
    else:
        where = "the chain head" if result.part == "chain" else "the tree head"
    what = "audit chain" if result.part == "chain" else "audit log"
    err.print(f"{what} BROKEN at {where}: {result.problem}", markup=False, highlight=False)
    raise typer.Exit(1)


@audit_app.command("archive")
def audit_archive(
    deal: Annotated[int | None, typer.Option(help="only this deal's runs")] = None,
    batch: Annotated[int, typer.Option(min=1, max=1000, help="runs per batch")] = 50,
) -> None:
    """Archive the histories of closed workflow runs into the store now (what the worker does
    every minute), each run once; a history Temporal already deleted is reported."""
    from dealdesk.runtime import connect
    from store.who import Who
    from web.services.histories import archive_closed

    settings = get_settings()
    sessions = _sessions()

    async def archive_all() -> tuple[int, int]:
        client = await connect(settings, attempts=3)
        archived = gone = 0
        while True:
            report = await archive_closed(
                client, sessions, task_queue=settings.task_queue,
                prefix=settings.workflow_prefix, deal_id=deal, batch_size=batch,
                actor=Who.system("cli:audit"))
            archived, gone = archived + len(report.archived), gone + len(report.gone)
            if not report.left or not (report.archived or report.gone):
                return archived, gone

    archived, gone = asyncio.run(archive_all())
    console.print(f"archived {archived} run(s)" + (f" of deal {deal}" if deal else "")
                  + (f"; {gone} already deleted from Temporal" if gone else ""))


@audit_app.command("replay")
def audit_replay(deal: Annotated[int, typer.Argument(help="the deal's number")]) -> None:
    """Replay every recorded history of a deal (from Temporal, or from the archive once
    Temporal deleted it) on today's workflow code; exits 1 naming each run that doesn't."""
    from dealdesk.runtime import connect
    from store.deals import Deal
    from web.services.histories import RecordedRun, replay_deal
    from workflows.replay_check import ReplayOutcome

    settings = get_settings()
    sessions = _sessions()
    with sessions() as s:
        if s.get(Deal, deal) is None:
            err.print(f"no deal {deal}")
            raise typer.Exit(2)

    async def check() -> list[tuple[RecordedRun, ReplayOutcome]]:
        client = await connect(settings, attempts=3)
        return await replay_deal(client, sessions, settings.workflow_prefix, deal)

    results = asyncio.run(check())
    failed = [(run, outcome) for run, outcome in results if not outcome.ok]
    for run, outcome in results:
        line = f"{run.workflow_id} run {run.run_id} ({run.workflow_type}, {run.source})"
        typer.echo(f"replays  {line}" if outcome.ok else f"FAILS    {line}: {outcome.error}")
    if not results:
        console.print(f"deal {deal} has no recorded workflow histories")
    if failed:
        err.print(f"{len(failed)} of {len(results)} run(s) of deal {deal} no longer replay: "
                  + ", ".join(f"{run.workflow_id} ({run.run_id})" for run, _ in failed),
                  markup=False, highlight=False, soft_wrap=True)
        raise typer.Exit(1)


def _print_json(value: object) -> None:
    import json

    print(json.dumps(value, indent=2))  # plain: rich would wrap and colour it


@audit_app.command("prove")
def audit_prove(row_id: int, head: Annotated[int | None, typer.Option(
        help="the signed tree head's id (default: the latest that holds the row)")] = None
        ) -> None:
    """Print one row's inclusion proof (its leaf, audit path and the signed head) as JSON."""
    from store.transparency import TreeError
    from web.services import transparency

    with _sessions()() as s:
        try:
            _print_json(transparency.prove_row(s, row_id, head))
        except TreeError as e:
            err.print(str(e), markup=False, highlight=False)
            raise typer.Exit(2) from None


@audit_app.command("consistency")
def audit_consistency(old: int, new: int) -> None:
    """Print the consistency proof between two signed tree heads (by id) as JSON; exits 1
    if it does not verify (the log's past was rewritten)."""
    from store.transparency import TreeError
    from web.services import transparency

    with _sessions()() as s:
        try:
            result = transparency.consistency_between(s, old, new)
        except TreeError as e:
            err.print(str(e), markup=False, highlight=False)
            raise typer.Exit(2) from None
    _print_json(result)
    if not result["consistent"]:
        raise typer.Exit(1)


@audit_app.command("sign-head")
def audit_sign_head(force: Annotated[bool, typer.Option(
        help="sign even if the latest head has the same size")] = False) -> None:
    """Seal and timestamp the log's current tree head (the worker does so hourly)."""
    from dealdesk.parts import tree_head_signer
    from store.models import TreeHead

    sign = tree_head_signer(get_settings(), only_if_grown=not force)
    with _sessions()() as s:
        head = sign(s)
        if not isinstance(head, TreeHead):
            console.print("the log has not grown since the latest tree head")
            return
        console.print(f"tree head {head.id}: {head.tree_size} leaves, root {head.root_hash}")


@pki_app.command("seal-hsm")
def pki_seal_hsm() -> None:
    """Create the organisation seal's key in the PKCS#11 token named by DEALDESK_SEAL_PKCS11_*
    settings (once) and issue its certificate from the internal CA."""
    from dealdesk.parts import open_pki
    from documents.hsm import HsmError, provision_seal

    settings = get_settings()
    if settings.hsm is None:
        err.print("set DEALDESK_SEAL_PKCS11_MODULE, _TOKEN and _PIN first")
        raise typer.Exit(2)
    try:
        cert = provision_seal(open_pki(settings), settings.hsm)
    except HsmError as e:
        err.print(str(e))
        raise typer.Exit(2) from None
    console.print(f"seal key {settings.hsm.key_label!r} on token {settings.hsm.token_label!r}; "
                  f"certificate serial {cert.serial_number:x} issued by the internal CA")


@policies_app.command("load")
def policies_load(file: Path) -> None:
    """Validate a policy YAML file and save it as the policy's next version."""
    from web.errors import Invalid
    from web.services.policies import save_policy

    if not file.is_file():
        err.print(f"no file {file}")
        raise typer.Exit(2)
    with _sessions()() as s:
        write_lock(s)
        try:
            row = save_policy(s, file.read_text(), None)
        except Invalid as e:
            err.print(f"{file}: {e.message}")
            raise typer.Exit(2) from None
        s.commit()
        console.print(f"saved policy {row.name} version {row.version}")


@catalog_app.command("load")
def catalog_load(file: Path) -> None:
    """Validate a catalog YAML file (products, rules, schedules, price books, partner terms,
    rounding, taxes) and save it as the catalog's next version."""
    from web.errors import Invalid
    from web.services.catalog import save_catalog

    if not file.is_file():
        err.print(f"no file {file}")
        raise typer.Exit(2)
    with _sessions()() as s:
        write_lock(s)
        try:
            row = save_catalog(s, file.read_text(), None, note=f"loaded from {file.name}")
        except Invalid as e:
            err.print(f"{file}: {e.message}")
            raise typer.Exit(2) from None
        s.commit()
        console.print(f"saved catalog version {row.version}")


@app.command()
def verify(
    file: Path,
    as_json: Annotated[bool, typer.Option("--json", help="print the report as JSON")] = False,
    trust: Annotated[list[Path] | None, typer.Option(
        help="a trusted root certificate (PEM or DER); repeat for several; "
             "without it, the app's internal CA")] = None,
    at: Annotated[str | None, typer.Option(
        help="judge certificates at this ISO 8601 time instead of now (UTC if no offset)")
    ] = None,
) -> None:
    """Verify every signature in a PDF; exits 0 if all are valid, 1 if not, 2 if unreadable."""
    import datetime as dt
    import json
    import logging

    from documents import verify as verification

    # pyHanko logs each untrusted chain with a traceback; the report says it better.
    for name in ("pyhanko", "pyhanko_certvalidator"):
        logging.getLogger(name).setLevel(logging.CRITICAL)

    def fail(message: str) -> typer.Exit:
        err.print(message, markup=False, highlight=False, soft_wrap=True)
        return typer.Exit(2)

    moment = None
    if at:
        try:
            moment = dt.datetime.fromisoformat(at)
        except ValueError:
            raise fail(f"--at {at!r} is not an ISO 8601 time, e.g. 2024-05-01T12:00") from None
        moment = moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)
    try:
        roots = (verification.load_trust_roots(trust) if trust
                 else verification.default_trust_roots(get_settings().pki_dir))
        data = file.read_bytes()
    except ValueError as e:
        raise fail(f"{'--trust ' if trust else 'the internal CA: '}{e}") from None
    except OSError as e:
        raise fail(f"cannot read {file}: {e.strerror or e}") from None
    try:
        report = verification.verify_pdf(data, roots, moment=moment)
    except verification.UnreadablePdf as e:
        raise fail(f"{file}: {e.message}") from None
    if as_json:
        typer.echo(json.dumps({"file": str(file), **verification.to_json(report)}, indent=2))
    else:
        _print_report(file, report)
    if not report.valid:
        raise typer.Exit(1)


def _print_report(file: Path, report: object) -> None:
    import datetime as dt

    from rich.table import Table
    from rich.text import Text

    from documents.verify import VerificationReport

    assert isinstance(report, VerificationReport)

    def flag(label: str, value: bool | None) -> Text:
        return Text(f"{'✔' if value else '✘'} {label}", "green" if value else "red")

    table = Table(title=Text(str(file)), title_justify="left", show_lines=True)
    for column in ("Signature", "Checks", "Verdict"):
        table.add_column(column)
    for s in report.signatures:
        when = (s.signing_time.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
                + ("" if s.timestamped else " (claimed)")) if s.signing_time else "time unknown"
        who = " ".join(p for p in (s.signer_name, f"<{s.signer_email}>" if s.signer_email
                                   else None) if p) or "signer unknown"
        checks = Text(" ").join([flag("intact", s.intact), flag("valid", s.valid),
                                 flag("trusted", s.trusted)])
        checks.append("\nchanges after: " + (s.modification_level or "?").lower()
                      .replace("_", " ") + f"\nPAdES: {s.pades_level or '—'}")
        table.add_row(Text(f"{s.field_name} ({s.kind})\n{who}\n{when}"), checks,
                      Text("OK", "bold green") if s.ok else Text("FAIL", "bold red"))
    console.print(table)
    for s in report.signatures:
        for problem in s.problems:
            console.print(Text(f"{s.field_name}: {problem}", "red"))
    for line in (*report.problems, *report.notes):
        console.print(Text(line, "yellow"))
    console.print(Text("VALID: every signature checks out", "bold green") if report.valid
                  else Text("NOT VALID", "bold red"))
