"""The local stack's front end to moto."""

from __future__ import annotations

from moto.server import DomainDispatcherApplication

from local.stack import _dispatcher


def test_dispatcher_finds_the_backends_moto_finds_and_looks_each_host_up_once(monkeypatch) -> None:
    # Given moto's own lookup, counted
    lookups: list[str | None] = []
    original = DomainDispatcherApplication.get_backend_for_host

    def counted(self: DomainDispatcherApplication, host: str | None) -> object:
        lookups.append(host)
        return original(self, host)

    monkeypatch.setattr(DomainDispatcherApplication, "get_backend_for_host", counted)
    dispatcher = _dispatcher()
    hosts = ["dynamodb", "kinesis.us-east-1.amazonaws.com", "s3.us-east-1.amazonaws.com", None]
    # When every host is asked for twice
    first = [dispatcher.get_backend_for_host(host) for host in hosts]
    again = [dispatcher.get_backend_for_host(host) for host in hosts]
    # Then the answers are moto's, and moto was asked once per host
    assert first == again == [original(dispatcher, host) for host in hosts]
    assert first == ["dynamodb", "kinesis", "s3", None]
    assert lookups == hosts
