"""Each service's committed OpenAPI and AsyncAPI documents are the ones its code generates (`make docs`)."""

import json
import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from buurtkracht_kit.cli import app

pytestmark = pytest.mark.unit

ROOT = Path(__file__).parents[2]
SERVICES = sorted(path.parent.name for path in ROOT.glob("services/*/src/*/app.py"))


@pytest.mark.parametrize("service", SERVICES)
def test_committed_api_documents_are_current(service, tmp_path, monkeypatch):
    monkeypatch.setitem(os.environ, "BK_DATABASE_URL", "postgresql://docs@localhost/docs")
    result = CliRunner().invoke(app, ["docs", service, "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    for name in ("openapi.json", "asyncapi.json"):
        committed = ROOT / "services" / service / "docs" / name
        assert committed.exists(), f"{committed} is missing: run `make docs`"
        assert json.loads(committed.read_text()) == json.loads((tmp_path / name).read_text()), (
            f"{committed} is out of date: run `make docs`"
        )
