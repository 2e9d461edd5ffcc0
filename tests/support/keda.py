"""KEDA's ScaledObject (keda.sh/v1alpha1, KEDA 2.x) as a JSON schema, written from KEDA's
documented spec (keda.sh/docs/2.x/reference/scaledobject-spec and the Apache Kafka scaler's
parameter list): the Kubernetes API schemas do not cover custom resources."""
from __future__ import annotations

from typing import Any

_STRING_NUMBER = {"type": "string", "pattern": r"^[0-9]+$"}
_STRING_BOOL = {"type": "string", "enum": ["true", "false"]}

KAFKA_TRIGGER_METADATA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["bootstrapServers", "consumerGroup"],
    "properties": {
        "bootstrapServers": {"type": "string", "minLength": 1},
        "consumerGroup": {"type": "string", "minLength": 1},
        "topic": {"type": "string"},
        "lagThreshold": _STRING_NUMBER,
        "activationLagThreshold": _STRING_NUMBER,
        "offsetResetPolicy": {"type": "string", "enum": ["earliest", "latest"]},
        "allowIdleConsumers": _STRING_BOOL,
        "scaleToZeroOnInvalidOffset": _STRING_BOOL,
        "excludePersistentLag": _STRING_BOOL,
        "limitToPartitionsWithLag": _STRING_BOOL,
        "ensureEvenDistributionOfPartitions": _STRING_BOOL,
        "partitionLimitation": {"type": "string"},
        "version": {"type": "string"},
        "sasl": {"type": "string", "enum": ["plaintext", "scram_sha256", "scram_sha512", "oauthbearer", "gssapi"]},
        "tls": {"type": "string", "enum": ["enable", "disable"]},
        "unsafeSsl": _STRING_BOOL,
    },
}

SCALED_OBJECT: dict[str, Any] = {
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "properties": {
        "apiVersion": {"const": "keda.sh/v1alpha1"},
        "kind": {"const": "ScaledObject"},
        "metadata": {"type": "object", "required": ["name"]},
        "spec": {
            "type": "object",
            "additionalProperties": False,
            "required": ["scaleTargetRef", "triggers"],
            "properties": {
                "scaleTargetRef": {
                    "type": "object", "additionalProperties": False, "required": ["name"],
                    "properties": {"apiVersion": {"type": "string"}, "kind": {"type": "string"},
                                   "name": {"type": "string"}, "envSourceContainerName": {"type": "string"}},
                },
                "pollingInterval": {"type": "integer", "minimum": 1},
                "cooldownPeriod": {"type": "integer", "minimum": 0},
                "initialCooldownPeriod": {"type": "integer", "minimum": 0},
                "idleReplicaCount": {"type": "integer", "minimum": 0},
                "minReplicaCount": {"type": "integer", "minimum": 0},
                "maxReplicaCount": {"type": "integer", "minimum": 1},
                "fallback": {
                    "type": "object", "additionalProperties": False, "required": ["failureThreshold", "replicas"],
                    "properties": {"failureThreshold": {"type": "integer", "minimum": 1},
                                   "replicas": {"type": "integer", "minimum": 0},
                                   "behavior": {"enum": ["static", "currentReplicas",
                                                         "currentReplicasIfHigher", "currentReplicasIfLower"]}},
                },
                "advanced": {"type": "object"},
                "triggers": {
                    "type": "array", "minItems": 1,
                    "items": {
                        "type": "object", "additionalProperties": False, "required": ["type", "metadata"],
                        "properties": {
                            "type": {"type": "string"}, "name": {"type": "string"},
                            "metadata": {"type": "object"},
                            "metricType": {"enum": ["AverageValue", "Value", "Utilization"]},
                            "useCachedMetrics": {"type": "boolean"},
                            "authenticationRef": {"type": "object", "required": ["name"],
                                                  "properties": {"name": {"type": "string"},
                                                                 "kind": {"enum": ["TriggerAuthentication",
                                                                                   "ClusterTriggerAuthentication"]}}},
                        },
                        "if": {"properties": {"type": {"const": "kafka"}}},
                        "then": {"properties": {"metadata": KAFKA_TRIGGER_METADATA}},
                    },
                },
            },
        },
    },
}
