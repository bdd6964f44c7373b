"""``inspection-agent web adduser NAME --config PATH [--role viewer|technician] [--password-stdin]``.

Writes the console's users file (``web.auth.users_file``) with an scrypt hash of the password;
the running agent reads the change at the next request, no restart needed.
"""

from __future__ import annotations

import argparse
import getpass
import sys
from typing import Any

from agent.errors import ConfigError

ROLES = ("viewer", "technician")  # also agent.console.web.ROLES (kept here: no web import for the CLI)


def register(sub: Any) -> None:
    web: argparse.ArgumentParser = sub.add_parser("web", help="the device console: users")
    group = web.add_subparsers(dest="web_command", metavar="SUBCOMMAND", required=True)
    p = group.add_parser("adduser", help="add or replace a console user (password asked twice)")
    p.add_argument("name", help="user name (letters, digits, _ - . @)")
    p.add_argument("--config", required=True, help="the agent config (its web.auth.users_file is written)")
    p.add_argument("--role", choices=ROLES, default="technician")
    p.add_argument("--password-stdin", action="store_true", help="read the password from stdin (scripts)")
    p.set_defaults(func=adduser)


def adduser(args: argparse.Namespace) -> int:
    from agent.config import load_config
    from agent.web.users import add_user

    cfg = load_config(args.config)
    if cfg.web.auth.users_file is None:
        raise ConfigError(
            f"{args.config}: web.auth.users_file is not set (where the console's users are kept)"
        )
    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = getpass.getpass(f"password for {args.name}: ")
        if getpass.getpass("again: ") != password:
            raise ConfigError("web adduser: the passwords differ")
    path = cfg.resolve(cfg.web.auth.users_file)
    replaced = add_user(path, args.name, args.role, password, ROLES)
    sys.stdout.write(f"{'replaced' if replaced else 'added'} {args.name} ({args.role}) in {path}\n")
    return 0
