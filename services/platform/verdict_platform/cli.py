"""The `verdict` command: migrations, API keys, and running the platform locally.

verdict migrate
verdict keys create --role ROLE --name NAME    (prints the key once)
verdict keys put --role ROLE --name NAME         (the key on stdin or in $VERDICT_KEY)
verdict keys list
verdict keys revoke NAME
verdict up | down | status                     (what `make up` / `make down` call)
verdict metrics init-llm [--target HOST:PORT] [--api-key KEY]   (the LLM metric catalog)
verdict import growthbook FILE [--dry-run] [--start] [--target HOST:PORT] [--api-key KEY]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Sequence

from verdict_platform import redis_conn
from verdict_platform.db import connect
from verdict_platform.embedded import has_embedded_postgres, resolve_servers
from verdict_platform.errors import VerdictError
from verdict_platform.keys import KeyStore, parse_role
from verdict_platform.migrator import migrate
from verdict_platform.settings import Settings, SettingsError, load_settings


async def _migrate(settings: Settings) -> int:
    conn = await connect(settings)
    try:
        applied = await migrate(conn)
    finally:
        await conn.close()
    print(f"applied {len(applied)} migration(s)" + (f": {applied}" if applied else ""))
    return 0


async def _announce_keys_changed(settings: Settings) -> None:
    client = redis_conn.connect_redis(settings)
    try:
        await client.publish(redis_conn.name(settings, redis_conn.KEYS_CHANNEL), b"changed")
    except Exception as exc:  # services also reload on a timer; a down Redis only delays it
        print(f"warning: could not announce the change on Redis ({exc})", file=sys.stderr)
    finally:
        await client.aclose()


async def _with_store(settings: Settings, args: argparse.Namespace) -> int:
    import asyncpg

    pool = await asyncpg.create_pool(settings.require_database_url(), min_size=1, max_size=1)
    try:
        store = KeyStore(pool)
        if args.keys_command == "create":
            key = await store.create(args.name, parse_role(args.role))
            await _announce_keys_changed(settings)
            print(key)
        elif args.keys_command == "put":
            outcome = await store.put(args.name, parse_role(args.role), _supplied_key())
            if outcome != "unchanged":
                await _announce_keys_changed(settings)
            print(f"{args.name}: {outcome}")
        elif args.keys_command == "list":
            for k in await store.list():
                state = "active" if k.active else f"revoked {k.revoked_at:%Y-%m-%d %H:%M}"
                print(f"{k.name}\t{k.role.value}\t{k.created_at:%Y-%m-%d %H:%M}\t{state}")
        else:
            await store.revoke(args.name)
            await _announce_keys_changed(settings)
            print(f"revoked {args.name}")
    finally:
        await pool.close()
    return 0


def _supplied_key() -> str:
    """The key `keys put` stores: $VERDICT_KEY (a Secret mounted as a variable), else stdin;
    never an argument, which `ps` would show."""
    return (os.environ.get("VERDICT_KEY") or sys.stdin.readline()).strip()


def _missing_data(settings: Settings) -> str | None:
    """Why a command other than `up` cannot run here: no database configured and no embedded one
    in the data folder (only `up` creates one)."""
    if settings.database_url is not None or has_embedded_postgres(settings.data_dir):
        return None
    where = settings.data_dir.resolve()
    return (
        f"no Verdict database here: VERDICT_DATABASE_URL is not set and {where}"
        " holds no embedded database. Run `make up` in the project first, set VERDICT_DATA_DIR "
        "to its data folder, or set VERDICT_DATABASE_URL (and VERDICT_REDIS_URL)."
    )


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="verdict", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("migrate", help="apply pending database migrations")
    keys = sub.add_parser("keys", help="manage API keys")
    keys_sub = keys.add_subparsers(dest="keys_command", required=True)
    create = keys_sub.add_parser("create", help="create a key and print it once")
    create.add_argument("--role", required=True, help="assign, ingest, read, qa, analysis or admin")
    create.add_argument("--name", required=True, help="unique name of the key's holder")
    put = keys_sub.add_parser(
        "put", help="make a supplied key (stdin or $VERDICT_KEY) the active key of NAME"
    )
    put.add_argument("--role", required=True, help="assign, ingest, read, qa, analysis or admin")
    put.add_argument("--name", required=True, help="the key holder's name")
    keys_sub.add_parser("list", help="list keys (never their secrets)")
    revoke = keys_sub.add_parser("revoke", help="revoke a key by name")
    revoke.add_argument("name")
    sub.add_parser("up", help="start the embedded servers (if needed) and every service")
    sub.add_parser("down", help="stop what `up` started")
    sub.add_parser("status", help="show what runs")
    metrics = sub.add_parser("metrics", help="the metric catalog")
    metrics_sub = metrics.add_subparsers(dest="metrics_command", required=True)
    init_llm = metrics_sub.add_parser(
        "init-llm", help="create the LLM metrics (over gRPC, admin key); existing ones are kept"
    )
    init_llm.add_argument(
        "--target", help="ExperimentService host:port (VERDICT_ASSIGNMENT_TARGET)"
    )
    init_llm.add_argument("--api-key", help="admin key (else VERDICT_API_KEY, else the dev key)")
    imports = sub.add_parser("import", help="import experiments from another platform")
    imports_sub = imports.add_subparsers(dest="import_command", required=True)
    growthbook = imports_sub.add_parser(
        "growthbook",
        help="import a GrowthBook SDK payload or features JSON (over gRPC, admin key)",
    )
    growthbook.add_argument("file", help="the JSON file; - reads standard input")
    growthbook.add_argument("--dry-run", action="store_true", help="convert and check only")
    growthbook.add_argument("--start", action="store_true", help="start what is imported")
    growthbook.add_argument(
        "--target", help="ExperimentService host:port (VERDICT_ASSIGNMENT_TARGET)"
    )
    growthbook.add_argument("--api-key", help="admin key (else VERDICT_API_KEY, else the dev key)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the command; returns the process exit code."""
    args = _parser().parse_args(argv)
    try:
        settings = load_settings()
        if args.command in ("up", "down", "status"):
            from verdict_platform import launcher

            return launcher.run(args.command, settings)
        if args.command == "metrics":
            from verdict_platform.metrics_cli import init_llm

            return init_llm(settings, args.target, args.api_key)
        if args.command == "import":
            from verdict_platform.growthbook_cli import import_growthbook

            return import_growthbook(
                settings,
                args.file,
                dry_run=args.dry_run,
                start=args.start,
                target=args.target,
                api_key=args.api_key,
            )
        missing = _missing_data(settings)
        if missing is not None:
            print(f"error: {missing}", file=sys.stderr)
            return 2
        settings = resolve_servers(settings)
        if args.command == "migrate":
            return asyncio.run(_migrate(settings))
        return asyncio.run(_with_store(settings, args))
    except SettingsError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2
    except VerdictError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
