"""The area registry: a municipality imports the CBS wijk- en buurtkaart (GeoJSON), every feature is checked and the
file is taken whole or not at all, each new or changed area is told on Kafka as `AreaRegistered` keyed by its code,
anyone reads the areas, and an initiative is proposed only for a registered area."""

from __future__ import annotations

import asyncio
import copy
import uuid

import httpx
import pytest
from asgi_lifespan import LifespanManager
from initiatives.app import create
from initiatives.domain.areas import Area, from_cbs
from initiatives.settings import InitiativesSettings

from buurtkracht_contracts.kafka import from_kafka
from buurtkracht_contracts.refusals import InvalidInput
from buurtkracht_contracts.topics import INITIATIVES_EVENTS, all_topics
from buurtkracht_kit import topics
from buurtkracht_kit.auth import mint
from tests import areas
from tests.integration.kit_domain import read_topic
from tests.keys import PRIVATE, PUBLIC

REGISTERED = "nl.buurtkracht.initiatives.area-registered.v1"


def token(sub: str, roles: list[str], areas: list[str]) -> dict[str, str]:
    issued = mint(
        PRIVATE, issuer="https://login.buurtkracht.local", audience="buurtkracht", subject=sub, roles=roles, areas=areas
    )
    return {"Authorization": f"Bearer {issued}"}


ADMIN = token("admin", ["admin"], ["GM0363"])


def refusal(collection) -> InvalidInput:
    with pytest.raises(InvalidInput) as refused:
        from_cbs(collection)
    return refused.value


# -- reading the CBS file (pure) -------------------------------------------------------------------------------------


@pytest.mark.unit
def test_the_committed_cbs_sample_reads_as_a_municipality_its_wijken_and_the_buurten_of_one_wijk():
    read = {area.code: area for area in from_cbs(areas.sample())}
    assert read["GM0363"] == Area("GM0363", "Amsterdam", "gemeente", None, None)
    assert read["WK036300"] == Area("WK036300", "Burgwallen-Oude Zijde", "wijk", "GM0363", None)
    assert read["BU03630000"] == Area("BU03630000", "Kop Zeedijk", "buurt", "WK036300", None)
    assert {"BU03630000", "BU03630001", "BU03630002"} <= read.keys()


@pytest.mark.unit
def test_a_feature_with_a_polygon_keeps_it_as_its_outline_and_a_padded_code_is_trimmed():
    polygon = {"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [0, 1], [0, 0]]]}  # a shape, not a real outline
    feature = {"type": "Feature", "properties": {"buurtcode": "BU03630000  ", "buurtnaam": "Kop Zeedijk"}}
    [area] = from_cbs({"type": "FeatureCollection", "features": [feature | {"geometry": polygon}]})
    assert area.code == "BU03630000" and area.outline == polygon


@pytest.mark.unit
@pytest.mark.parametrize(
    ("change", "field"),
    [
        (lambda p: p.update(buurtcode="BU0363000"), "features[6].properties.buurtcode"),
        (lambda p: p.update(buurtcode="WK03630000"), "features[6].properties.buurtcode"),
        (lambda p: p.update(buurtcode=363), "features[6].properties.buurtcode"),
        (lambda p: p.pop("buurtnaam"), "features[6].properties.buurtnaam"),
        (lambda p: p.update(buurtnaam="   "), "features[6].properties.buurtnaam"),
        (lambda p: p.update(wijkcode="WK036301"), "features[6].properties.wijkcode"),
        (lambda p: p.clear(), "features[6].properties"),
    ],
)
def test_a_feature_at_fault_is_refused_by_its_index_and_field(change, field):
    collection = areas.sample()
    change(collection["features"][6]["properties"])
    assert refusal(collection).field == field


@pytest.mark.unit
def test_a_code_twice_a_geometry_that_is_no_outline_and_an_empty_file_are_refused():
    collection = areas.sample()
    collection["features"].append(copy.deepcopy(collection["features"][1]))
    assert refusal(collection).field == f"features[{len(collection['features']) - 1}].properties.wijkcode"
    collection = areas.sample()
    collection["features"][2]["geometry"] = {"type": "Point", "coordinates": [4.9, 52.37]}
    assert refusal(collection).field == "features[2].geometry"
    collection = areas.sample()
    ring = [[n / 1000, n / 1000] for n in range(60_000)]  # a shape of too many points, not a real outline
    collection["features"][3]["geometry"] = {"type": "Polygon", "coordinates": [[*ring, ring[0]]]}
    assert refusal(collection).field == "features[3].geometry"
    assert refusal({"type": "FeatureCollection", "features": []}).field == "features"
    assert refusal([]).field == "type"


# -- the registry on the real stack ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
async def service(scratch_database, kafka_bootstrap, tmp_path_factory):
    await topics.ensure({"bootstrap_servers": kafka_bootstrap}, all_topics())
    key = tmp_path_factory.mktemp("keys") / "public.pem"
    key.write_text(PUBLIC)
    settings = InitiativesSettings(
        service_name=f"initiatives-test-{uuid.uuid4().hex[:6]}",
        database_url=scratch_database,
        kafka_bootstrap_servers=kafka_bootstrap,
        jwt_public_key_file=key,
        consumer_start="latest",
        relay_poll_interval_seconds=0.1,
    )
    service = create(settings)
    async with LifespanManager(service.app):
        yield service


@pytest.fixture(scope="module")
async def api(service):
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=service.app), base_url="http://test") as client:
        yield client


async def registered_events(kafka_bootstrap: str, code: str, at_least: int) -> list:
    """The `AreaRegistered` events of `code` on Kafka, once at least `at_least` arrived (or after a while)."""
    for _ in range(50):
        records = await read_topic(kafka_bootstrap, INITIATIVES_EVENTS, at_least=1, timeout=10)
        envelopes = [from_kafka(r.key, r.value, r.headers) for r in records if r.key == code.encode()]
        mine = [e for e in envelopes if e.type == REGISTERED]
        if len(mine) >= at_least:
            return mine
        await asyncio.sleep(0.2)
    return mine


@pytest.mark.integration
async def test_an_import_registers_every_area_once_and_tells_each_new_or_changed_one_on_kafka(api, kafka_bootstrap):
    # a code of this test's own, so its events are its own, in wijken WK036390 to WK036399 that no other test lists
    # (BU03639999 is the unknown one)
    code = f"BU03639{uuid.uuid4().int % 999:03d}"
    run = uuid.uuid4().hex[:8]
    first = areas.stand_ins(code)
    first["features"][0]["properties"]["buurtnaam"] = f"Testbuurt {run}"
    answer = await api.put("/api/v1/areas", json=first, headers=ADMIN)
    assert answer.status_code == 200 and answer.json() == {"registered": 1, "changed": 0, "unchanged": 0}
    again = await api.put("/api/v1/areas", json=first, headers=ADMIN)
    assert again.json() == {"registered": 0, "changed": 0, "unchanged": 1}, "the same file again tells nothing"
    renamed = copy.deepcopy(first)
    renamed["features"][0]["properties"]["buurtnaam"] = f"Testbuurt {run} hernoemd"
    assert (await api.put("/api/v1/areas", json=renamed, headers=ADMIN)).json()["changed"] == 1

    events = await registered_events(kafka_bootstrap, code, at_least=2)
    names = [e.data["name"] for e in events if e.data["name"].startswith(f"Testbuurt {run}")]
    assert names == [f"Testbuurt {run}", f"Testbuurt {run} hernoemd"], "one event per new or changed area, in order"
    assert all(e.subject == code and e.data["kind"] == "buurt" for e in events)
    assert events[-1].data["parent_code"] == f"WK{code[2:8]}"


@pytest.mark.integration
async def test_anyone_reads_a_registered_area_by_its_code_and_lists_the_areas_of_a_wijk(api):
    await areas.register(api, ADMIN)
    area = await api.get("/api/v1/areas/WK036300")
    assert area.status_code == 200, area.text
    assert area.json() == {
        "code": "WK036300",
        "name": "Burgwallen-Oude Zijde",
        "kind": "wijk",
        "parent_code": "GM0363",
        "outline": None,
    }
    page = (await api.get("/api/v1/areas", params={"parent_code": "WK036300", "limit": 100})).json()
    assert [a["code"] for a in page["items"]] == [f"BU0363000{n}" for n in range(5)] and page["total"] == 5
    assert [a["name"] for a in page["items"]][:2] == ["Kop Zeedijk", "Oude Kerk e.o."]
    unknown = await api.get("/api/v1/areas/BU03639999")
    assert unknown.status_code == 404 and unknown.headers["content-type"] == "application/problem+json"


@pytest.mark.integration
async def test_a_file_with_one_feature_at_fault_is_refused_naming_it_and_registers_nothing(api):
    collection = areas.stand_ins("BU03638801", "BU03638802", "BU03638803")
    collection["features"][2]["properties"]["buurtnaam"] = ""
    answer = await api.put("/api/v1/areas", json=collection, headers=ADMIN)
    assert answer.status_code == 422 and answer.headers["content-type"] == "application/problem+json"
    assert answer.json()["errors"] == [
        {"field": "features[2].properties.buurtnaam", "message": "the buurt BU03638803 has no name"}
    ]
    assert (await api.get("/api/v1/areas/BU03638801")).status_code == 404, "nothing of the file was registered"
    malformed = await api.put("/api/v1/areas", content=b"{not json", headers=ADMIN)
    assert malformed.status_code == 400 and malformed.json()["errors"][0]["field"] == "body"


@pytest.mark.integration
async def test_only_an_administrator_imports_areas(api):
    collection = areas.stand_ins("BU03638901")
    resident = await api.put("/api/v1/areas", json=collection, headers=token("r-1", ["resident"], ["BU03638901"]))
    official = await api.put("/api/v1/areas", json=collection, headers=token("o-1", ["official"], ["GM0363"]))
    anonymous = await api.put("/api/v1/areas", json=collection)
    assert (resident.status_code, official.status_code, anonymous.status_code) == (403, 403, 401)
    assert (await api.get("/api/v1/areas/BU03638901")).status_code == 404


@pytest.mark.integration
async def test_an_initiative_is_proposed_only_for_a_registered_area(api):
    proposal = {
        "title": "Bankjes op het plein",
        "summary": "Drie bankjes",
        "description": "Drie bankjes rond de boom",
        "category": "social",
        "budget_lines": [{"description": "bankjes", "amount_cents": 60_000}],
    }
    unknown = await api.post(
        "/api/v1/initiatives",
        json=proposal | {"area_code": "BU03637777"},
        headers=token("r-unknown", ["resident"], ["BU03637777"]),
    )
    assert unknown.status_code == 422, unknown.text
    assert unknown.json()["errors"][0]["field"] == "area_code"
    await areas.register(api, ADMIN, "BU03637777")
    known = await api.post(
        "/api/v1/initiatives",
        json=proposal | {"area_code": "BU03637777"},
        headers=token("r-unknown", ["resident"], ["BU03637777"]),
    )
    assert known.status_code == 201, known.text
