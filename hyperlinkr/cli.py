"""`hyperlinkr`: one command, a subcommand per role.

    hyperlinkr web          the HTTP workers (HYPERLINKR_WORKERS of them)
    hyperlinkr analytics    the analytics actor
    hyperlinkr persister    the LMDB persister
    hyperlinkr h3           HTTP/3 on UDP HYPERLINKR_H3_PORT (optional role)
    hyperlinkr run          every role under one supervisor (h3 when enabled)
    hyperlinkr make-cert D  write a self-signed cert.pem and key.pem into D
    hyperlinkr shm-unlink   remove this node's shared-memory segments
    hyperlinkr env-example  print every setting, as .env.example holds them
    hyperlinkr api-key create --scopes S[,S] [--label L] | list | revoke ID

Each role command is a supervisor (`hyperlinkr.supervisor`) that starts its
work in child processes (`hyperlinkr _child ROLE`) and restarts them when
they die. Settings come from `HYPERLINKR_*` variables (and the `.env`
that honcho loads) and are validated before anything starts.

Every process of a node starts here, so what this module imports, every
one of them holds: a supervisor, which only starts and watches children,
imports nothing else, and each child imports what its role needs when it
starts (`_run_child`).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from hyperlinkr.config import Settings, render_env_example
from hyperlinkr.errors import ConfigError
from hyperlinkr.logs import configure_logging
from hyperlinkr.scopes import SCOPES
from hyperlinkr.supervisor import (
    ChildSpec,
    ExitCode,
    RestartMetrics,
    Supervisor,
    die_with_parent,
)

__all__ = ["main"]

logger = logging.getLogger(__name__)

_ROLES = ("web", "analytics", "persister")
_OPTIONAL_ROLES = ("h3",)


def _child_argv(role: str, *extra: str) -> list[str]:
    return [sys.executable, "-m", "hyperlinkr", "_child", role, *extra]


def _specs(settings: Settings, roles: Sequence[str]) -> list[ChildSpec]:
    specs = []
    if "web" in roles:
        from hyperlinkr.server import bind_listeners, worker_cpus

        listeners = bind_listeners(settings.host, settings.port, settings.workers)
        fds = [listener.detach() for listener in listeners]
        cpus = worker_cpus(settings)
        logger.info(
            "listening on %s:%d with %d workers%s",
            settings.host,
            settings.port,
            settings.workers,
            "" if cpus[0] is None else f", pinned to CPUs {cpus}",
        )
        specs += [
            ChildSpec(
                f"web worker {i}",
                _child_argv("web", str(fd), *([] if cpu is None else [str(cpu)])),
                (fd,),
                role="web",
            )
            for i, (fd, cpu) in enumerate(zip(fds, cpus, strict=True))
        ]
    for role in ("analytics", "persister"):
        if role in roles:
            specs.append(ChildSpec(f"{role} actor", _child_argv(role), role=role))
    if "h3" in roles:
        # One process: Sanic serves HTTP/3 from a single worker only.
        specs.append(ChildSpec("h3 server", _child_argv("h3"), role="h3"))
    return specs


def _supervise(settings: Settings, roles: Sequence[str]) -> int:
    if "h3" in roles and settings.h3_port is None:
        logger.error(
            "the h3 role needs HYPERLINKR_H3_PORT (a UDP port) and "
            "HYPERLINKR_TLS_CERT_FILE/HYPERLINKR_TLS_KEY_FILE; set them or "
            "remove h3 from the Procfile"
        )
        return ExitCode.CONFIG
    try:
        specs = _specs(settings, roles)
    except OSError as exc:
        logger.error(
            "cannot listen on %s:%d: %s; set HYPERLINKR_PORT to a free port",
            settings.host,
            settings.port,
            exc,
        )
        return ExitCode.CONFIG
    restarts = RestartMetrics(settings, roles)
    return Supervisor("+".join(roles), specs, restarts).run()


def _run_child(settings: Settings, role: str, args: Sequence[str]) -> int:
    import shm
    from hyperlinkr import metrics

    die_with_parent(os.getppid())
    try:
        # The role's restart counter, at zero: its supervisor counts only
        # from its first restart on (`RestartMetrics`).
        metrics.configure(settings, (role,))
        if role == "web":
            _without_http3()
            from hyperlinkr.server import serve_worker

            cpu = int(args[1]) if len(args) > 1 else None
            return serve_worker(settings, int(args[0]), cpu)
        if role == "h3":
            return _serve_h3(settings)
        if role == "analytics":
            from workers.processes import run_analytics

            return run_analytics(settings)
        from workers.processes import run_persister

        return run_persister(settings)
    except (ConfigError, shm.ShmError) as exc:
        logger.error("%s cannot start: %s", role, exc)
        return ExitCode.CONFIG


def _without_http3() -> None:
    """Keep aioquic out of an HTTP/1.1 web worker, which never uses it.

    Sanic imports aioquic whenever it is installed, to offer HTTP/3, and
    with it cryptography and pyOpenSSL: about 8 MB of every worker. Only the
    h3 role serves HTTP/3. A None in sys.modules makes that import raise
    ModuleNotFoundError, which Sanic takes for "HTTP/3 not installed".
    """
    if "aioquic" not in sys.modules:
        # typeshed allows modules only; None is the documented import block.
        sys.modules["aioquic"] = None  # type: ignore[assignment]


def _serve_h3(settings: Settings) -> int:
    from hyperlinkr.h3 import serve_h3

    port, cert, key = settings.h3_port, settings.tls_cert_file, settings.tls_key_file
    if port is None or cert is None or key is None:
        raise ConfigError(
            "HYPERLINKR_H3_PORT, HYPERLINKR_TLS_CERT_FILE and "
            "HYPERLINKR_TLS_KEY_FILE must all be set to run the h3 role"
        )
    return serve_h3(settings, cert, key, port)


def _make_cert(directory: Path) -> int:
    from hyperlinkr.certs import make_self_signed

    configure_logging("INFO")
    try:
        pair = make_self_signed(directory)
    except OSError as exc:
        logger.error("cannot write a certificate into %s: %s", directory, exc)
        return ExitCode.CONFIG
    logger.info(
        "wrote %s and %s; set HYPERLINKR_TLS_CERT_FILE and "
        "HYPERLINKR_TLS_KEY_FILE to them",
        pair.cert_file,
        pair.key_file,
    )
    return ExitCode.OK


def _api_key(settings: Settings, args: argparse.Namespace) -> int:
    from hyperlinkr.apikeys import create_key, list_keys, revoke_key

    path = settings.api_keys_file
    try:
        if args.key_command == "create":
            scopes = frozenset(s.strip() for s in args.scopes.split(",") if s.strip())
            print(create_key(path, args.label, scopes))
            logger.info("key stored as a hash in %s; it cannot be shown again", path)
        elif args.key_command == "list":
            for key in list_keys(path):
                print(key.key_id, ",".join(sorted(key.scopes)), key.label, sep="\t")
        elif not revoke_key(path, args.key_id):
            logger.error("no key with id %r in %s", args.key_id, path)
            return 1
    except ConfigError as exc:
        logger.error("%s", exc)
        return ExitCode.CONFIG
    return ExitCode.OK


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hyperlinkr", description="A self-hosted URL shortener."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    for role in (*_ROLES, *_OPTIONAL_ROLES):
        commands.add_parser(role, help=f"run the {role} role (supervised)")
    commands.add_parser("run", help="run every role of a node (supervised)")
    commands.add_parser("shm-unlink", help="remove this node's shared memory")
    commands.add_parser("env-example", help="print every setting with its default")
    make_cert = commands.add_parser(
        "make-cert", help="write a self-signed TLS pair for local HTTP/3"
    )
    make_cert.add_argument("directory", type=Path)
    keys = commands.add_parser("api-key", help="create, list or revoke API keys")
    key_commands = keys.add_subparsers(dest="key_command", required=True)
    create = key_commands.add_parser("create", help="make a key and print it once")
    create.add_argument(
        "--scopes", required=True, help="comma-separated: " + ", ".join(SCOPES)
    )
    create.add_argument("--label", default="", help="a name to recognise it by")
    key_commands.add_parser("list", help="list keys (never their secrets)")
    revoke = key_commands.add_parser("revoke", help="remove a key by its id")
    revoke.add_argument("key_id")
    child = commands.add_parser("_child")
    child.add_argument("role", choices=(*_ROLES, *_OPTIONAL_ROLES))
    child.add_argument("args", nargs="*")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "env-example":
        sys.stdout.write(render_env_example())
        return ExitCode.OK
    if args.command == "make-cert":
        return _make_cert(args.directory)
    try:
        settings = Settings.from_env(os.environ)
    except ConfigError as exc:
        configure_logging("INFO")
        logger.error("%s", exc)
        return ExitCode.CONFIG
    configure_logging(settings.log_level, settings.log_format)
    if args.command == "shm-unlink":
        from hyperlinkr.node import unlink_segments

        for name in unlink_segments(settings):
            logger.info("unlinked shared-memory segment %s", name)
        return ExitCode.OK
    if args.command == "api-key":
        return _api_key(settings, args)
    if args.command == "_child":
        return _run_child(settings, args.role, args.args)
    roles = _run_roles(settings) if args.command == "run" else (args.command,)
    return _supervise(settings, roles)


def _run_roles(settings: Settings) -> tuple[str, ...]:
    return (*_ROLES, "h3") if settings.h3_port is not None else _ROLES


if __name__ == "__main__":
    sys.exit(main())
