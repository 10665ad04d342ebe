"""A database URL that names several servers (`h1:p1,h2:p2`, with `target_session_attrs=read-write`) reaches the
migrations with every server and parameter in it, as libpq reads the URL: a service started during a failover
migrates on whichever server is primary, as its pool connects there."""

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from buurtkracht_kit import migrations

pytestmark = pytest.mark.unit


class Connected(Exception):
    """Where yoyo would have connected: the keyword arguments it gave psycopg."""

    def __init__(self, parameters: dict) -> None:
        super().__init__(parameters)
        self.parameters = parameters


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://vouchers:vouchers-dev@127.0.0.1:15432,127.0.0.1:15433/vouchers?target_session_attrs=read-write",
        "postgresql://vouchers:p%40ss%2Cword@db-1.example:5432,[::1],db-3.example:6432/vouchers?sslmode=require",
        "postgres://vouchers:vouchers-dev@127.0.0.1:15432/vouchers",
        "postgresql://vouchers@vouchers-db-rw.buurtkracht.svc/vouchers",
    ],
)
def test_migrations_connect_with_the_servers_and_parameters_libpq_reads_from_the_url(url, monkeypatch):
    def connect(**parameters):
        raise Connected(parameters)

    monkeypatch.setattr(psycopg, "connect", connect)
    with pytest.raises(Connected) as connected:
        migrations.apply(url)
    parameters = {name: value for name, value in connected.value.parameters.items() if name != "autocommit"}
    assert conninfo_to_dict(make_conninfo("", **parameters)) == conninfo_to_dict(url)


def test_a_url_whose_server_list_cannot_be_read_is_refused():
    with pytest.raises(ValueError, match="host"):
        migrations.apply("postgresql://vouchers@db-1:5432,db-2:not-a-port/vouchers")
