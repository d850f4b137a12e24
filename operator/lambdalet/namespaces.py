"""Which namespaces a component serves: ``LAMBDALET_NAMESPACES``, read the way kopf reads it.

Every component matches namespaces against the patterns here, so all serve exactly the same
namespaces: with plain names they watch each namespace on its own (``specific``), with patterns
they watch cluster-wide and skip what ``served`` says no to.

A setting is space-separated patterns; a namespace is served when any pattern matches it (no
patterns: every namespace). A pattern is comma-separated globs (``*``, ``?``), read left to
right: the first inclusive glob decides the initial match, ``!glob`` excludes, and a later
inclusive glob re-includes only what an exclusion took out. A pattern that starts with an
exclusion implies a leading ``*``. E.g. ``team-*,!team-test`` serves ``team-a`` but not
``team-test``; ``!kube-*`` serves everything but ``kube-system`` and its like.
"""

from __future__ import annotations

from collections.abc import Sequence
from fnmatch import fnmatchcase


def matches(namespace: str, pattern: str) -> bool:
    globs = [glob.strip() for glob in pattern.split(",") if glob.strip()]
    if not globs:
        return False
    if globs[0].startswith("!"):
        globs.insert(0, "*")
    matched = fnmatchcase(namespace, globs[0])
    included = matched
    for glob in globs[1:]:
        if glob.startswith("!"):
            if included and fnmatchcase(namespace, glob[1:]):
                included = False
        elif matched and not included and fnmatchcase(namespace, glob):
            included = True
    return included


def served(namespace: str, patterns: Sequence[str]) -> bool:
    """Whether a component configured with ``patterns`` serves ``namespace``."""
    return not patterns or any(matches(namespace, pattern) for pattern in patterns)


def specific(patterns: Sequence[str]) -> tuple[str, ...] | None:
    """The namespace names when every pattern is a plain name (no globs, exclusions or lists),
    as kopf decides it: then a component lists and watches each namespace on its own and needs
    no cluster-wide permission (the chart's ``rbac.namespaced``). None: watch cluster-wide."""
    if not patterns or any(set(pattern) & set("*?!,") for pattern in patterns):
        return None
    return tuple(dict.fromkeys(patterns))
