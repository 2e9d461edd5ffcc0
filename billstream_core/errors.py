"""One root error type; third-party errors are wrapped where they enter the project.

Every error carries a stable ``code`` so that callers (the CLI, the worker writing a FAILED
result) can act on the kind of failure without parsing messages.
"""
from __future__ import annotations


class BillstreamError(Exception):
    """Root of every error the project raises on purpose."""

    code: str = "INTERNAL"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code

    @property
    def message(self) -> str:
        return str(self)


class SettingsError(BillstreamError):
    code = "BAD_SETTINGS"


# --- infrastructure (local Kafka/MinIO processes) -------------------------------------

class InfraError(BillstreamError):
    code = "INFRA"


class ToolchainMissing(InfraError):
    code = "TOOLCHAIN_MISSING"


class PortInUse(InfraError):
    code = "PORT_IN_USE"


# --- Kafka ----------------------------------------------------------------------------

class KafkaError(BillstreamError):
    code = "KAFKA"


class BrokerUnavailable(KafkaError):
    code = "BROKER_UNAVAILABLE"


class DeliveryError(KafkaError):
    code = "DELIVERY_FAILED"


# --- object storage -------------------------------------------------------------------

class StorageError(BillstreamError):
    code = "STORAGE_ERROR"


class ObjectNotFound(StorageError):
    code = "OBJECT_NOT_FOUND"


class StorageUnavailable(StorageError):
    code = "STORAGE_UNAVAILABLE"


class StorageFull(StorageError):
    """The store has no room for a new object: retrying will not help until space is freed."""
    code = "STORAGE_FULL"


class StorageAccessDenied(StorageError):
    """The credential lacks the permission: least privilege at work, or a wrong policy."""
    code = "STORAGE_ACCESS_DENIED"


# --- Avro serde -----------------------------------------------------------------------

class SerdeError(BillstreamError):
    code = "SERDE"


class SchemaError(SerdeError):
    """A schema file is missing or invalid, or a record does not match its schema."""

    code = "SCHEMA_ERROR"


class DecodeError(SerdeError):
    """Bytes on the wire are not a record of a schema we know."""

    code = "UNDECODABLE_EVENT"
