"""kokyaku: init, serve, demo, user, token (more groups arrive with their domains)."""

import secrets
from typing import Annotated

import typer
from pydantic import ValidationError
from sqlalchemy import select

from kokyaku.audit.service import Actor
from kokyaku.auth import service as auth
from kokyaku.auth.models import User
from kokyaku.auth.permissions import ROLES
from kokyaku.auth.schemas import UserCreate, UserUpdate
from kokyaku.cli.analytics import analytics_app
from kokyaku.cli.commerce import metrics_app
from kokyaku.cli.common import console, database, fail, settings
from kokyaku.cli.customers import customers_app
from kokyaku.cli.feedback import reviews_app, surveys_app
from kokyaku.cli.imports import export_command, import_command
from kokyaku.cli.jobs import jobs_app, worker
from kokyaku.cli.segments import segments_app
from kokyaku.errors import KokyakuError

app = typer.Typer(
    help="Kokyaku (顧客): customer platform.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
)
user_app = typer.Typer(help="Users and roles.", no_args_is_help=True)
token_app = typer.Typer(help="API tokens.", no_args_is_help=True)
app.add_typer(user_app, name="user")
app.add_typer(token_app, name="token")
app.add_typer(metrics_app, name="metrics")
app.add_typer(customers_app, name="customers")
app.add_typer(jobs_app, name="jobs")
app.add_typer(segments_app, name="segments")
app.add_typer(surveys_app, name="surveys")
app.add_typer(reviews_app, name="reviews")
app.add_typer(analytics_app, name="analytics")
app.command()(worker)
app.command("import")(import_command)
app.command("export")(export_command)
CLI = Actor.system("cli")


@app.command()
def init() -> None:
    """Create the database or upgrade it to the current schema."""
    from kokyaku.migrate import upgrade

    s = settings()
    try:
        upgrade(s.database_url)
    except Exception as exc:
        fail(f"could not migrate the database: {type(exc).__name__}: {str(exc).splitlines()[0]}")
    console.print("database is up to date")


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    workers: Annotated[int, typer.Option(help="Web worker processes.")] = 1,
) -> None:
    """Run the web application (pages and API)."""
    import uvicorn

    settings()
    uvicorn.run("kokyaku.asgi:app", host=host, port=port, workers=workers, log_level="info", access_log=False)


@app.command()
def demo(
    customers: Annotated[int, typer.Option(min=1, help="How many customers to generate.")] = 2000,
    seed: Annotated[int, typer.Option(help="Random seed, for repeatable data.")] = 7,
    if_empty: Annotated[bool, typer.Option("--if-empty", help="Do nothing if customers exist.")] = False,
    orders_per_customer: Annotated[float, typer.Option(min=0, help="Average orders per customer.")] = 10.0,
    touchpoints_per_customer: Annotated[
        float, typer.Option(min=0, help="Average touchpoints (visits, emails, calls...) per customer.")
    ] = 5.0,
) -> None:
    """Fill the database with realistic Japanese and English demo data (bulk inserts)."""
    from kokyaku.demo.generate import generate

    db = database()
    try:
        generate(
            db,
            customers=customers,
            seed=seed,
            if_empty=if_empty,
            console=console,
            orders_per_customer=orders_per_customer,
            touchpoints_per_customer=touchpoints_per_customer,
        )
    except KokyakuError as exc:
        fail(str(exc))


@user_app.command("create")
def user_create(
    email: Annotated[str, typer.Option(help="Login email.")],
    password: Annotated[str, typer.Option(help="At least 10 characters.")],
    role: Annotated[str, typer.Option(help=f"One of: {', '.join(ROLES)}.")] = "viewer",
    name: Annotated[str | None, typer.Option(help="Display name (default: the email's local part).")] = None,
) -> None:
    """Create a user."""
    s = settings()
    try:
        data = UserCreate(email=email, password=password, role=role, name=name or email.split("@")[0])  # type: ignore[arg-type]
    except ValidationError as exc:
        err = exc.errors()[0]
        fail(f"{'.'.join(map(str, err['loc']))}: {err['msg'].removeprefix('Value error, ')}")
    try:
        with database().session() as session:
            user = auth.create_user(session, s, actor=CLI, data=data)
            console.print(f"created user {user.email} ({user.role})")
    except KokyakuError as exc:
        fail(str(exc))


@user_app.command("ensure-admin")
def ensure_admin(email: Annotated[str, typer.Option()] = "admin@example.com") -> None:
    """Create the first admin if there is none, and print its login."""
    s = settings()
    with database().session() as session:
        if session.scalar(select(User.id).where(User.role == "admin").limit(1)):
            console.print(
                "an admin exists already; forgot the password? "
                "kokyaku user set-password --email E --password P"
            )
            return
        password = secrets.token_urlsafe(12)
        auth.create_user(
            session,
            s,
            actor=CLI,
            data=UserCreate(email=email, password=password, role="admin", name="管理者"),
        )
    typer.echo(f"admin login: {email} / {password}")


@user_app.command("set-password")
def user_set_password(
    email: Annotated[str, typer.Option(help="The user's email.")],
    password: Annotated[str, typer.Option(help="At least 10 characters.")],
) -> None:
    """Set a user's password (for a forgotten admin login)."""
    s = settings()
    try:
        data = UserUpdate(password=password)
    except ValidationError as exc:
        fail(f"password: {exc.errors()[0]['msg'].removeprefix('Value error, ')}")
    with database().session() as session:
        user = session.scalar(select(User).where(User.email == email.strip().lower()))
        if user is None:
            fail(f"no user with email {email}")
        auth.update_user(session, s, actor=CLI, user_id=user.id, data=data)
    console.print(f"password of {email} changed")


@token_app.command("create")
def token_create(
    user: Annotated[str, typer.Option("--user", help="The user's email.")],
    name: Annotated[str, typer.Option(help="A name to recognise the token by.")] = "cli",
) -> None:
    """Create an API token for a user; prints only the token."""
    with database().session() as session:
        owner = session.scalar(select(User).where(User.email == user.strip().lower()))
        if owner is None:
            fail(f"no user with email {user}")
        _row, token = auth.create_token(session, actor=CLI, user=owner, name=name)
    typer.echo(token)


if __name__ == "__main__":
    app()
