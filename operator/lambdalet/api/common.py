"""Building blocks shared by the ``Function`` and ``EventSource`` models.

The pydantic models in this package are the API: the CRDs in ``crds/`` are generated from them by
``crdgen``, and the operator parses every body into them once, at the edge. Each rule a model
enforces must also be in the CRD, so that the API server rejects what the models reject, with the
same words. Cross-field rules are therefore declared once as a :class:`CelRule` and used twice: its
CEL expression goes into the schema (``x-kubernetes-validations``) and its message is the text of
the pydantic error.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated, Any, Final, Literal, Self

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError
from pydantic.alias_generators import to_camel

GROUP = "lambdalet.dev"
VERSION = "v1alpha1"
API_VERSION: Final = "lambdalet.dev/v1alpha1"
ApiVersion = Literal["lambdalet.dev/v1alpha1"]

# A Kubernetes object name (DNS-1123 subdomain), as Secrets and ConfigMaps use.
OBJECT_NAME_PATTERN = r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$"
OBJECT_NAME_MAX_LENGTH = 253
# A key in a Secret or ConfigMap.
DATA_KEY_PATTERN = r"^[A-Za-z0-9._-]+$"
DATA_KEY_MAX_LENGTH = 253

ObjectName = Annotated[
    str, Field(min_length=1, max_length=OBJECT_NAME_MAX_LENGTH, pattern=OBJECT_NAME_PATTERN)
]
DataKey = Annotated[
    str, Field(min_length=1, max_length=DATA_KEY_MAX_LENGTH, pattern=DATA_KEY_PATTERN)
]


@dataclass(frozen=True)
class Resource:
    """How a kind is named in the Kubernetes API (CRD names, kopf handler registration)."""

    kind: str
    plural: str
    singular: str
    short_names: tuple[str, ...]
    categories: tuple[str, ...]
    group: str = GROUP
    version: str = VERSION

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}"

    @property
    def crd_name(self) -> str:
        return f"{self.plural}.{self.group}"


@dataclass(frozen=True)
class CelRule:
    """A cross-field rule: CEL for the API server, ``message`` for both it and pydantic."""

    rule: str
    message: str

    def as_schema(self) -> dict[str, str]:
        return {"rule": self.rule, "message": self.message}


def cel_rules(*rules: CelRule) -> dict[str, Any]:
    """The ``json_schema_extra`` that carries ``rules`` into the generated CRD."""
    return {"x-kubernetes-validations": [rule.as_schema() for rule in rules]}


def exactly_one(fields: Iterable[str], message: str) -> CelRule:
    """A rule that exactly one of ``fields`` (wire names) is set on the object."""
    present = ", ".join(f"has(self.{field})" for field in fields)
    return CelRule(rule=f"[{present}].filter(x, x).size() == 1", message=message)


def count_set(*values: object) -> int:
    """How many of ``values`` are set; the pydantic side of :func:`exactly_one`."""
    return sum(value is not None for value in values)


class ApiModel(BaseModel):
    """Base of every spec model: camelCase on the wire, immutable, and unknown fields rejected."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        frozen=True,
    )

    def to_wire(self) -> dict[str, Any]:
        """The object as it is sent to the API server: camelCase, unset optionals left out."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


class StatusModel(ApiModel):
    """Base of status models: fields this version does not know (kopf's own) are ignored."""

    model_config = ConfigDict(extra="ignore")

    @classmethod
    def stored(cls, body: Mapping[str, Any]) -> Self | None:
        """The status an object's ``body`` carries; None without one, or with one this version
        cannot read (it is then written anew)."""
        raw = body.get("status")
        if not raw:
            return None
        try:
            return cls.model_validate(raw)
        except ValidationError:
            return None


class ObjectMeta(BaseModel):
    """The part of ``metadata`` the operator reads; every other field is ignored."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="ignore",
        frozen=True,
    )

    name: str = Field(description="Name of the object, unique in its namespace.")
    namespace: str | None = Field(default=None, description="Namespace of the object.")
    uid: str | None = Field(default=None, description="UID the API server gave the object.")
    generation: int | None = Field(
        default=None, description="Sequence number of the spec, bumped on every spec change."
    )
    labels: dict[str, str] = Field(default_factory=dict, description="Labels of the object.")
    annotations: dict[str, str] = Field(
        default_factory=dict, description="Annotations of the object."
    )


class LocalObjectReference(ApiModel):
    """A reference to an object in the same namespace."""

    name: ObjectName = Field(
        description="Name of the object, in the same namespace as the referring resource."
    )


class SecretKeySelector(ApiModel):
    """A key of a Secret in the same namespace."""

    name: ObjectName = Field(
        description="Name of the Secret, in the same namespace as the referring resource."
    )
    key: DataKey = Field(description="Key in the Secret whose value is used.")


class ConditionStatus(StrEnum):
    TRUE = "True"
    FALSE = "False"
    UNKNOWN = "Unknown"


class Condition(StatusModel):
    """One aspect of the resource's state, shaped like Kubernetes' metav1.Condition."""

    type: str = Field(
        min_length=1,
        max_length=316,
        description="Type of the condition in CamelCase, e.g. Ready or Active.",
    )
    status: ConditionStatus = Field(description="Status of the condition: True, False or Unknown.")
    reason: str | None = Field(
        default=None,
        max_length=1024,
        description="Machine-readable CamelCase reason for the last transition.",
    )
    message: str | None = Field(
        default=None,
        max_length=32768,
        description="Human-readable details about the last transition.",
    )
    last_transition_time: AwareDatetime | None = Field(
        default=None,
        description="When the status last changed (RFC 3339).",
    )
    observed_generation: int | None = Field(
        default=None,
        ge=0,
        strict=True,
        description="metadata.generation the condition was computed from.",
    )


CONDITIONS_FIELD_SCHEMA: dict[str, Any] = {
    "x-kubernetes-list-type": "map",
    "x-kubernetes-list-map-keys": ["type"],
}
MAX_CONDITIONS = 16


def conditions_field(description: str) -> Any:
    """A status's ``conditions``: a list keyed by ``type``, as server-side apply needs."""
    return Field(
        default=(),
        max_length=MAX_CONDITIONS,
        description=description,
        json_schema_extra=CONDITIONS_FIELD_SCHEMA,
    )
