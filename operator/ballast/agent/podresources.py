"""The kubelet's pod-resources API: which container holds which device, as the node sees it.

The kubelet serves ``v1.PodResourcesLister`` (gRPC) on a unix socket,
``/var/lib/kubelet/pod-resources/kubelet.sock`` by default; ``List`` answers
every pod on the node with, per container, the device ids each device plugin
allocated to it. For ``nvidia.com/gpu`` those are GPU UUIDs (``GPU-...``) or
indices, depending on the device plugin's configuration.

The messages are described here as a ``FileDescriptorProto`` built in Python
(the field numbers of the kubelet's ``pkg/kubelet/apis/podresources/v1``
``api.proto``) and turned into classes by the protobuf runtime, so there is
no generated code and no protoc step. Only the fields the agent reads are
declared; the others (CPU ids, memory, topology, DRA) are skipped by the
decoder as unknown fields.

:meth:`PodResourcesClient.list` never raises: a missing socket, a kubelet
that does not answer within the timeout, or an error status all mean "not
available" (``None``), and the agent falls back to Ballast's own assignment.
"""

from __future__ import annotations

import logging
import os
import stat
import threading
from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

from ballast.agent.attribution import DEFAULT_POD_RESOURCES_SOCKET, Allocation
from ballast.logs import kv

log = logging.getLogger(__name__)

DEFAULT_SOCKET = DEFAULT_POD_RESOURCES_SOCKET
SERVICE = "v1.PodResourcesLister"
LIST_METHOD = f"/{SERVICE}/List"
MAX_MESSAGE_BYTES = 16 << 20  # a node with hundreds of pods stays far below this

_F = descriptor_pb2.FieldDescriptorProto

# message -> [(field name, number, type, label, message type name or "")]
_MESSAGES: dict[str, list[tuple[str, int, int, int, str]]] = {
    "ListPodResourcesRequest": [],
    "ListPodResourcesResponse": [
        ("pod_resources", 1, _F.TYPE_MESSAGE, _F.LABEL_REPEATED, "PodResources"),
    ],
    "PodResources": [
        ("name", 1, _F.TYPE_STRING, _F.LABEL_OPTIONAL, ""),
        ("namespace", 2, _F.TYPE_STRING, _F.LABEL_OPTIONAL, ""),
        ("containers", 3, _F.TYPE_MESSAGE, _F.LABEL_REPEATED, "ContainerResources"),
    ],
    "ContainerResources": [
        ("name", 1, _F.TYPE_STRING, _F.LABEL_OPTIONAL, ""),
        ("devices", 2, _F.TYPE_MESSAGE, _F.LABEL_REPEATED, "ContainerDevices"),
    ],
    "ContainerDevices": [
        ("resource_name", 1, _F.TYPE_STRING, _F.LABEL_OPTIONAL, ""),
        ("device_ids", 2, _F.TYPE_STRING, _F.LABEL_REPEATED, ""),
    ],
}


def _build_messages() -> dict[str, Any]:
    """Message classes for the subset of the kubelet's ``v1`` API the agent reads."""
    fdp = descriptor_pb2.FileDescriptorProto(
        name="ballast/kubelet_podresources_v1.proto", package="v1", syntax="proto3"
    )
    for message, fields in _MESSAGES.items():
        m = fdp.message_type.add(name=message)
        for name, number, type_, label, type_name in fields:
            f = m.field.add(name=name, number=number, type=type_, label=label)
            if type_name:
                f.type_name = f".v1.{type_name}"
    pool = descriptor_pool.DescriptorPool()  # private: never clashes with another "v1" package
    pool.Add(fdp)
    return {
        name: message_factory.GetMessageClass(pool.FindMessageTypeByName(f"v1.{name}"))
        for name in _MESSAGES
    }


MESSAGES = _build_messages()
ListPodResourcesRequest: Any = MESSAGES["ListPodResourcesRequest"]
ListPodResourcesResponse: Any = MESSAGES["ListPodResourcesResponse"]


def decode_list(data: bytes) -> list[Allocation]:
    """A serialised ``ListPodResourcesResponse`` as allocations (raises DecodeError)."""
    response = ListPodResourcesResponse.FromString(data)
    return allocations(response)


def allocations(response: Any) -> list[Allocation]:
    """Flatten a ``ListPodResourcesResponse`` message; containers without devices are left out."""
    out: list[Allocation] = []
    for pod in response.pod_resources:
        for container in pod.containers:
            for dev in container.devices:
                if dev.device_ids:
                    out.append(
                        Allocation(
                            pod.namespace,
                            pod.name,
                            container.name,
                            dev.resource_name,
                            tuple(dev.device_ids),
                        )
                    )
    return out


class PodResourcesClient:
    """Calls ``List`` on the kubelet's pod-resources socket; thread-safe.

    The channel is opened on first use and kept: gRPC reconnects by itself
    when the kubelet restarts. ``list()`` returns None whenever the answer is
    not available, and logs only when availability changes.
    """

    def __init__(self, socket_path: str = DEFAULT_SOCKET, timeout_s: float = 2.0) -> None:
        self.socket_path = socket_path
        self.timeout_s = timeout_s
        self.calls = 0
        self.failures = 0
        self._lock = threading.Lock()
        self._channel: Any = None  # grpc.Channel
        self._call: Any = None
        self._available: bool | None = None  # last state logged

    def _stub(self) -> Any:
        if self._call is None:
            grpc = _grpc()
            self._channel = grpc.insecure_channel(
                f"unix://{os.path.abspath(self.socket_path)}",
                options=[("grpc.max_receive_message_length", MAX_MESSAGE_BYTES)],
            )
            self._call = self._channel.unary_unary(
                LIST_METHOD,
                request_serializer=ListPodResourcesRequest.SerializeToString,
                response_deserializer=ListPodResourcesResponse.FromString,
            )
        return self._call

    def list(self) -> list[Allocation] | None:
        """Every device allocation on the node, or None when the kubelet cannot tell."""
        with self._lock:
            if not _is_socket(self.socket_path):
                self._note(False, "no socket")
                return None
            self.calls += 1
            try:
                response = self._stub()(ListPodResourcesRequest(), timeout=self.timeout_s)
                result = allocations(response)
            except _grpc().RpcError as exc:
                self.failures += 1
                code = exc.code() if hasattr(exc, "code") else None
                self._note(False, str(getattr(code, "name", code) or exc))
                return None
            except Exception as exc:  # a malformed answer: same as no answer
                self.failures += 1
                self._note(False, f"{type(exc).__name__}: {exc}")
                return None
            self._note(True, "")
            return result

    def available(self) -> bool:
        """Whether the last call answered."""
        return bool(self._available)

    def close(self) -> None:
        """Close the channel (a later ``list()`` opens a new one)."""
        with self._lock:
            if self._channel is not None:
                self._channel.close()
            self._channel = None
            self._call = None

    def _note(self, available: bool, why: str) -> None:
        if available == self._available:
            return
        self._available = available
        if available:
            log.info("kubelet pod-resources available", extra=kv(socket=self.socket_path))
        else:
            log.info(
                "kubelet pod-resources not available; using Ballast's assignment",
                extra=kv(socket=self.socket_path, reason=why),
            )


def _grpc() -> Any:
    """grpcio, imported on first use: about 8 MB that a node without the socket never pays."""
    os.environ.setdefault("GRPC_VERBOSITY", "ERROR")  # gRPC core logs to stderr, not to logging
    import grpc

    return grpc


def _is_socket(path: str) -> bool:
    try:
        return stat.S_ISSOCK(os.stat(path).st_mode)
    except OSError:
        return False
