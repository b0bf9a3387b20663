"""The handler registry: every domain's tasks module is found, and a kind has one handler."""

import sys
from pathlib import Path

import pytest

import kokyaku
from kokyaku.jobs import service
from kokyaku.jobs.service import JobContext, handler


def test_every_domains_tasks_module_is_loaded_even_without_an_init_file() -> None:
    service.load_handlers()
    domains = {p.parent.name for base in kokyaku.__path__ for p in Path(base).glob("*/tasks.py")}
    assert {name for name in domains if f"kokyaku.{name}.tasks" not in sys.modules} == set()


def test_a_kind_cannot_get_a_second_handler() -> None:
    def first(ctx: JobContext) -> None:
        return None

    def second(ctx: JobContext) -> None:
        return None

    handler("test.registry.once", label="Registry test")(first)
    try:
        handler("test.registry.once")(first)  # the same function again (a module imported twice) is fine
        with pytest.raises(ValueError, match="registered already"):
            handler("test.registry.once")(second)
        assert service.label_of("test.registry.once") == "Registry test"
        assert service.label_of("test.unknown.kind") == "test.unknown.kind"
    finally:
        service.HANDLERS.pop("test.registry.once", None)
