"""The operator as a real process (``lambdalet operator``), run by the control-plane and e2e tiers
and the benchmarks against a bed's API server."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from tests.kit.ports import free_port
from tests.kit.servers.cli import CliProcess


class OperatorProcess(CliProcess):
    """``lambdalet operator`` in a subprocess; its output goes to ``log_path``."""

    command = "operator"

    def __init__(
        self, kubeconfig: Path, log_path: Path, env: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(kubeconfig, log_path, env)
        # The autoscaler's endpoint on a loopback port of its own (kept across restarts), unless
        # ``env`` names one: operators of concurrent test sessions never clash on the default.
        self.env.setdefault("LAMBDALET_AUTOSCALER_HOST", "127.0.0.1")
        self.env.setdefault("LAMBDALET_AUTOSCALER_PORT_NUMBER", str(free_port()))

    @property
    def autoscaler_url(self) -> str:
        """Base URL of the autoscaler's stats/poke endpoint (``/v1/poke``, ``/v1/stats``)."""
        host = self.env["LAMBDALET_AUTOSCALER_HOST"] or "127.0.0.1"
        return f"http://{host}:{self.env['LAMBDALET_AUTOSCALER_PORT_NUMBER']}"

    def settled_after(
        self,
        marker: int,
        keys: list[tuple[str, str]],
        *,
        handler: str = "on_function",
        drained: str = "settled:",
    ) -> bool:
        """Whether, in the log after offset ``marker``, kopf handed every one of ``keys``
        (namespace, name) over to ``handler`` and the work queue then drained (it logs
        ``drained``): the Functions' queue by default, the EventSources' with
        ``handler="on_eventsource", drained="EventSources idle:"``."""
        text = self.log()[marker:]
        last = -1
        for namespace, name in keys:
            seen = text.find(f"[{namespace}/{name}] Handler '{handler}' succeeded")
            if seen < 0:
                return False
            last = max(last, seen)
        return drained in text[last:]
