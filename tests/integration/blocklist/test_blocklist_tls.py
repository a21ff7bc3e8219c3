"""The sync talks to its database over verified TLS only, against real MariaDB servers."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from local import mariadb
from local.tls import make_ca_and_server_cert
from returnguard.aws.blocklist import WATERMARK_KEY, BlocklistSourceUnavailable, MySQLBlocklistSource, sync

from .conftest import DB_PASSWORD, World
from .test_blocklist_sync import seed_three

pytestmark = [pytest.mark.mariadb, pytest.mark.slow]


def test_the_sync_connects_over_tls_verified_against_the_ca_bundle(world: World):
    seed_three(world)
    source, snapshots, table = world.adapters()

    with source.connect() as connection, connection.cursor() as cursor:
        cursor.execute("SHOW SESSION STATUS LIKE 'Ssl_version'")
        assert cursor.fetchone()["Value"].startswith("TLSv1.")
    assert sync(source, snapshots, table).upserted == 3


def test_a_certificate_from_another_ca_is_refused_before_anything_is_written(world: World, tmp_path):
    seed_three(world)
    other_ca = make_ca_and_server_cert(tmp_path / "other").ca
    _, snapshots, table = world.adapters()
    source = MySQLBlocklistSource(world.secrets, world.secret_arn, world.database, 2, ca_bundle=str(other_ca))

    with pytest.raises(BlocklistSourceUnavailable) as raised:
        sync(source, snapshots, table)

    assert raised.value.code == "blocklist_source_unavailable"
    assert world.items() == {} and world.objects() == {}
    assert DB_PASSWORD not in str(raised.value)


def test_a_missing_ca_bundle_is_refused(world: World, tmp_path):
    _, snapshots, table = world.adapters()
    source = MySQLBlocklistSource(
        world.secrets, world.secret_arn, world.database, 2, ca_bundle=str(tmp_path / "absent.pem")
    )
    with pytest.raises(BlocklistSourceUnavailable, match="CA bundle"):
        sync(source, snapshots, table)
    assert WATERMARK_KEY not in world.items()


@pytest.fixture(scope="module")
def plain_server() -> Iterator[mariadb.MariaDB]:
    server = mariadb.start()  # no TLS: what a misconfigured or impostor database looks like
    yield server
    server.stop()


def test_a_server_without_tls_is_refused(world: World, plain_server: mariadb.MariaDB):
    plain_server.create_database(world.database, "rg_sync", DB_PASSWORD)
    source, snapshots, table = world.adapters(port=plain_server.port)

    with pytest.raises(BlocklistSourceUnavailable):
        sync(source, snapshots, table)

    assert world.items() == {} and world.objects() == {}
