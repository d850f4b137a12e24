"""Lambdalet's Python runtime: a Lambda Runtime API client using only the standard library.

It runs next to the user's code in one process, so it brings no dependencies that could clash
with theirs. ``loop`` is the main loop; ``api`` the Runtime API client; ``handler`` imports the
user's handler; ``context`` is the ``context`` a handler receives; ``errors`` shapes error
documents the way Lambda's Python runtime does; ``logs`` sets up Lambda's log format.
"""
