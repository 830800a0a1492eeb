"""Structured log lines, and kopf's per-handler success lines kept out of info."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator

import pytest

from ballast.logs import KeyValueFormatter, kv, quiet_kopf_successes


@pytest.fixture
def captured() -> Iterator[tuple[logging.Logger, io.StringIO]]:
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(KeyValueFormatter())
    logger = logging.getLogger("kopf.objects")
    logger.addHandler(handler)
    saved = logging.getLogger().level
    yield logger, out
    logger.removeHandler(handler)
    logger.filters.clear()
    logging.getLogger().setLevel(saved)


def lines(out: io.StringIO) -> list[str]:
    return [line for line in out.getvalue().splitlines() if line]


def test_kopf_success_lines_are_debug_and_failures_stay(
    captured: tuple[logging.Logger, io.StringIO],
) -> None:
    logger, out = captured
    logging.getLogger().setLevel(logging.INFO)
    quiet_kopf_successes()
    quiet_kopf_successes()  # idempotent: one filter
    assert len(logger.filters) == 1
    logger.info("Handler 'workloadclass_events' succeeded.")
    logger.info("Creation is processed: 3 succeeded; 0 failed.")
    logger.info("Updating is processed: 2 succeeded; 1 failed.")  # a failure: kept
    logger.error("Handler 'workloadclass_reconcile' failed temporarily: boom")
    logger.info("Timer 'x' is invoked.")  # other info lines: kept
    got = lines(out)
    assert len(got) == 3
    assert "1 failed" in got[0] and "level=error" in got[1] and "Timer" in got[2]
    logging.getLogger().setLevel(logging.DEBUG)  # --log-level DEBUG shows them
    logger.info("Handler 'workloadclass_events' succeeded.")
    assert "level=debug" in lines(out)[-1]


def test_key_value_lines_quote_what_needs_it() -> None:
    record = logging.LogRecord("x", logging.INFO, __file__, 1, 'a "b"', None, None)
    record.kv = kv(name="ns/p", note="two words")["kv"]
    line = KeyValueFormatter().format(record)
    assert 'msg="a \\"b\\""' in line and "name=ns/p" in line and 'note="two words"' in line


def test_kopf_retried_requests_are_warnings_and_the_last_attempt_stays_an_error() -> None:
    from ballast.logs import KopfRetryAtWarning

    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(KeyValueFormatter())
    handler.addFilter(KopfRetryAtWarning())
    logger = logging.getLogger("kopf._cogs.clients.watching")
    logger.addHandler(handler)
    logger.propagate = False
    saved = logging.getLogger().level
    try:
        logging.getLogger().setLevel(logging.INFO)
        logger.error("Request attempt #1/9 failed; will retry: GET /x -> 429")
        logger.error("Request attempt #9/9 failed; escalating: GET /x -> 429")
        logging.getLogger("ballast.x").addHandler(handler)
        logging.getLogger("ballast.x").error("Request attempt #1 failed; will retry")  # not kopf's
        lines = out.getvalue().splitlines()
        assert lines[0].startswith("ts=") and "level=warning" in lines[0]
        assert "level=error" in lines[1] and "escalating" in lines[1]
        assert "level=error" in lines[2]
        logging.getLogger().setLevel(logging.ERROR)  # warnings off: the demoted line goes
        logger.error("Request attempt #2/9 failed; will retry: GET /x -> 429")
        assert len(out.getvalue().splitlines()) == 3
    finally:
        logger.removeHandler(handler)
        logger.propagate = True
        logging.getLogger("ballast.x").removeHandler(handler)
        logging.getLogger().setLevel(saved)
