"""The CRD generator: structural output, rules carried through, defaults that match the models."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import BaseModel, ConfigDict, Field

from lambdalet import cli
from lambdalet.api import (
    API_VERSION,
    EVENTSOURCE_RESOURCE,
    FUNCTION_RESOURCE,
    GROUP,
    VERSION,
    crdgen,
)
from lambdalet.api.common import cel_rules, exactly_one
from lambdalet.api.eventsource import EventSource
from lambdalet.api.function import Function
from tests.api.cases import (
    INVALID_EVENTSOURCES,
    INVALID_FUNCTIONS,
    VALID_EVENTSOURCES,
    VALID_FUNCTIONS,
)

REPO_CRDS = Path(__file__).resolve().parents[2] / "crds"
CRDS = {source.resource.kind: crdgen.crd(source) for source in crdgen.SOURCES}
NOT_STRUCTURAL = ("$ref", "$defs", "anyOf", "oneOf", "allOf", "not", "title", "const")


def schema_of(kind: str) -> dict[str, Any]:
    (version,) = CRDS[kind]["spec"]["versions"]
    schema: dict[str, Any] = version["schema"]["openAPIV3Schema"]
    return schema


def nodes(schema: dict[str, Any], path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    """Every schema node with its path (``.a.b`` for properties, ``[]`` items, ``{}`` values)."""
    yield path, schema
    for name, child in schema.get("properties", {}).items():
        yield from nodes(child, f"{path}.{name}")
    if isinstance(schema.get("items"), dict):
        yield from nodes(schema["items"], f"{path}[]")
    if isinstance(schema.get("additionalProperties"), dict):
        yield from nodes(schema["additionalProperties"], f"{path}{{}}")


def node_at(schema: dict[str, Any], path: str) -> dict[str, Any]:
    return dict(nodes(schema))[path]


def apply_defaults(schema: dict[str, Any], value: Any) -> Any:
    """Structural defaulting as the API server does it: a parent's default first, then children."""
    if isinstance(value, dict) and "properties" in schema:
        result = dict(value)
        for name, child in schema["properties"].items():
            if name not in result and "default" in child:
                result[name] = child["default"]
            if name in result:
                result[name] = apply_defaults(child, result[name])
        return result
    if isinstance(value, list) and "items" in schema:
        return [apply_defaults(schema["items"], item) for item in value]
    return value


def without_empty(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: without_empty(v) for k, v in value.items() if v not in ({}, [], None)}
    if isinstance(value, list):
        return [without_empty(item) for item in value]
    return value


@pytest.mark.parametrize("kind", sorted(CRDS))
def test_schema_is_structural(kind: str) -> None:
    for path, node in nodes(schema_of(kind)):
        assert not set(NOT_STRUCTURAL) & set(node), path
        untyped_ok = node.get("x-kubernetes-preserve-unknown-fields") or node.get(
            "x-kubernetes-int-or-string"
        )
        assert "type" in node or untyped_ok, path
        assert node.get("additionalProperties") is not False, path
        if node.get("type") == "object" and path != ".metadata":
            assert "properties" in node or "additionalProperties" in node, path
        if "exclusiveMinimum" in node:
            assert node["exclusiveMinimum"] is True
            assert "minimum" in node
        if path not in ("", ".apiVersion", ".kind", ".metadata"):
            assert node.get("description") or path.endswith(("[]", "{}")), path


@pytest.mark.parametrize("kind", sorted(CRDS))
def test_every_rule_is_bounded_for_cel_cost(kind: str) -> None:
    for path, node in nodes(schema_of(kind)):
        if "x-kubernetes-validations" not in node:
            continue
        if node["type"] == "object" and "additionalProperties" in node:
            assert "maxProperties" in node, path
            assert "maxLength" in node["additionalProperties"], path


@pytest.mark.parametrize(
    ("kind", "path", "default"),
    [
        ("Function", ".spec.timeoutSeconds", 3),
        ("Function", ".spec.memoryMiB", 128),
        ("Function", ".spec.concurrency", {"perInstance": 1}),
        (
            "Function",
            ".spec.scaling",
            {"minScale": 0, "maxScale": 10, "scaleToZeroAfterSeconds": 60},
        ),
        (
            "Function",
            ".spec.http",
            {"exposure": "cluster-local", "auth": {"type": "none"}, "eventFormat": "v2"},
        ),
        ("Function", ".spec.concurrency.perInstance", 1),
        ("Function", ".spec.scaling.minScale", 0),
        ("Function", ".spec.scaling.maxScale", 10),
        ("Function", ".spec.http.auth.type", "none"),
        ("Function", ".spec.http.auth.secretRef.key", "token"),
        ("Function", ".spec.async.maxRetries", 2),
        ("EventSource", ".spec.batchSize", 10),
        ("EventSource", ".spec.enabled", True),
        ("EventSource", ".spec.s3.events", ["s3:ObjectCreated:*"]),
        ("EventSource", ".spec.redisStreams.consumerGroup", "lambdalet"),
    ],
)
def test_defaults_are_in_the_schema(kind: str, path: str, default: Any) -> None:
    assert node_at(schema_of(kind), path)["default"] == default


@pytest.mark.parametrize(
    ("kind", "path"),
    [
        ("Function", ".spec.environment"),
        ("Function", ".spec.envFrom"),
        ("Function", ".spec.handler"),
        ("Function", ".status.conditions"),
        ("EventSource", ".spec.deadLetter"),
    ],
)
def test_unset_means_absent(kind: str, path: str) -> None:
    assert "default" not in node_at(schema_of(kind), path)


@pytest.mark.parametrize(
    ("model", "manifest"),
    [(Function, m) for _, m in VALID_FUNCTIONS] + [(EventSource, m) for _, m in VALID_EVENTSOURCES],
    ids=[i for i, _ in VALID_FUNCTIONS] + [i for i, _ in VALID_EVENTSOURCES],
)
def test_api_server_defaults_match_the_models(
    model: type[BaseModel], manifest: dict[str, Any]
) -> None:
    schema = schema_of(model.__name__)["properties"]["spec"]

    defaulted = apply_defaults(schema, manifest["spec"])

    parsed = model.model_validate(manifest)
    wire = parsed.model_dump(mode="json", by_alias=True, exclude_none=True)["spec"]
    assert without_empty(defaulted) == without_empty(wire)


def test_every_cel_rule_is_exercised_by_an_invalid_case() -> None:
    expected = [case[2] for case in INVALID_FUNCTIONS + INVALID_EVENTSOURCES]
    messages = [
        rule["message"]
        for kind in CRDS
        for _, node in nodes(schema_of(kind))
        for rule in node.get("x-kubernetes-validations", ())
    ]

    assert messages
    for message in messages:
        assert message in expected, f"no case in tests/api/cases.py triggers {message!r}"


def test_crd_names_and_columns() -> None:
    fn = CRDS["Function"]
    names = fn["spec"]["names"]
    (version,) = fn["spec"]["versions"]

    assert fn["metadata"]["name"] == "functions.lambdalet.dev"
    assert fn["spec"]["scope"] == "Namespaced"
    assert names == {
        "kind": "Function",
        "listKind": "FunctionList",
        "plural": "functions",
        "singular": "function",
        "shortNames": ["fn"],
        "categories": ["lambdalet"],
    }
    assert (version["name"], version["served"], version["storage"]) == ("v1alpha1", True, True)
    assert version["subresources"] == {"status": {}}
    assert [c["name"] for c in version["additionalPrinterColumns"]] == [
        "Ready",
        "Reason",
        "Replicas",
        "URL",
        "Cold-Start",
        "Age",
    ]
    assert CRDS["EventSource"]["spec"]["names"]["shortNames"] == ["evs"]
    (evs_version,) = CRDS["EventSource"]["spec"]["versions"]
    assert [c["jsonPath"] for c in evs_version["additionalPrinterColumns"]] == [
        ".spec.function.name",
        '.status.conditions[?(@.type=="Ready")].status',
        ".status.assignedReplica",
        ".metadata.creationTimestamp",
    ]


def test_api_version_is_group_and_version() -> None:
    assert f"{GROUP}/{VERSION}" == API_VERSION
    assert FUNCTION_RESOURCE.api_version == API_VERSION
    assert EVENTSOURCE_RESOURCE.crd_name == "eventsources.lambdalet.dev"


def test_top_level_schema() -> None:
    schema = schema_of("Function")

    assert schema["type"] == "object"
    assert list(schema["properties"]) == ["apiVersion", "kind", "metadata", "spec", "status"]
    assert schema["properties"]["metadata"] == {"type": "object"}
    assert schema["required"] == ["spec"]


def test_files_on_disk_are_fresh() -> None:
    stale = crdgen.stale_files(REPO_CRDS)

    assert not stale, f"stale CRDs {[str(p) for p in stale]}: run `lambdalet crds`"


def test_rendering_is_deterministic_and_parses_back() -> None:
    first, second = crdgen.rendered_crds(), crdgen.rendered_crds()

    assert first == second
    for name, text in first.items():
        assert text.startswith(crdgen.HEADER)
        assert "&id" not in text, f"{name} uses YAML anchors"
        assert yaml.safe_load(text)["kind"] == "CustomResourceDefinition"


class _Inner(BaseModel):
    """Inner docs."""

    model_config = ConfigDict(
        json_schema_extra=cel_rules(exactly_one(("a", "b"), "set one of a, b"))
    )

    a: int | None = Field(default=None, gt=0, description="A.")
    b: float | None = Field(default=None, description="B.")


class _Outer(BaseModel):
    """Outer docs."""

    inner: _Inner = Field(default_factory=_Inner, description="Field docs win.")
    maybe: _Inner | None = Field(default=None, description="Optional.")
    labels: dict[str, str] = Field(default_factory=dict, description="Map.")
    items: tuple[str, ...] = Field(default=("x",), description="List.")


def test_conversion_of_json_schema_constructs() -> None:
    schema = crdgen.structural_schema(_Outer)
    inner = schema["properties"]["inner"]

    assert inner["description"] == "Field docs win."
    assert inner["default"] == {}
    assert inner["properties"]["a"] == {
        "type": "integer",
        "description": "A.",
        "minimum": 0,
        "exclusiveMinimum": True,
    }
    assert inner["properties"]["b"] == {"type": "number", "description": "B."}
    assert inner["x-kubernetes-validations"] == [
        {
            "rule": "[has(self.a), has(self.b)].filter(x, x).size() == 1",
            "message": "set one of a, b",
        }
    ]
    assert "default" not in schema["properties"]["maybe"]
    assert schema["properties"]["labels"] == {
        "type": "object",
        "description": "Map.",
        "additionalProperties": {"type": "string"},
    }
    assert schema["properties"]["items"]["default"] == ["x"]
    assert "required" not in schema


class _Union(BaseModel):
    value: int | str


class _Keyed(BaseModel):
    value: dict[str, int] = Field(json_schema_extra={"propertyNames": {"pattern": "^a$"}})


@pytest.mark.parametrize(("model", "complaint"), [(_Union, "anyOf"), (_Keyed, "propertyNames")])
def test_unsupported_constructs_fail_loudly(model: type[BaseModel], complaint: str) -> None:
    with pytest.raises(crdgen.SchemaError, match=complaint):
        crdgen.structural_schema(model)


def test_cli_writes_and_checks(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "crds"

    assert cli.main(["crds", "--check", "--output", str(out)]) == 1
    assert cli.main(["crds", "--output", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == [
        "eventsources.lambdalet.dev.yaml",
        "functions.lambdalet.dev.yaml",
    ]
    assert cli.main(["crds", "--check", "--output", str(out)]) == 0

    (out / "functions.lambdalet.dev.yaml").write_text("# edited by hand\n", encoding="utf-8")
    capsys.readouterr()
    assert cli.main(["crds", "--check", "--output", str(out)]) == 1
    assert "functions.lambdalet.dev.yaml is stale" in capsys.readouterr().err


def test_cli_needs_a_subcommand(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        cli.main([])

    assert exit_.value.code == 2
    assert "crds" in capsys.readouterr().err
