"""`catch_signals` notes a stop signal and raises it only where the caller asks (`check`).

Raised wherever the main thread happened to be, the `Interrupted` of a SIGTERM could cut a
registry transaction or SQLAlchemy's connection pool short, leave a lock taken, and hang the
stop (``pipetask run`` then never exited: a fault seen in CI). These tests pin the contract,
shared by ``pipetask`` and the ``butler`` commands (``tests/imaging/test_cli_interrupts.py``
signals a real ``butler ingest-raws``).
"""

from __future__ import annotations

import logging
import os
import signal

import pytest

from butler.interrupts import Interrupted, catch_signals
from butler.registry.database import Database, make_engine


def test_a_signal_inside_a_registry_transaction_does_not_cut_it_short(tmp_path):
    database = Database(make_engine(f"sqlite:///{tmp_path / 'r.sqlite3'}"), writeable=True)
    with database.transaction() as connection:
        connection.exec_driver_sql("CREATE TABLE t (x INTEGER)")
    with catch_signals() as stop:
        with database.transaction() as connection:
            connection.exec_driver_sql("INSERT INTO t VALUES (1)")
            os.kill(os.getpid(), signal.SIGTERM)
            connection.exec_driver_sql("INSERT INTO t VALUES (2)")
        assert stop.signum == signal.SIGTERM
        with pytest.raises(Interrupted) as caught:
            stop.check()
        assert caught.value.exit_code == 143
        stop.check()  # raised once: the stop is under way
    with database.read() as connection:
        assert connection.exec_driver_sql("SELECT COUNT(*) FROM t").scalar() == 2


def test_a_second_signal_before_the_stop_began_raises_at_once():
    with catch_signals() as stop, pytest.raises(Interrupted) as caught:
        os.kill(os.getpid(), signal.SIGINT)
        os.kill(os.getpid(), signal.SIGTERM)
        pytest.fail("the second signal did not raise")  # pragma: no cover
    assert caught.value.exit_code == 130  # the first signal names the stop
    assert stop.raised


def test_signals_after_the_stop_began_are_only_logged(caplog):
    with catch_signals() as stop:
        os.kill(os.getpid(), signal.SIGINT)
        with pytest.raises(Interrupted):
            stop.check()
        with caplog.at_level(logging.WARNING, logger="butler.interrupts"):
            os.kill(os.getpid(), signal.SIGTERM)
    assert "SIGTERM again: still stopping" in caplog.text


def test_the_previous_handlers_are_restored():
    before = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)
    with catch_signals():
        assert signal.getsignal(signal.SIGTERM) is not before[0]
    assert (signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)) == before


def test_the_execution_imports_the_same_names():
    from pipeline.execution import interrupts

    assert interrupts.catch_signals is catch_signals and interrupts.Interrupted is Interrupted
