"""A local stack on free ports in a throw-away state directory, for benchmarks and tests:
it never touches a stack already running, and goes when the block ends."""
from __future__ import annotations

import socket
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from billstream_core.settings import Settings, load_settings
from infra.cluster import with_brokers
from infra.stack import LocalStack


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def scratch_stack(*, brokers: int = 1, secure: bool = False, state_dir: Path | None = None
                  ) -> Iterator[tuple[LocalStack, Settings]]:
    """The stack and the settings that reach it (on the secure stack: the admin's; each
    component's are in ``<state>/secure/<component>.env``)."""
    with tempfile.TemporaryDirectory(prefix="billstream-stack-") as temporary:
        state = state_dir or Path(temporary)
        servers = ",".join(f"127.0.0.1:{free_port()}" for _ in range(brokers))
        settings = load_settings(kafka={"bootstrap_servers": servers}, storage={"endpoint": f"127.0.0.1:{free_port()}"},
                                 infra={"state_dir": state, "kafka_controller_port": free_port(),
                                        "minio_console_port": free_port(), "secure": secure},
                                 stream={"web_port": free_port()})
        if brokers > 1:
            settings = with_brokers(settings, brokers)
        local = LocalStack(settings)
        local.up()
        try:
            yield local, local.settings
        finally:
            local.down()
