"""The local stack's front end to moto."""

from __future__ import annotations

import pytest
from moto.server import DomainDispatcherApplication

from local import stack as local_stack
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


def test_a_second_stack_of_the_same_prefix_in_one_process_is_refused_by_name() -> None:
    # moto's resources live per process: the second stack's tables would exist already, and before this
    # check a module that reused the default prefix broke every later module's stack with a moto error
    first = local_stack.start(prefix="returnguard-twice")
    try:
        with pytest.raises(RuntimeError, match="'returnguard-twice' was already started in this process"):
            local_stack.start(prefix="returnguard-twice")
        other = local_stack.start(prefix="returnguard-twice-2")
        assert other.client("dynamodb").list_tables()["TableNames"]  # another prefix still starts
        other.stop()
    finally:
        first.stop()
