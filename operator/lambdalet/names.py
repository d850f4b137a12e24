"""Names of everything the operator creates for a Function, in one place.

A Function ``hello`` in namespace ``team`` owns Deployment ``fn-hello``, Service ``fn-hello`` and,
for inline code, ConfigMap ``fn-hello-code``. The ``fn-`` prefix keeps children apart from the
namespace's own objects and makes every child name a valid DNS-1035 label (Function names are
limited to 60 characters by the CRD, so ``fn-`` + name fits a Service's 63).
"""

from __future__ import annotations

GROUP = "lambdalet.dev"
FIELD_MANAGER = "lambdalet-operator"
AUTOSCALER_FIELD_MANAGER = "lambdalet-autoscaler"

# Labels every child carries (the app.kubernetes.io recommended set plus our own selector key).
LABEL_FUNCTION = f"{GROUP}/function"
LABEL_NAME = "app.kubernetes.io/name"
LABEL_INSTANCE = "app.kubernetes.io/instance"
LABEL_COMPONENT = "app.kubernetes.io/component"
LABEL_PART_OF = "app.kubernetes.io/part-of"
LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"
MANAGED_BY = "lambdalet"

# Hash of the manifest the operator last applied to a child: comparing it with the desired
# manifest's hash tells whether an apply is needed, so a restart sends no writes.
ANNOTATION_APPLIED_HASH = f"{GROUP}/applied-hash"

FUNCTION_PORT = 8080
FUNCTION_PORT_NAME = "http"
CODE_MOUNT_PATH = "/var/task"


def deployment(function: str) -> str:
    return f"fn-{function}"


def service(function: str) -> str:
    return f"fn-{function}"


def code_config_map(function: str) -> str:
    return f"fn-{function}-code"
