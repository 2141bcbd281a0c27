"""Review accounts: named users with a role and an scrypt password hash, in the shared database (SQLite or
PostgreSQL).

Passwords are never stored, logged or shown: only `scrypt$N$r$p$salt$hash` (standard-library
`hashlib.scrypt`). Changing a password or removing the user bumps its `epoch`, which ends its sessions.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
import time
from dataclasses import dataclass

from core.engine import Database, migrate

ROLES = ("reviewer", "admin")
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")
MIN_PASSWORD = 8
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2 ** 14, 8, 1  # ~16 MiB and tens of ms per check: slow for a guesser

# One entry per schema version (core.engine.migrate); version 1 is the table as it always was.
TABLE = """
create table if not exists accounts (
    name text primary key, role text not null, password text not null, created {real} not null,
    epoch integer not null default 0
)
"""
MIGRATIONS = [{"sqlite": TABLE.format(real="real"), "postgresql": TABLE.format(real="double precision")}]


@dataclass(frozen=True)
class Account:
    name: str
    role: str
    created: float
    epoch: int  # sessions remember it; a new password or removal makes them invalid

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P, dklen=32)
    b64 = lambda b: base64.b64encode(b).decode()  # noqa: E731
    return f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${b64(salt)}${b64(digest)}"


def check_password(password: str, stored: str) -> bool:
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        expected = base64.b64decode(digest)
        given = hashlib.scrypt(password.encode(), salt=base64.b64decode(salt), n=int(n), r=int(r), p=int(p),
                               dklen=len(expected), maxmem=128 * 1024 * 1024)
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(given, expected)


DUMMY_HASH = hash_password(secrets.token_urlsafe(12))  # checked for unknown names so timing does not tell who exists


class AccountStore:
    """The `accounts` table; the only module that reads or writes it."""

    def __init__(self, db: Database):
        """`db`: the bot's database on either engine (core.engine.open_database)."""
        self.db = db
        migrate(db, "bot.review.accounts", MIGRATIONS)

    def add(self, name: str, role: str, password: str) -> Account:
        _check_name(name)
        if role not in ROLES:
            raise ValueError(f"role must be one of {ROLES}, not {role!r}")
        _check_password(password)
        with self.db.transaction():
            if self._row(name) is not None:
                raise ValueError(f"user {name!r} already exists; use `users password {name}` to change the password")
            self.db.execute("insert into accounts (name, role, password, created) values (?, ?, ?, ?)",
                            [name, role, hash_password(password), time.time()])
        return self.get(name)

    def remove(self, name: str) -> None:
        with self.db.transaction():
            if self.db.execute("delete from accounts where name = ?", [name]).rowcount == 0:
                raise ValueError(f"no user {name!r}")

    def set_password(self, name: str, password: str) -> None:
        _check_password(password)
        with self.db.transaction():
            cur = self.db.execute("update accounts set password = ?, epoch = epoch + 1 where name = ?",
                                  [hash_password(password), name])
            if cur.rowcount == 0:
                raise ValueError(f"no user {name!r}")

    def list(self) -> list[Account]:
        rows = self.db.execute("select name, role, created, epoch from accounts order by name").fetchall()
        return [Account(*r) for r in rows]

    def get(self, name: str) -> Account | None:
        row = self.db.execute("select name, role, created, epoch from accounts where name = ?", [name]).fetchone()
        return Account(*row) if row else None

    def verify(self, name: str, password: str) -> Account | None:
        """The account when the password is right, else None (same work whether or not the name exists)."""
        row = self._row(name)
        ok = check_password(password, row[0] if row else DUMMY_HASH)
        return self.get(name) if ok and row else None

    def credentials(self, name: str) -> tuple[Account, str] | None:
        """The account and its stored hash, for a caller that checks the password off this thread."""
        row = self._row(name)
        account = self.get(name)
        return (account, row[0]) if row and account else None

    def _row(self, name: str):
        return self.db.execute("select password from accounts where name = ?", [name]).fetchone()


def _check_name(name: str) -> None:
    if not NAME.match(name or ""):
        raise ValueError(f"user name {name!r}: use 1-64 letters, digits, '.', '_', '@' or '-'")


def _check_password(password: str) -> None:
    if len(password or "") < MIN_PASSWORD:
        raise ValueError(f"a password needs at least {MIN_PASSWORD} characters")
