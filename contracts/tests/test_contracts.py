"""The envelope on Kafka, the registry and the schema-compatibility rule."""

import copy
import json
import uuid

import pytest

from buurtkracht_contracts import Envelope, UnknownEventType, event_types, parse, source_urn
from buurtkracht_contracts.initiatives import InitiativeApproved, InitiativeSupported
from buurtkracht_contracts.kafka import _from_sdk, _standard_attributes, from_kafka, to_kafka
from buurtkracht_contracts.registry import register
from buurtkracht_contracts.schemas import breaking_changes, check

pytestmark = pytest.mark.unit

SOURCE = source_urn("00000001002564440000", "buurtkracht-initiatives")


def supported() -> InitiativeSupported:
    return InitiativeSupported(
        initiative_id=uuid.uuid4(),
        area_code="BU03630001",
        title="Geveltuinen",
        initiators=["r-1"],
        supporter_id="r-2",
        support_count=3,
    )


def test_kafka_record_carries_attributes_as_ce_headers_and_subject_as_key():
    event = supported()
    envelope = Envelope.wrap(event, SOURCE)
    record = to_kafka(envelope)
    headers = dict(record.headers)
    assert record.key == str(event.initiative_id).encode()
    assert headers["ce_type"] == b"nl.buurtkracht.initiatives.initiative-supported.v1"
    assert headers["ce_source"] == SOURCE.encode() and SOURCE.startswith("urn:nld:oin:")
    assert headers["ce_id"] == str(envelope.id).encode()
    assert headers["ce_specversion"] == b"1.0"
    assert headers["ce_subject"] == str(event.initiative_id).encode()
    assert headers["content-type"] == b"application/json"
    assert set(headers) == {"ce_type", "ce_source", "ce_id", "ce_specversion", "ce_subject", "ce_time", "content-type"}
    assert json.loads(record.value)["supporter_id"] == "r-2"


def test_the_sequence_travels_as_ce_sequence_and_only_when_the_envelope_has_one():
    envelope = Envelope.wrap(supported(), SOURCE)
    assert "ce_sequence" not in dict(to_kafka(envelope).headers) and "sequence" not in envelope.model_dump_json()
    published = envelope.model_copy(update={"sequence": "00000000000000000007"})
    record = to_kafka(published)
    assert record.headers[-1] == ("ce_sequence", b"00000000000000000007")
    assert from_kafka(record.key, record.value, record.headers).sequence == "00000000000000000007"
    assert Envelope.model_validate_json(published.model_dump_json()) == published


def test_kafka_record_round_trips_to_the_same_typed_event():
    event = supported()
    envelope = Envelope.wrap(event, SOURCE)
    record = to_kafka(envelope)
    back = from_kafka(record.key, record.value, record.headers)
    assert back.id == envelope.id and back.type == envelope.type and back.time == envelope.time
    assert parse(back) == event


def test_a_record_as_this_project_writes_it_reads_as_the_sdk_reads_it():
    for envelope in (
        Envelope.wrap(supported(), SOURCE),
        Envelope.wrap(supported(), SOURCE, sequence="00000000000000000042"),  # as the relay publishes it
    ):
        record = to_kafka(envelope)
        assert _standard_attributes(record.headers) is not None  # the quick way is the one taken
        assert from_kafka(record.key, record.value, record.headers) == envelope
        assert from_kafka(record.key, record.value, record.headers) == _from_sdk(
            record.key, record.value, record.headers
        )
    with_extension = [*record.headers, ("ce_traceparent", b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")]
    assert _standard_attributes(with_extension) is None  # anything else is the SDK's to read
    assert from_kafka(record.key, record.value, with_extension) == from_kafka(record.key, record.value, record.headers)


@pytest.mark.parametrize(
    "headers, value",
    [
        ([], b"{}"),
        (
            [
                ("ce_type", b"x"),
                ("ce_source", b"s"),
                ("ce_id", b"1"),
                ("ce_specversion", b"1.0"),
                ("content-type", b"application/json"),
            ],
            b"not json",
        ),
        (
            [
                ("ce_type", b"x"),
                ("ce_source", b"s"),
                ("ce_id", b"1"),
                ("ce_specversion", b"1.0"),
                ("content-type", b"application/json"),
            ],
            b"[1, 2]",
        ),
    ],
)
def test_a_record_that_is_not_a_cloudevent_is_refused(headers, value):
    with pytest.raises(ValueError):
        from_kafka(b"k", value, headers)


def test_unknown_event_type_is_refused():
    envelope = Envelope(source=SOURCE, type="nl.buurtkracht.nothing.v1", subject="x", data={})
    with pytest.raises(UnknownEventType):
        parse(envelope)


def test_invalid_event_data_is_refused():
    envelope = Envelope.wrap(supported(), SOURCE)
    broken = envelope.model_copy(update={"data": envelope.data | {"support_count": "many"}})
    with pytest.raises(ValueError):
        parse(broken)


def test_an_event_type_cannot_be_registered_twice():
    class Imposter(InitiativeSupported):
        pass

    with pytest.raises(ValueError, match="registered twice"):
        register(Imposter)


def test_money_is_integer_cents_never_a_float():
    base = dict(
        initiative_id=uuid.uuid4(),
        area_code="BU03630001",
        title="t",
        initiators=["r-1"],
        official_id="o-1",
        requested_amount_cents=1000,
    )
    with pytest.raises(ValueError):
        InitiativeApproved(**base, approved_amount_cents=999.5)
    with pytest.raises(ValueError):
        InitiativeApproved(**base, approved_amount_cents=-1)


def test_every_event_type_is_reverse_dns_with_a_version_suffix():
    for event_type in event_types():
        assert event_type.startswith("nl.buurtkracht.")
        assert event_type.rsplit(".", 1)[1].startswith("v") and event_type.rsplit(".", 1)[1][1:].isdigit()


def test_committed_schemas_match_the_models():
    assert check() == []


BASE = {
    "type": "object",
    "properties": {"a": {"type": "string", "title": "A"}, "n": {"type": "integer", "minimum": 0}},
    "required": ["a", "n"],
}


def test_fields_named_like_annotations_are_still_compared():
    old = {
        "type": "object",
        "properties": {"title": {"type": "string"}, "description": {"type": "string"}},
        "required": ["title", "description"],
    }
    retyped = copy.deepcopy(old)
    retyped["properties"]["title"] = {"type": "integer"}
    removed = copy.deepcopy(old)
    del removed["properties"]["description"]
    removed["required"].remove("description")
    assert breaking_changes(old, retyped) == ["$.title: type or constraints changed"]
    assert "$.description: removed" in breaking_changes(old, removed)


def test_a_reader_ignores_fields_added_by_a_newer_producer():
    envelope = Envelope.wrap(supported(), SOURCE)
    newer = envelope.model_copy(update={"data": envelope.data | {"supporter_note": "added later"}})
    assert parse(newer) == parse(envelope)


def test_writing_schemas_refuses_a_breaking_change(tmp_path):
    from buurtkracht_contracts import schemas

    schemas.write(tmp_path)
    path = tmp_path / f"{InitiativeSupported.event_type}.json"
    committed = json.loads(path.read_text())
    committed["properties"]["legacy_field"] = {"type": "string"}
    path.write_text(json.dumps(committed))
    with pytest.raises(ValueError, match="legacy_field: removed"):
        schemas.write(tmp_path)


def changed(mutate):
    schema = copy.deepcopy(BASE)
    mutate(schema)
    return schema


@pytest.mark.parametrize(
    "mutate, allowed",
    [
        (lambda s: s["properties"].update(b={"type": "string", "default": None}), True),
        (lambda s: s["properties"]["a"].update(title="Another title", description="words"), True),
        (lambda s: s["properties"].pop("a") and s["required"].remove("a"), False),
        (lambda s: s["properties"]["n"].update(type="string"), False),
        (lambda s: s["properties"]["n"].update(minimum=1), False),
        (lambda s: (s["properties"].update(b={"type": "string"}), s["required"].append("b")), False),
        (lambda s: s["required"].remove("n"), False),
        (lambda s: s.update(additionalProperties=False), False),
    ],
    ids=[
        "optional field added",
        "description changed",
        "field removed",
        "type changed",
        "constraint tightened",
        "required field added",
        "required became optional",
        "object constraint added",
    ],
)
def test_only_optional_additions_are_compatible(mutate, allowed):
    assert (breaking_changes(BASE, changed(mutate)) == []) is allowed


def test_an_incompatible_change_to_a_committed_schema_fails_the_check(tmp_path):
    from buurtkracht_contracts import schemas

    schemas.write(tmp_path)
    path = tmp_path / f"{InitiativeSupported.event_type}.json"
    committed = json.loads(path.read_text())
    committed["properties"]["legacy_field"] = {"type": "string"}
    committed["required"].append("legacy_field")
    path.write_text(json.dumps(committed))
    problems = schemas.check(tmp_path)
    assert any("legacy_field: removed" in problem for problem in problems)


def test_a_v1_round_event_written_before_equal_shares_is_read_as_the_newest_version():
    from datetime import UTC, datetime

    from buurtkracht_contracts import vouchers
    from buurtkracht_contracts.registry import current_type, models_on
    from buurtkracht_contracts.topics import VOUCHERS_EVENTS

    now = datetime(2026, 3, 1, tzinfo=UTC)
    old = vouchers.RoundOpenedV1(
        round_id=uuid.uuid4(),
        area_code="BU03630000",
        name="Buurtbudget",
        mechanism="pledge",
        total_budget_cents=100_000,
        voucher_amount_cents=2_500,
        opens_at=now,
        closes_at=now,
    )
    read = parse(Envelope.wrap(old, SOURCE))
    assert type(read) is vouchers.RoundOpened and read.model_dump() == old.model_dump()
    assert current_type(vouchers.RoundOpenedV1.event_type) == vouchers.RoundOpened.event_type
    published = models_on(VOUCHERS_EVENTS)
    assert vouchers.RoundOpened in published and vouchers.RoundOpenedV1 not in published
    with pytest.raises(ValueError):  # a v1 event never carried the new mechanism
        vouchers.RoundOpenedV1.model_validate(old.model_dump() | {"mechanism": "equal_shares"})
