"""Typed, immutable settings, built once from the environment at the entry point.

Environment variables use the ``BILLSTREAM_`` prefix and ``__`` between levels, e.g.
``BILLSTREAM_KAFKA__BOOTSTRAP_SERVERS`` or ``BILLSTREAM_STORAGE__SECRET_KEY``. Secrets are
``SecretStr``: they print as ``**********`` in ``repr``, ``str`` and logs.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from billstream_core.errors import SettingsError

_FROZEN = ConfigDict(frozen=True, extra="forbid")
_TOPIC_NAME = r"^[A-Za-z0-9._-]{1,249}$"


def _split_host_port(address: str) -> tuple[str, int]:
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"expected HOST:PORT, got {address!r}")
    return host, int(port)


class KafkaSettings(BaseModel):
    model_config = _FROZEN

    bootstrap_servers: str = "127.0.0.1:19092"
    client_id: str = "billstream"
    security_protocol: str = "PLAINTEXT"
    sasl_mechanism: str | None = None
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    ssl_ca_location: Path | None = Field(default=None, description="CA certificate (PEM) the brokers' TLS "
                                                                   "certificates are checked against")
    request_timeout_s: float = Field(default=10.0, gt=0)

    @field_validator("bootstrap_servers")
    @classmethod
    def _valid_servers(cls, value: str) -> str:
        for server in value.split(","):
            _split_host_port(server.strip())
        return value

    @property
    def first_server(self) -> tuple[str, int]:
        return _split_host_port(self.bootstrap_servers.split(",")[0].strip())


class TopicSpec(BaseModel):
    model_config = _FROZEN

    name: str = Field(pattern=_TOPIC_NAME)
    partitions: int = Field(ge=1, le=10_000)
    compacted: bool = False
    retention_ms: int | None = Field(default=None, ge=60_000)  # with compaction: keys older than this go too


class TopicSettings(BaseModel):
    """Topic names and partition counts: settings, never constants in code.

    Flat fields so that one variable changes one thing, e.g.
    ``BILLSTREAM_TOPICS__RESULTS_PARTITIONS=12``.
    """

    model_config = _FROZEN

    submitted: str = Field(default="bills.submitted", pattern=_TOPIC_NAME)
    submitted_partitions: int = Field(default=6, ge=1, le=10_000)
    work: str = Field(default="bills.work", pattern=_TOPIC_NAME)
    work_partitions: int = Field(default=6, ge=1, le=10_000)
    results: str = Field(default="bills.results", pattern=_TOPIC_NAME)
    results_partitions: int = Field(default=6, ge=1, le=10_000)
    dead_letter: str = Field(default="bills.dead-letter", pattern=_TOPIC_NAME)
    dead_letter_partitions: int = Field(default=1, ge=1, le=10_000)
    replication_factor: int = Field(default=1, ge=1)

    def all(self) -> list[TopicSpec]:
        return [
            TopicSpec(name=self.submitted, partitions=self.submitted_partitions),
            TopicSpec(name=self.work, partitions=self.work_partitions),
            TopicSpec(name=self.results, partitions=self.results_partitions),
            TopicSpec(name=self.dead_letter, partitions=self.dead_letter_partitions),
        ]


class StorageSettings(BaseModel):
    model_config = _FROZEN

    endpoint: str = "127.0.0.1:19000"
    access_key: SecretStr = SecretStr("billstream")
    secret_key: SecretStr = SecretStr("billstream-dev-secret")
    bucket: str = Field(default="bills", min_length=3, max_length=63, pattern=r"^[a-z0-9][a-z0-9.-]+[a-z0-9]$")
    secure: bool = False
    region: str | None = None
    max_attempts: int = Field(default=3, ge=1, le=10)
    connect_timeout_s: float = Field(default=3.0, gt=0)
    read_timeout_s: float = Field(default=30.0, gt=0)

    @field_validator("endpoint")
    @classmethod
    def _valid_endpoint(cls, value: str) -> str:
        _split_host_port(value)
        return value

    @field_validator("secret_key")
    @classmethod
    def _long_enough(cls, value: SecretStr) -> SecretStr:
        if len(value.get_secret_value()) < 8:
            raise ValueError("MinIO secret keys must be at least 8 characters")
        return value

    @property
    def host_port(self) -> tuple[str, int]:
        return _split_host_port(self.endpoint)


class LimitSettings(BaseModel):
    """Caps on what a bill image may be; checked from the header before a full decode.

    The defaults admit an A4 page at 600 dpi (about 5,000 x 7,000 px) and a long till roll,
    and refuse decompression bombs.
    """

    model_config = _FROZEN

    max_image_bytes: int = Field(default=50 * 1024 * 1024, ge=1024)
    max_image_pixels: int = Field(default=60_000_000, ge=10_000)
    max_image_side: int = Field(default=30_000, ge=100)
    max_pages: int = Field(default=10, ge=1, le=1000, description="pages read from one PDF; more is TOO_MANY_PAGES")
    pdf_dpi: int = Field(default=200, ge=72, le=600, description="resolution PDF pages are rendered at")
    pdf_text_layer: bool = Field(default=True, description="take a born-digital PDF page's own text, where it is "
                                                           "visible and sane, instead of reading its picture")


class WorkerSettings(BaseModel):
    """Inference worker: micro-batching, fetch concurrency and the transaction's time budget."""

    model_config = _FROZEN

    group_id: str = "billstream-workers"
    input_topic: str | None = Field(default=None, pattern=_TOPIC_NAME,
                                    description="defaults to topics.work; bills.submitted runs without the stream app")
    max_batch: int = Field(default=16, ge=1, le=1024)
    max_wait_ms: int = Field(default=200, ge=0, le=60_000,
                             description="how long an idle worker waits for a first event; a batch never waits to fill")
    fetch_concurrency: int = Field(default=8, ge=1, le=256)
    storage_patience_s: float = Field(default=60.0, ge=0, le=600,
                                      description="how long a fetch waits (retrying with backoff) for object "
                                                  "storage to come back before its order fails STORAGE_UNAVAILABLE")
    transaction_timeout_ms: int = Field(default=120_000, ge=1_000)
    max_poll_interval_ms: int = Field(default=300_000, ge=10_000)
    backend: str = Field(default="auto", pattern=r"^(auto|torch|onnx|onnx-int8)$",
                         description="auto: torch on a GPU, onnx-int8 on CPU")
    device: str = Field(default="auto", pattern=r"^(auto|cpu|cuda(:[0-9]+)?)$",
                        description="auto: cuda when a GPU is visible, else cpu")
    decoder: str = Field(default="auto", pattern=r"^(auto|greedy|beam)$",
                         description="auto: beam search with the shipped language model")
    threads: int | None = Field(default=None, ge=1)
    cpu_slot: str = Field(default="auto", min_length=1,
                          description="auto: on the CPU, the workers sharing a set of cores run their networks in "
                                      "turn (a lock file per core set in the temp dir); off: never wait; or a "
                                      "lock file's path")
    memory_arena: bool = Field(default=True,
                               description="ONNX Runtime's CPU memory arena: off, a warm worker holds ~480 MB instead of "
                                           "~870 MB, at ~15% lower speed (bench/worker_memory.py)")
    nice: int = Field(default=0, ge=0, le=19,
                      description="CPU niceness added at start: on a machine shared with the broker and the "
                                  "router, their short steps are then scheduled before bulk inference")
    probe_host: str = Field(default="127.0.0.1", description="where /healthz, /readyz and /metrics listen; "
                                                                "0.0.0.0 in a container")
    probe_port: int = Field(default=0, ge=0, lt=65536,
                            description="0: a free port (several workers on one host), logged at start")


class StreamAppSettings(BaseModel):
    """The Faust stream app: its id (consumer group, internal topic prefix) and web port.

    ``order_memory_days``: how long the router remembers an order number it has answered, so
    that the same order sent again gets no second result. The orders changelog is compacted
    and also deletes records older than this (set when the topic is created), so it does not
    grow with every order ever submitted; an order number re-sent after that is treated as
    new. The image index is compacted only: it holds one entry per distinct image.
    """

    model_config = _FROZEN

    app_id: str = Field(default="billstream-stream", pattern=_TOPIC_NAME)
    order_memory_days: float = Field(default=30.0, ge=1.0, le=3650.0)
    web_host: str = Field(default="127.0.0.1", description="the address other instances and clients reach this "
                                                            "one at (a pod's IP); also where it listens unless web_bind")
    web_bind: str | None = Field(default=None, description="where the web server listens (0.0.0.0 in a container)")
    web_port: int = Field(default=16066, gt=0, lt=65536)
    processing_guarantee: str = Field(default="at_least_once", pattern=r"^(at_least_once|exactly_once)$")
    store: Literal["rocksdb", "memory"] = Field(
        default="rocksdb", description="where the orders table lives: rocksdb (on disk under the temp dir, "
                                       "memory flat in the number of orders) or memory (tests of the table itself)")

    @property
    def order_memory_ms(self) -> int:
        return int(self.order_memory_days * 86_400_000)

    @property
    def url(self) -> str:
        return f"http://{self.web_host}:{self.web_port}"


class ApiSettings(BaseModel):
    """The HTTP front door (``billstream api``): where it listens, what it admits, who may call.

    Keys are stored hashed in ``keys_file`` (``billstream api-keys``); ``keys`` adds entries
    from the environment in the same form (``ID:SHA256[:RATE]``, comma-separated).
    """

    model_config = _FROZEN

    host: str = "127.0.0.1"
    port: int = Field(default=18080, gt=0, lt=65536)
    public_url: str | None = Field(default=None, description="the URL clients use (Location headers); "
                                                             "default: the request's own")
    stream_urls: str | None = Field(default=None, description="stream apps to ask for orders, comma-separated; "
                                                              "default: stream.url")
    max_body_bytes: int = Field(default=64 * 1024 * 1024, ge=1024,
                                description="a request body over this is refused with 413 before it is read")
    max_files: int = Field(default=20, ge=1, le=1000, description="bills in one multipart request")
    max_wait_s: float = Field(default=60.0, ge=0, le=600, description="the longest ?wait= a GET may hold")
    allow_anonymous: bool = Field(default=False, description="requests without a key; on only in the local demo")
    keys_file: Path | None = None
    keys: SecretStr | None = None
    rate_per_s: float = Field(default=20.0, gt=0, description="requests a second per key (token bucket)")
    burst: int = Field(default=40, ge=1, description="requests a key may make at once before the rate applies")
    idempotency_hours: float = Field(default=24.0, gt=0, le=24 * 30)

    @property
    def stream_url_list(self) -> list[str] | None:
        return [u.strip().rstrip("/") for u in self.stream_urls.split(",") if u.strip()] if self.stream_urls else None


class LogSettings(BaseModel):
    model_config = _FROZEN

    format: Literal["text", "json"] = Field(default="text", description="json: one object per line")


def _default_cache_dir() -> Path:
    return Path.home() / ".cache" / "billstream"


class InfraSettings(BaseModel):
    """Where the locally started Kafka and MinIO live; the addresses come from kafka/storage."""

    model_config = _FROZEN

    cache_dir: Path = Field(default_factory=_default_cache_dir)
    state_dir: Path | None = None
    kafka_controller_port: int = Field(default=19093, gt=0, lt=65536)
    secure: bool = Field(default=False, description="the local stack with TLS, SASL/SCRAM, ACLs and a MinIO user per "
                                                    "component (billstream infra up --secure)")
    kafka_brokers: int = Field(default=1, ge=1, le=5,
                               description="local KRaft nodes (each broker and controller); 3 for the "
                                           "replicated cluster: node N listens on the bootstrap list's Nth "
                                           "address and its controller on kafka_controller_port + 2(N-1)")
    minio_console_port: int = Field(default=19001, gt=0, lt=65536)
    kafka_heap: str = Field(default="512m", pattern=r"^[0-9]+[mMgG]$")
    # "quick" stops the broker's JIT at C1. At a laptop's load C2 never finishes warming up:
    # its compiler threads took over half the broker's CPU in every burst of bills (measured
    # per thread), CPU the workers' engines need. "full" is the JVM's default tiered JIT.
    kafka_jit: Literal["quick", "full"] = "quick"
    # Where the local broker keeps its log (the topics' data); default <state_dir>/kafka/data.
    # On the project's VM, appends to the log on its ext4 disk sometimes waited 25 or 50 ms in
    # the broker (its request log), and each wait landed on a bill's path; a tmpfs path
    # (/dev/shm/...) has none of them, but its topics are gone when the machine restarts.
    kafka_log_dir: Path | None = None
    start_timeout_s: float = Field(default=90.0, gt=0)

    @property
    def resolved_state_dir(self) -> Path:
        if self.state_dir is not None:
            return self.state_dir
        return self.cache_dir / ("stack-secure" if self.secure else "stack")  # never one broker log for both


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="BILLSTREAM_",
        env_nested_delimiter="__",
        frozen=True,
        extra="forbid",
    )

    kafka: KafkaSettings = KafkaSettings()
    topics: TopicSettings = TopicSettings()
    storage: StorageSettings = StorageSettings()
    limits: LimitSettings = LimitSettings()
    worker: WorkerSettings = WorkerSettings()
    stream: StreamAppSettings = StreamAppSettings()
    api: ApiSettings = ApiSettings()
    log: LogSettings = LogSettings()
    infra: InfraSettings = InfraSettings()


def _describe(error: ValidationError) -> str:
    first = error.errors()[0]
    location = "__".join(str(part) for part in first["loc"]).upper()
    more = len(error.errors()) - 1
    suffix = f" (and {more} more)" if more else ""
    return f"invalid setting BILLSTREAM_{location}: {first['msg']}{suffix}"


def load_settings(**overrides: Any) -> Settings:
    """Build settings from the environment (overrides win); one-line error when invalid."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        raise SettingsError(_describe(exc)) from exc


def settings_env(settings: Settings) -> dict[str, str]:
    """The environment that makes a child process load these same settings (secrets included:
    for a child's environment only, never for printing)."""
    env: dict[str, str] = {}
    for section_name in type(settings).model_fields:
        section = getattr(settings, section_name)
        for field_name in type(section).model_fields:
            value = getattr(section, field_name)
            if value is None:
                continue
            if isinstance(value, SecretStr):
                value = value.get_secret_value()
            elif isinstance(value, bool):
                value = "true" if value else "false"
            env[f"BILLSTREAM_{section_name.upper()}__{field_name.upper()}"] = str(value)
    return env
