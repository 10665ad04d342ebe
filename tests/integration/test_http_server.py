"""The kit's HTTP face behind a real server (uvicorn, as the services run): an unexpected error is answered with a
500 problem on a connection that stays usable, and is logged once."""

from __future__ import annotations

import http.client
import json
import logging
import threading
import time

import pytest
import uvicorn
from fastapi import FastAPI

from buurtkracht_kit import http as kit_http
from buurtkracht_kit.metrics import ServiceMetrics

from ..system import free_port

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def server():
    app = FastAPI(version="1.2.3")
    kit_http.install(app, ServiceMetrics("server-test"), {})

    @app.post("/api/v1/failing")
    async def failing(body: dict) -> dict:
        raise RuntimeError("a bug")

    @app.get("/api/v1/fine")
    async def fine() -> dict:
        return {"fine": True}

    port = free_port()
    running = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error", http="httptools"))
    thread = threading.Thread(target=running.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not running.started:
        assert time.monotonic() < deadline, "the server did not start"
        time.sleep(0.02)
    yield port
    running.should_exit = True
    thread.join(10)


def test_a_500_keeps_the_connection_and_is_logged_once(server, caplog):
    connection = http.client.HTTPConnection("127.0.0.1", server, timeout=10)
    with caplog.at_level(logging.ERROR):
        connection.request(
            "POST", "/api/v1/failing", body=json.dumps({"a": 1}), headers={"content-type": "application/json"}
        )
        answer = connection.getresponse()
        body = json.loads(answer.read())
        assert answer.status == 500 and answer.getheader("content-type") == "application/problem+json"
        assert body["title"] == "Internal server error" and answer.getheader("api-version") == "1.2.3"
        connection.request("GET", "/api/v1/fine")  # the same connection: it was not closed under the client
        again = connection.getresponse()
        assert again.status == 200 and json.loads(again.read()) == {"fine": True}
    connection.close()
    logged = [record for record in caplog.records if record.levelno >= logging.ERROR]
    assert len(logged) == 1 and "unhandled error answering POST /api/v1/failing" in logged[0].getMessage(), [
        record.getMessage() for record in logged
    ]
