"""A real MariaDB server for the whole session (installed with apt-get if missing) and moto for AWS."""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pymysql
import pytest
from moto import mock_aws

from local import mariadb
from local.stack import create_table
from local.tls import TlsFiles, make_ca_and_server_cert
from returnguard.aws.blocklist import (
    CREATE_SOURCE_TABLE,
    DynamoBlocklistTable,
    MySQLBlocklistSource,
    S3SnapshotWriter,
)
from returnguard.tables import FEATURES

DB_USER = "rg_sync"
DB_PASSWORD = "Sup3r-S3cret-pw-never-logged"
TABLE = "rg-test-features"
BUCKET = "rg-test-lake"
_numbers = itertools.count()
_not_run: list[str] = []  # tests that need the server, left out because this machine cannot have it


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """On a machine that has no MariaDB and cannot install it, one test fails naming the packages to
    install and the others that need the server are deselected, so the run shows that failure once
    instead of the same error for every blocklist test."""
    needing = [item for item in items if "mariadb_server" in getattr(item, "fixturenames", ())]
    if not needing or mariadb.find_binaries() or mariadb.can_install():
        return
    rest = needing[1:]
    _not_run[:] = [item.nodeid for item in rest]
    if rest:
        config.hook.pytest_deselected(items=rest)
        left_out = set(rest)
        items[:] = [item for item in items if item not in left_out]


@pytest.fixture(scope="session")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    """A throwaway CA and a server certificate for 127.0.0.1: the local stand-in for RDS and its bundle."""
    return make_ca_and_server_cert(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="session")
def mariadb_server(tls_files: TlsFiles) -> Iterator[mariadb.MariaDB]:
    try:
        server = mariadb.start(tls=tls_files)
    except mariadb.MariaDBUnavailable as error:  # fail, never skip: these tests are the sync's proof
        also = f" ({len(_not_run)} more tests need it and were not run)" if _not_run else ""
        pytest.fail(f"the blocklist tests need a local MariaDB server{also}: {error}", pytrace=False)
    yield server
    server.stop()


@dataclass
class World:
    """One test's database, secret, bucket and table, and the sync's adapters over them."""

    db: Any  # pymysql connection as the application user
    secret_arn: str
    database: str
    port: int
    s3: Any
    dynamodb: Any
    secrets: Any
    ca_bundle: Path

    def insert(self, *rows: tuple[Any, ...]) -> None:
        """Rows of (entity_type, value, reason, listed_at, active)."""
        with self.db.cursor() as cursor:
            cursor.executemany(
                "INSERT INTO src_blacklist (entity_type, `value`, reason, listed_at, active) "
                "VALUES (%s, %s, %s, %s, %s)",
                rows,
            )

    def execute(self, sql: str, args: Any = None) -> None:
        with self.db.cursor() as cursor:
            cursor.execute(sql, args)

    def adapters(self, port: int | None = None) -> tuple[Any, Any, Any]:
        if port is not None:  # point the secret elsewhere (a database that is down)
            self.secrets.put_secret_value(SecretId=self.secret_arn, SecretString=self.secret(port))
        return (
            MySQLBlocklistSource(
                self.secrets, self.secret_arn, self.database, connect_timeout=2, ca_bundle=str(self.ca_bundle)
            ),
            S3SnapshotWriter(self.s3, BUCKET),
            DynamoBlocklistTable(self.dynamodb, TABLE),
        )

    def secret(self, port: int) -> str:
        return json.dumps(
            {
                "host": "127.0.0.1",
                "port": port,
                "username": DB_USER,
                "password": DB_PASSWORD,
                "dbname": self.database,
            }
        )

    def items(self) -> dict[str, dict[str, Any]]:
        scanned = self.dynamodb.scan(TableName=TABLE)["Items"]
        return {item["pk"]["S"]: item for item in scanned}

    def objects(self) -> dict[str, bytes]:
        listed = self.s3.list_objects_v2(Bucket=BUCKET).get("Contents", [])
        return {o["Key"]: self.s3.get_object(Bucket=BUCKET, Key=o["Key"])["Body"].read() for o in listed}


@pytest.fixture
def world(mariadb_server: mariadb.MariaDB, tls_files: TlsFiles) -> Iterator[World]:
    database = f"rg_blocklist_{next(_numbers)}"
    mariadb_server.create_database(database, DB_USER, DB_PASSWORD)
    connection = pymysql.connect(
        host="127.0.0.1",
        port=mariadb_server.port,
        user=DB_USER,
        password=DB_PASSWORD,
        database=database,
        autocommit=True,
        init_command="SET time_zone = '+00:00'",
    )
    with connection.cursor() as cursor:
        cursor.execute(CREATE_SOURCE_TABLE)
    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket=BUCKET)
        dynamodb = boto3.client("dynamodb", region_name="us-east-1")
        create_table(dynamodb, FEATURES, TABLE)
        secrets = boto3.client("secretsmanager", region_name="us-east-1")
        world = World(connection, "", database, mariadb_server.port, s3, dynamodb, secrets, tls_files.ca)
        world.secret_arn = secrets.create_secret(
            Name=f"rg/db/{database}", SecretString=world.secret(world.port)
        )["ARN"]
        yield world
    connection.close()
    with mariadb_server.connect() as admin, admin.cursor() as cursor:
        cursor.execute(f"DROP DATABASE `{database}`")
