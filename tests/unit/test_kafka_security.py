"""Connecting to a Kafka that wants TLS and SCRAM (Strimzi): the clients get a TLS context trusting its CA."""

import ssl

import pytest
from faststream.security import BaseSecurity, SASLScram512

from buurtkracht_kit.runtime import _broker_security
from buurtkracht_kit.settings import KitSettings

pytestmark = pytest.mark.unit


def settings(**kafka) -> KitSettings:
    return KitSettings(service_name="vouchers", database_url="postgresql://x@y/z", **kafka)


def test_sasl_ssl_gives_scram_over_tls_for_the_consumer_and_the_relay():
    configured = settings(
        kafka_security_protocol="SASL_SSL",
        kafka_sasl_mechanism="SCRAM-SHA-512",
        kafka_sasl_username="vouchers",
        kafka_sasl_password="secret",
    )
    security = _broker_security(configured)["security"]
    assert isinstance(security, SASLScram512) and isinstance(security.ssl_context, ssl.SSLContext)
    options = configured.kafka_client_options()
    assert options["security_protocol"] == "SASL_SSL" and options["sasl_mechanism"] == "SCRAM-SHA-512"
    assert isinstance(options["ssl_context"], ssl.SSLContext)


def test_plain_tls_without_sasl_still_uses_tls():
    security = _broker_security(settings(kafka_security_protocol="SSL"))["security"]
    assert isinstance(security, BaseSecurity) and security.use_ssl and security.ssl_context is not None


def test_a_missing_ca_file_is_an_error_not_a_silent_plaintext():
    with pytest.raises(FileNotFoundError):
        settings(kafka_security_protocol="SSL", kafka_ssl_ca_file="/nonexistent/ca.crt").kafka_ssl_context()


def test_plaintext_has_no_security():
    assert _broker_security(settings()) == {} and "ssl_context" not in settings().kafka_client_options()


def test_the_command_line_connects_as_the_environment_says(monkeypatch):
    """`buurtkracht topics|relay|dlq` take the bootstrap address from their option, the rest as a service does."""
    from buurtkracht_kit import cli

    monkeypatch.setenv("BK_KAFKA_BOOTSTRAP_SERVERS", "ignored:9092")
    monkeypatch.setenv("BK_KAFKA_SECURITY_PROTOCOL", "SASL_SSL")
    monkeypatch.setenv("BK_KAFKA_SASL_MECHANISM", "SCRAM-SHA-512")
    monkeypatch.setenv("BK_KAFKA_SASL_USERNAME", "buurtkracht-operator")
    monkeypatch.setenv("BK_KAFKA_SASL_PASSWORD", "secret")
    options = cli._kafka("buurtkracht-kafka-bootstrap:9093")
    assert options["bootstrap_servers"] == ["buurtkracht-kafka-bootstrap:9093"]
    assert options["security_protocol"] == "SASL_SSL" and options["sasl_plain_username"] == "buurtkracht-operator"
    assert isinstance(options["ssl_context"], ssl.SSLContext)


def test_several_bootstrap_brokers_reach_the_clients_one_by_one():
    configured = settings(kafka_bootstrap_servers="kafka-0:9092, kafka-1:9092,kafka-2:9092,")
    assert configured.kafka_bootstrap_list == ["kafka-0:9092", "kafka-1:9092", "kafka-2:9092"]
    assert configured.kafka_client_options()["bootstrap_servers"] == configured.kafka_bootstrap_list
