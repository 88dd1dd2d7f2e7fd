from __future__ import annotations

from pathlib import Path

import pytest

from moorage.api import schema
from moorage.api.schema import ErrorBody, Event, ForwardInfo, Status, decode
from moorage.errors import ConfigError, EngineError, HostError, MoorageError

DOC = Path(__file__).parents[3] / "docs" / "api.md"


def test_events_and_status_round_trip_as_json() -> None:
    event = Event(id=1, kind="forward", message="m", change="added",
                  forward=ForwardInfo("tcp", "127.0.0.1", 8080, 80))  # fmt: skip
    assert decode(Event, event.to_json()) == event
    status = Status(machine="default", state="degraded", warnings=["w"], phase_seconds={"vm": 1.0})
    assert decode(Status, status.to_json()) == status


def test_decoding_ignores_fields_a_newer_agent_added() -> None:
    data = {**Event(id=3, kind="state", message="m", state="running").to_json(), "colour": "red"}
    assert decode(Event, data).state == "running"
    status = decode(Status, {"machine": "x", "state": "running", "clusters": [1, 2], "api": 2})
    assert (status.machine, status.state, status.api) == ("x", "running", 2)


def test_every_answer_names_the_api_version() -> None:
    assert Status(machine="x").to_json()["api"] == schema.API_VERSION


@pytest.mark.parametrize(
    "error",
    [
        HostError("cannot reach libvirt", fix="start it"),
        EngineError("no answer", fix="look"),
        ConfigError("config.toml", ["cpus = 9 is not allowed", "unknown key 'x'"]),
        schema.VMCrashed("gone", fix="`moorage start`"),
    ],
)
def test_errors_cross_the_wire_as_their_own_class(error: MoorageError) -> None:
    body = schema.error_body(error)
    assert body.code != "agent"
    back = schema.error_from_body(decode(ErrorBody, {**body.__dict__, "extra": 1}))
    assert type(back) is type(error)
    assert str(back) == str(error)


def test_an_unknown_code_is_still_an_error_with_its_message() -> None:
    back = schema.error_from_body(ErrorBody("from-the-future", "odd", "do x"))
    assert isinstance(back, MoorageError)
    assert (back.message, back.fix) == ("odd", "do x")


def test_docs_api_md_is_generated_from_the_schema() -> None:
    assert DOC.read_text() == schema.markdown(), "run: python -m moorage.api.schema > docs/api.md"


def test_an_operation_ends_at_its_own_end_not_at_its_parts() -> None:
    def ev(kind: str, op: str | None) -> Event:
        return Event(id=1, kind=kind, message="m", op=op)  # type: ignore[arg-type]

    assert schema.ends("stop", ev("done", "stop"))
    assert not schema.ends("stop", ev("error", "start"))  # the start it cancelled
    assert schema.ends("stop", ev("error", "stop"))
    assert not schema.ends("delete", ev("done", "stop"))  # the stop inside the delete
    assert schema.ends("delete", ev("done", "delete"))
    assert schema.ends("restart", ev("ready", "start"))
    assert not schema.ends("start", ev("error", None))  # a crash outside the start
    assert not schema.ends("start", ev("progress", "start"))


def test_stats_and_diagnostics_round_trip_ignoring_what_a_newer_agent_adds() -> None:
    stats = schema.Stats("default", 5.0, 2, 2048, [schema.StatSample(1.0, 12.5, 700.0)])
    data = {**stats.to_json(), "disk": 1}
    data["samples"][0]["load"] = 0.5
    assert stats.to_json()["api"] == schema.API_VERSION
    assert decode(schema.Stats, data) == stats
    report = schema.Diagnostics("/x/diagnostics-20261204-120000.zip", 10, ["agent.log"], 2)
    assert report.to_json()["api"] == schema.API_VERSION
    assert decode(schema.Diagnostics, {**report.to_json(), "sha256": "0"}) == report
    assert {("GET", "/v1/stats"), ("POST", "/v1/diagnose")} <= {
        (r.method, r.path) for r in schema.ROUTES
    }
