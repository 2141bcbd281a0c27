"""Every SQLite connection has one owner thread (core.sqlite.OwnedConnection): a call from another thread is
refused every time, ownership moves only by an explicit hand-over or under an OwnerLock."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from core.sqlite import OwnerLock, WrongThread, connect, hand_over, is_storage_fault


def on_thread(fn, name="other"):
    """`fn()` on a new thread called `name`: its result, or the exception it raised."""
    with ThreadPoolExecutor(1, thread_name_prefix=name) as pool:
        try:
            return pool.submit(fn).result()
        except Exception as e:
            return e


@pytest.fixture
def db(tmp_path):
    db = connect(tmp_path / "bot.db")
    db.execute("create table t (x integer)")
    yield db
    db.conn.close()


def test_another_thread_is_refused_names_both_threads_and_runs_nothing(db):
    refused = on_thread(lambda: db.execute("insert into t values (1)"))
    assert isinstance(refused, WrongThread)
    assert "'MainThread'" in str(refused) and "'other_0'" in str(refused)
    assert not is_storage_fault(refused)  # a bug of the caller: a 500, never a 503 to retry
    assert db.execute("select count(*) from t").fetchone()[0] == 0
    for call in (lambda: db.conn.executemany("insert into t values (?)", [[1]]), db.conn.cursor,
                 lambda: db.conn.executescript("select 1"), db.conn.commit, db.conn.rollback, db.conn.close):
        assert isinstance(on_thread(call), WrongThread)


def test_a_store_opened_beside_the_owner_is_refused_not_migrated_into_its_transaction(db):
    """Issue 31: the accounts store, opened on the event loop while the database thread wrote, migrated inside that
    thread's transaction and ended it (`cannot commit - no transaction is active`)."""
    from bot.review.accounts import AccountStore

    with db.transaction():
        db.execute("insert into t values (1)")
        assert isinstance(on_thread(lambda: AccountStore(db)), WrongThread)
    assert db.execute("select count(*) from t").fetchone()[0] == 1


def test_a_handed_over_connection_belongs_to_the_next_thread_that_uses_it(db):
    hand_over(db)
    with ThreadPoolExecutor(1, thread_name_prefix="taker") as taker:
        assert taker.submit(lambda: db.execute("insert into t values (1)").rowcount).result() == 1
        refused = on_thread(lambda: db.execute("select 1"))
        assert isinstance(refused, WrongThread) and "'taker_0'" in str(refused)
        assert isinstance(on_thread(lambda: hand_over(db)), WrongThread)  # only the owner hands it over
        with pytest.raises(WrongThread):
            db.execute("select 1")  # the opener let it go too
        taker.submit(hand_over, db).result()  # and back
    assert db.execute("select count(*) from t").fetchone()[0] == 1


def test_threads_holding_an_owner_lock_take_turns_and_one_without_it_is_refused(db):
    lock = OwnerLock(db)

    def insert(n):
        with lock:
            with lock:  # re-entrant, like the knowledge base's nested sections
                db.execute("insert into t values (?)", [n])

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(insert, range(40)))
    with lock:
        assert db.execute("select count(*) from t").fetchone()[0] == 40
    assert isinstance(on_thread(lambda: db.execute("select 1")), WrongThread)  # the main thread holds it last


def test_on_postgresql_each_thread_uses_a_connection_of_its_own(postgres_url):
    """The check is SQLite's only: PostgreSQL's pool lends each thread its own connection per statement or
    transaction, so a statement from another thread never runs inside this thread's transaction."""
    from core.engine import open_database

    db = open_database(postgres_url)
    try:
        db.execute("create table t (x integer)")
        with db.transaction():
            db.execute("insert into t values (1)")
            mine = db.execute("select pg_backend_pid()").fetchone()[0]
            theirs = on_thread(lambda: db.execute("select count(*), pg_backend_pid() from t").fetchone())
            assert theirs[0] == 0 and theirs[1] != mine  # outside this transaction, on another connection
        with OwnerLock(db):
            hand_over(db)  # both do nothing here
        assert on_thread(lambda: db.execute("select count(*) from t").fetchone()[0]) == 1
    finally:
        db.close()
