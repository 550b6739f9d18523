"""aiokafka producer settings from ``events.kafka``: acks, compression, TLS and SASL.

>>> from agent.config.events_kafka import KafkaSinkConfig
>>> opts = producer_options(KafkaSinkConfig(compression="zstd", linger="5ms"))
>>> opts["acks"], opts["compression_type"], opts["linger_ms"]
('all', 'zstd', 5)
"""

from __future__ import annotations

from typing import Any

from aiokafka import AIOKafkaProducer

from agent.checks.tlsutil import build_ssl_context
from agent.config.events_kafka import KafkaSinkConfig
from agent.errors import CheckError, SinkError

# Events are small; bigger batches than aiokafka's 16 KiB default mean fewer requests.
MAX_BATCH_BYTES = 256 * 1024


def producer_options(cfg: KafkaSinkConfig) -> dict[str, Any]:
    """Keyword arguments of :class:`AIOKafkaProducer` for ``cfg``.

    ``request_timeout_ms`` is the delivery timeout, so the producer gives up on a
    batch about when the sink does and a retired producer stops promptly.
    """
    opts: dict[str, Any] = {
        "bootstrap_servers": list(cfg.bootstrap_servers),
        "client_id": cfg.client_id,
        "acks": "all",
        "enable_idempotence": cfg.idempotence,
        "compression_type": None if cfg.compression == "none" else cfg.compression,
        "linger_ms": round(cfg.linger * 1000),
        "request_timeout_ms": max(1, round(cfg.delivery_timeout * 1000)),
        "max_batch_size": MAX_BATCH_BYTES,
        "security_protocol": cfg.security_protocol,
    }
    if cfg.security_protocol in ("SSL", "SASL_SSL"):
        try:
            opts["ssl_context"] = build_ssl_context(cfg.tls_config)
        except CheckError as exc:
            raise SinkError(f"events.kafka.{exc}") from exc
    if cfg.sasl is not None:
        assert cfg.sasl.password is not None  # the config requires one
        opts["sasl_mechanism"] = cfg.sasl.mechanism
        opts["sasl_plain_username"] = cfg.sasl.username
        opts["sasl_plain_password"] = cfg.sasl.password.get_secret_value()
    return opts


def new_producer(cfg: KafkaSinkConfig) -> AIOKafkaProducer:
    """A producer (not started) for ``cfg``; call inside the running event loop."""
    return AIOKafkaProducer(**producer_options(cfg))
