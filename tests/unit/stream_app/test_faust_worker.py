"""The stream app's Faust worker leaves the log level where it was set."""
from __future__ import annotations

import logging
from collections.abc import Iterator

import faust
import pytest

from stream_app.app import faust_worker


@pytest.fixture
def root_at_warning() -> Iterator[logging.Logger]:
    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    root.handlers = [logging.NullHandler()]
    root.setLevel(logging.WARNING)
    yield root
    root.handlers = handlers
    root.setLevel(level)


def test_the_worker_does_not_turn_debug_records_on(root_at_warning: logging.Logger) -> None:
    app = faust.App("billstream-test-logging", broker="kafka://127.0.0.1:1", store="memory://")
    worker = faust_worker(app, "warn")
    worker.on_setup_root_logger(root_at_warning, logging.WARNING)  # what Faust calls once it set logging up
    assert root_at_warning.level == logging.WARNING
    assert not logging.getLogger("aiokafka.conn").isEnabledFor(logging.DEBUG)


def test_fausts_own_worker_would(root_at_warning: logging.Logger) -> None:
    """Why ``faust_worker`` exists: drop it once this stops holding."""
    app = faust.App("billstream-test-logging-plain", broker="kafka://127.0.0.1:1", store="memory://")
    worker = faust.Worker(app, loglevel="warn", quiet=True)
    worker.on_setup_root_logger(root_at_warning, logging.WARNING)
    assert logging.getLogger("aiokafka.conn").isEnabledFor(logging.DEBUG)
