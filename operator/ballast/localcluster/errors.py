"""Errors raised by the local control plane, each with a message a user can act on."""

from __future__ import annotations

from pathlib import Path


class ClusterError(Exception):
    """Base class: something about the local cluster that the user has to fix or retry."""


class GoMissingError(ClusterError):
    """``go`` is not on PATH, so the binaries can neither be built nor keyed."""


class MissingBinariesError(ClusterError):
    """The control-plane binaries are not in the cache; ``ballast cluster build`` makes them."""


class BuildError(ClusterError):
    """``hack/build.sh`` failed; the message names the log and shows its tail."""


class PortInUseError(ClusterError):
    """A port the cluster needs is taken by another process."""


class ComponentError(ClusterError):
    """A component exited or did not become ready; the message shows its log's tail."""

    def __init__(self, component: str, reason: str, log_path: Path, log_tail: str) -> None:
        self.component = component
        self.log_path = log_path
        # A free port picked at `up` can be taken by another process before the
        # component binds it (two clusters starting at once): worth a retry.
        self.port_conflict = "address already in use" in log_tail
        if self.port_conflict:
            reason += " (a port it needed was taken meanwhile)"
        super().__init__(
            f"{component} {reason}; its log is {log_path}\n"
            f"--- last lines of {log_path.name} ---\n{log_tail}"
        )
