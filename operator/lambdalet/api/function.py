"""The ``Function`` resource: a Lambda-style handler, its code, and how it is invoked and scaled.

The operator turns a Function into a Deployment, a Service and (for inline code) a ConfigMap; the
activator reads ``http``, ``concurrency`` and ``async``; the autoscaler reads ``scaling``. Field
names and limits follow AWS Lambda where Lambda has the concept.
"""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import ConfigDict, Field, field_validator, model_validator

from lambdalet.api.common import (
    API_VERSION,
    DATA_KEY_MAX_LENGTH,
    DATA_KEY_PATTERN,
    ApiModel,
    ApiVersion,
    CelRule,
    Condition,
    DataKey,
    LocalObjectReference,
    ObjectMeta,
    ObjectName,
    Resource,
    StatusModel,
    cel_rules,
    conditions_field,
    count_set,
    exactly_one,
)

FUNCTION_RESOURCE = Resource(
    kind="Function",
    plural="functions",
    singular="function",
    short_names=("fn",),
    categories=("lambdalet",),
)

HANDLER_PATTERN = r"^[A-Za-z0-9_./-]+\.[A-Za-z_$][A-Za-z0-9_$]*$"
URL_PATTERN = r"^https?://[^\s]+$"
SHA256_PATTERN = r"^[A-Fa-f0-9]{64}$"
ENV_NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*$"
# Names the platform sets in every function pod (Lambda reserves AWS_*, LAMBDA_* and _HANDLER-style
# names; Lambdalet adds its own LAMBDALET_*).
RESERVED_ENV_PREFIXES = ("AWS_", "LAMBDA_", "LAMBDALET_")
RESERVED_ENV_NAMES = ("_HANDLER", "_X_AMZN_TRACE_ID")

MAX_INLINE_FILES = 32
MAX_INLINE_FILE_LENGTH = 262144
# A ConfigMap holds at most 1 MiB (1048576 bytes) of keys and values; leave room for the
# operator's own keys. CEL and Python both count characters, which equal bytes for ASCII source.
MAX_INLINE_TOTAL_LENGTH = 1000000
MAX_ENVIRONMENT = 256
MAX_ENV_VALUE_LENGTH = 32768
MAX_ENV_FROM = 16

CODE_EXACTLY_ONE = exactly_one(
    ("inline", "configMap", "url", "s3", "image"),
    "code must set exactly one of inline, configMap, url, s3, image",
)
INLINE_FILE_NAMES = CelRule(
    rule=f"self.all(k, size(k) <= {DATA_KEY_MAX_LENGTH} && k.matches('{DATA_KEY_PATTERN}'))",
    message=(
        f"inline file names must match {DATA_KEY_PATTERN} "
        f"and be at most {DATA_KEY_MAX_LENGTH} characters"
    ),
)
INLINE_TOTAL_SIZE = CelRule(
    rule=f"self.map(k, size(k) + size(self[k])).sum() <= {MAX_INLINE_TOTAL_LENGTH}",
    message=(
        f"inline files must total at most {MAX_INLINE_TOTAL_LENGTH} characters, "
        "names included (they are stored in one ConfigMap)"
    ),
)
ENV_NAMES = CelRule(
    rule=f"self.all(k, k.matches('{ENV_NAME_PATTERN}'))",
    message=f"environment variable names must match {ENV_NAME_PATTERN}",
)
ENV_RESERVED = CelRule(
    rule="self.all(k, {} && !(k in [{}]))".format(
        " && ".join(f"!k.startsWith('{prefix}')" for prefix in RESERVED_ENV_PREFIXES),
        ", ".join(f"'{name}'" for name in RESERVED_ENV_NAMES),
    ),
    message=(
        "environment variable names must not start with AWS_, LAMBDA_ or LAMBDALET_, nor be "
        "_HANDLER or _X_AMZN_TRACE_ID: the runtime sets those"
    ),
)
ENV_FROM_EXACTLY_ONE = exactly_one(
    ("secretRef", "configMapRef"),
    "envFrom entries must set exactly one of secretRef, configMapRef",
)
HANDLER_REQUIRED = CelRule(
    rule="self.runtime == 'provided' || has(self.handler)",
    message="handler is required unless runtime is provided",
)
SCALE_BOUNDS = CelRule(
    rule="self.minScale <= self.maxScale",
    message="minScale must be less than or equal to maxScale",
)
# A Function's name also names its Service (a DNS-1035 label of at most 63 characters, see
# lambdalet.names), so it is narrower than the DNS-1123 subdomain Kubernetes allows for objects.
FUNCTION_NAME_PATTERN = r"^[a-z]([-a-z0-9]*[a-z0-9])?$"
FUNCTION_NAME_MAX_LENGTH = 60
FUNCTION_NAME = CelRule(
    rule=(
        f"size(self.metadata.name) <= {FUNCTION_NAME_MAX_LENGTH} && "
        f"self.metadata.name.matches('{FUNCTION_NAME_PATTERN}')"
    ),
    message=(
        f"Function names must be at most {FUNCTION_NAME_MAX_LENGTH} characters of lowercase "
        "letters, digits and '-', starting with a letter (the name is used for its Service)"
    ),
)
BEARER_NEEDS_SECRET = CelRule(
    rule="self.type != 'bearer' || has(self.secretRef)",
    message="auth type bearer requires secretRef",
)


class Runtime(StrEnum):
    PYTHON_3_11 = "python3.11"
    PYTHON_3_12 = "python3.12"
    NODEJS_20 = "nodejs20"
    NODEJS_22 = "nodejs22"
    PROVIDED = "provided"


class PullPolicy(StrEnum):
    ALWAYS = "Always"
    IF_NOT_PRESENT = "IfNotPresent"
    NEVER = "Never"


class Exposure(StrEnum):
    CLUSTER_LOCAL = "cluster-local"
    PUBLIC = "public"


class AuthType(StrEnum):
    NONE = "none"
    BEARER = "bearer"


class EventFormat(StrEnum):
    V2 = "v2"
    V1 = "v1"


class DestinationType(StrEnum):
    REDIS_STREAM = "redisStream"
    FUNCTION = "function"


InlineFileContent = Annotated[str, Field(max_length=MAX_INLINE_FILE_LENGTH)]
EnvValue = Annotated[str, Field(max_length=MAX_ENV_VALUE_LENGTH)]


class UrlCode(ApiModel):
    """A zip archive fetched over HTTP(S)."""

    url: str = Field(
        max_length=2048,
        pattern=URL_PATTERN,
        description="http:// or https:// URL of a zip archive holding the function's code.",
    )
    sha256: str | None = Field(
        default=None,
        pattern=SHA256_PATTERN,
        description="Expected SHA-256 of the archive (64 hex digits); a mismatch fails the pod.",
    )


class S3Code(ApiModel):
    """A zip archive in an S3-compatible bucket."""

    endpoint: str | None = Field(
        default=None,
        max_length=2048,
        pattern=URL_PATTERN,
        description="URL of an S3-compatible endpoint (e.g. MinIO); AWS S3 when unset.",
    )
    bucket: str = Field(min_length=1, max_length=255, description="Bucket that holds the archive.")
    key: str = Field(min_length=1, max_length=1024, description="Object key of the zip archive.")
    region: str | None = Field(
        default=None,
        max_length=64,
        pattern=r"^[a-z0-9][a-z0-9-]*$",
        description="Region the requests are signed for; the function's AWS_REGION when unset.",
    )
    sha256: str | None = Field(
        default=None,
        pattern=SHA256_PATTERN,
        description="Expected SHA-256 of the archive (64 hex digits); a mismatch fails the pod.",
    )
    credentials_secret: LocalObjectReference | None = Field(
        default=None,
        description=(
            "Secret with AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (and, for temporary "
            "credentials, AWS_SESSION_TOKEN) for the bucket; anonymous access when unset."
        ),
    )


class ImageCode(ApiModel):
    """A container image that holds the function's code (or, for runtime provided, everything)."""

    image: str = Field(
        min_length=1, max_length=1024, description="Image reference, e.g. registry/app:1.2."
    )
    pull_policy: PullPolicy | None = Field(
        default=None,
        description="Image pull policy; the Kubernetes default for the tag when unset.",
    )


class Code(ApiModel):
    """Where the function's code comes from: exactly one source."""

    model_config = ConfigDict(json_schema_extra=cel_rules(CODE_EXACTLY_ONE))

    inline: dict[str, InlineFileContent] | None = Field(
        default=None,
        max_length=MAX_INLINE_FILES,
        description=(
            "Source files by file name, stored in a ConfigMap and mounted as the code "
            "directory. For small functions; a Function object is limited to about 1 MiB."
        ),
        json_schema_extra=cel_rules(INLINE_FILE_NAMES, INLINE_TOTAL_SIZE),
    )
    config_map: LocalObjectReference | None = Field(
        default=None,
        description="ConfigMap whose keys are file names and values file contents.",
    )
    url: UrlCode | None = Field(default=None, description="Zip archive fetched over HTTP(S).")
    s3: S3Code | None = Field(default=None, description="Zip archive in an S3-compatible bucket.")
    image: ImageCode | None = Field(default=None, description="Container image with the code.")

    @field_validator("inline")
    @classmethod
    def _inline_files(cls, files: dict[str, str] | None) -> dict[str, str] | None:
        if files is None:
            return None
        if not all(_is_data_key(name) for name in files):
            raise ValueError(INLINE_FILE_NAMES.message)
        if sum(len(name) + len(content) for name, content in files.items()) > (
            MAX_INLINE_TOTAL_LENGTH
        ):
            raise ValueError(INLINE_TOTAL_SIZE.message)
        return files

    @model_validator(mode="after")
    def _exactly_one(self) -> Code:
        if count_set(self.inline, self.config_map, self.url, self.s3, self.image) != 1:
            raise ValueError(CODE_EXACTLY_ONE.message)
        return self


class EnvFromSource(ApiModel):
    """Environment variables taken from every key of a Secret or ConfigMap."""

    model_config = ConfigDict(json_schema_extra=cel_rules(ENV_FROM_EXACTLY_ONE))

    secret_ref: LocalObjectReference | None = Field(
        default=None, description="Secret whose keys become environment variables."
    )
    config_map_ref: LocalObjectReference | None = Field(
        default=None, description="ConfigMap whose keys become environment variables."
    )

    @model_validator(mode="after")
    def _exactly_one(self) -> EnvFromSource:
        if count_set(self.secret_ref, self.config_map_ref) != 1:
            raise ValueError(ENV_FROM_EXACTLY_ONE.message)
        return self


class Concurrency(ApiModel):
    """How many invocations run at once, per instance and for the whole function."""

    per_instance: int = Field(
        default=1,
        ge=1,
        le=1000,
        strict=True,
        description=(
            "Invocations one instance handles at once; 1 is Lambda's behaviour "
            "(one event per execution environment)."
        ),
    )
    reserved: int | None = Field(
        default=None,
        ge=0,
        strict=True,
        description=(
            "Cap on concurrent invocations of the whole function; excess requests get 429. "
            "0 disables the function, as Lambda's reserved concurrency of 0 does. "
            "Unlimited when unset."
        ),
    )


class Scaling(ApiModel):
    """Autoscaling bounds and target."""

    model_config = ConfigDict(json_schema_extra=cel_rules(SCALE_BOUNDS))

    min_scale: int = Field(
        default=0,
        ge=0,
        le=1000,
        strict=True,
        description="Instances kept even when idle; 0 lets the function scale to zero.",
    )
    max_scale: int = Field(
        default=10, ge=1, le=1000, strict=True, description="Most instances ever run."
    )
    target_concurrency: float | None = Field(
        default=None,
        gt=0,
        strict=True,
        description=(
            "In-flight invocations per instance the autoscaler aims for; "
            "concurrency.perInstance when unset."
        ),
    )
    scale_to_zero_after_seconds: int = Field(
        default=60,
        ge=0,
        le=86400,
        strict=True,
        description="Idle time after which the last instance is removed (when minScale is 0).",
    )

    @model_validator(mode="after")
    def _bounds(self) -> Scaling:
        if self.min_scale > self.max_scale:
            raise ValueError(SCALE_BOUNDS.message)
        return self


class TokenSecretRef(ApiModel):
    """The Secret key holding the bearer token callers must present."""

    name: ObjectName = Field(
        description="Name of the Secret, in the same namespace as the Function."
    )
    key: DataKey = Field(default="token", description="Key in the Secret whose value is the token.")


class HttpAuth(ApiModel):
    """Who may invoke the function over HTTP."""

    model_config = ConfigDict(json_schema_extra=cel_rules(BEARER_NEEDS_SECRET))

    type: AuthType = Field(
        default=AuthType.NONE,
        description="none: anyone who can reach the URL; bearer: Authorization: Bearer <token>.",
    )
    secret_ref: TokenSecretRef | None = Field(
        default=None, description="Secret key holding the token; required for bearer."
    )

    @model_validator(mode="after")
    def _bearer_secret(self) -> HttpAuth:
        if self.type is AuthType.BEARER and self.secret_ref is None:
            raise ValueError(BEARER_NEEDS_SECRET.message)
        return self


class Http(ApiModel):
    """The function's HTTP endpoint (served by the activator)."""

    exposure: Exposure = Field(
        default=Exposure.CLUSTER_LOCAL,
        description="cluster-local: reachable inside the cluster only; public: also via ingress.",
    )
    auth: HttpAuth = Field(default_factory=HttpAuth, description="Invoke authentication.")
    event_format: EventFormat = Field(
        default=EventFormat.V2,
        description="API Gateway payload format version of the event an HTTP request becomes.",
    )


class Destination(ApiModel):
    """Where an asynchronous invocation goes after its last failed attempt."""

    type: DestinationType = Field(description="redisStream or function.")
    name: str = Field(
        min_length=1,
        max_length=253,
        description="Stream name (redisStream) or Function name in the same namespace (function).",
    )


class Async(ApiModel):
    """Asynchronous invocation (HTTP 202, Event invocation type): retries and failure target."""

    max_retries: int = Field(
        default=2,
        ge=0,
        le=2,
        strict=True,
        description="Retries after a failed asynchronous invocation, as in Lambda (0-2).",
    )
    max_event_age_seconds: int = Field(
        default=21600,
        ge=60,
        le=21600,
        strict=True,
        description="Age after which a queued event is dropped (or sent to onFailure).",
    )
    on_failure: Destination | None = Field(
        default=None,
        description="Destination for events that failed every attempt or grew too old.",
    )


class FunctionSpec(ApiModel):
    """The desired state of a Function."""

    model_config = ConfigDict(json_schema_extra=cel_rules(HANDLER_REQUIRED))

    runtime: Runtime = Field(
        description="Language runtime; provided means the image brings its own Runtime API client."
    )
    handler: str | None = Field(
        default=None,
        max_length=128,
        pattern=HANDLER_PATTERN,
        description=(
            "Entry point as module.function (e.g. app.handler, src/index.handler); "
            "required unless runtime is provided."
        ),
    )
    code: Code = Field(description="Where the code comes from: exactly one source.")
    environment: dict[str, EnvValue] = Field(
        default_factory=dict,
        max_length=MAX_ENVIRONMENT,
        description=(
            "Environment variables. Names starting with AWS_ or LAMBDA_ are reserved for the "
            "runtime. Reference Secrets with envFrom instead of copying values here."
        ),
        json_schema_extra=cel_rules(ENV_NAMES, ENV_RESERVED),
    )
    env_from: tuple[EnvFromSource, ...] = Field(
        default=(),
        max_length=MAX_ENV_FROM,
        description="Secrets and ConfigMaps whose keys become environment variables.",
    )
    timeout_seconds: int = Field(
        default=3,
        ge=1,
        le=900,
        strict=True,
        description="Longest an invocation may run before it is stopped, as in Lambda.",
    )
    memory_mib: int = Field(
        default=128,
        ge=128,
        le=10240,
        strict=True,
        alias="memoryMiB",
        description="Memory of one instance in MiB: the container limit and context value.",
    )
    concurrency: Concurrency = Field(
        default_factory=Concurrency, description="Per-instance and function-wide concurrency."
    )
    scaling: Scaling = Field(default_factory=Scaling, description="Autoscaling bounds and target.")
    http: Http = Field(default_factory=Http, description="HTTP endpoint exposure and auth.")
    async_: Async = Field(
        default_factory=Async,
        alias="async",
        description="Asynchronous invocation retries and failure destination.",
    )

    @field_validator("environment")
    @classmethod
    def _environment_names(cls, environment: dict[str, str]) -> dict[str, str]:
        if not all(_is_env_name(name) for name in environment):
            raise ValueError(ENV_NAMES.message)
        if any(
            name.startswith(RESERVED_ENV_PREFIXES) or name in RESERVED_ENV_NAMES
            for name in environment
        ):
            raise ValueError(ENV_RESERVED.message)
        return environment

    @model_validator(mode="after")
    def _handler(self) -> FunctionSpec:
        if self.runtime is not Runtime.PROVIDED and self.handler is None:
            raise ValueError(HANDLER_REQUIRED.message)
        return self


class FunctionStatus(StatusModel):
    """The observed state of a Function, written by the operator only."""

    conditions: tuple[Condition, ...] = conditions_field(
        "Ready (always present) and Active (has running instances)."
    )
    observed_generation: int | None = Field(
        default=None, ge=0, description="metadata.generation the status was computed from."
    )
    replicas: int | None = Field(default=None, ge=0, description="Instances that exist.")
    ready_replicas: int | None = Field(
        default=None, ge=0, description="Instances ready to take invocations."
    )
    url: str | None = Field(default=None, description="URL that invokes the function over HTTP.")
    last_cold_start_seconds: float | None = Field(
        default=None, ge=0, description="Duration of the latest cold start, in seconds."
    )


class Function(ApiModel):
    """A Lambda-style function: a handler, its code, and how it is invoked and scaled."""

    api_version: ApiVersion = Field(default=API_VERSION, description="lambdalet.dev/v1alpha1.")
    kind: Literal["Function"] = Field(default="Function", description="Function.")
    metadata: ObjectMeta = Field(description="Standard object metadata.")
    spec: FunctionSpec = Field(description="The desired state of the Function.")
    status: FunctionStatus | None = Field(
        default=None, description="The observed state of the Function."
    )

    @model_validator(mode="after")
    def _name(self) -> Function:
        name = self.metadata.name
        if len(name) > FUNCTION_NAME_MAX_LENGTH or not _matches(FUNCTION_NAME_PATTERN, name):
            raise ValueError(FUNCTION_NAME.message)
        return self


def _is_data_key(name: str) -> bool:
    return len(name) <= DATA_KEY_MAX_LENGTH and _matches(DATA_KEY_PATTERN, name)


def _is_env_name(name: str) -> bool:
    return _matches(ENV_NAME_PATTERN, name)


def _matches(pattern: str, value: str) -> bool:
    return re.fullmatch(pattern, value) is not None
