"""``inspection-agent collector adduser NAME --role reviewer|admin --config PATH``."""

from __future__ import annotations

import getpass
import sys

from agent.collector.config import CollectorConfig
from agent.errors import ConfigError
from agent.web.users import add_user

ROLES = ("reviewer", "admin")


def adduser(cfg: CollectorConfig, name: str | None, role: str, *, from_stdin: bool) -> int:
    """Add (or replace) a user of the review app; the password is asked twice, or read from stdin."""
    if cfg.web is None:
        raise ConfigError("adduser: the config has no web: section (where the users file is)")
    if not name:
        raise ConfigError("adduser: give the user name: collector adduser NAME --role reviewer")
    if from_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = getpass.getpass(f"password for {name}: ")
        if getpass.getpass("again: ") != password:
            raise ConfigError("adduser: the passwords differ")
    path = cfg.resolve(cfg.web.users_file)
    replaced = add_user(path, name, role, password, ROLES)
    sys.stdout.write(f"{'replaced' if replaced else 'added'} {name} ({role}) in {path}\n")
    return 0
