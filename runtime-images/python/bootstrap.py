"""Entry point of Lambdalet's Python runtime: the agent starts ``python3 bootstrap.py`` in a
function pod; it imports the handler named by ``_HANDLER`` and serves invocations from the
Lambda Runtime API at ``AWS_LAMBDA_RUNTIME_API`` until the agent stops it."""

import sys

from lambdalet_runtime.loop import main

if __name__ == "__main__":
    sys.exit(main())
