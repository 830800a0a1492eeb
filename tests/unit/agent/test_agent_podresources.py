"""The pod-resources client against a real gRPC server on a unix socket.

The server is grpcio's own, serving ``/v1.PodResourcesLister/List`` with the
message classes the client builds from its descriptor, so the bytes on the
socket are real protobuf over HTTP/2, as the kubelet sends them. Fields the
client does not declare (CPU ids, topology) are added by hand to the wire
bytes to check they are skipped.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from concurrent import futures
from pathlib import Path
from typing import Any

import grpc
import pytest

from ballast.agent import podresources as pr
from ballast.agent.attribution import Allocation


class Kubelet:
    """A gRPC server answering List with ``self.reply`` (a callable of the context)."""

    def __init__(self, socket: Path) -> None:
        self.socket = socket
        self.calls = 0
        self.reply: Callable[[Any], Any] = lambda _ctx: pr.ListPodResourcesResponse()
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
        handler = grpc.unary_unary_rpc_method_handler(
            self._list,
            request_deserializer=pr.ListPodResourcesRequest.FromString,
            response_serializer=lambda m: m if isinstance(m, bytes) else m.SerializeToString(),
        )
        self.server.add_generic_rpc_handlers(
            (grpc.method_handlers_generic_handler(pr.SERVICE, {"List": handler}),)
        )
        assert self.server.add_insecure_port(f"unix://{socket}")

    def _list(self, request: Any, context: Any) -> Any:
        self.calls += 1
        return self.reply(context)

    def start(self) -> None:
        self.server.start()

    def stop(self) -> None:
        self.server.stop(grace=None)


@pytest.fixture
def kubelet(tmp_path: Path) -> Iterator[Kubelet]:
    k = Kubelet(tmp_path / "kubelet.sock")
    k.start()
    yield k
    k.stop()


def response(*pods: tuple[str, str, list[tuple[str, list[tuple[str, list[str]]]]]]) -> Any:
    msg = pr.ListPodResourcesResponse()
    for ns, name, containers in pods:
        p = msg.pod_resources.add(name=name, namespace=ns)
        for cname, devices in containers:
            c = p.containers.add(name=cname)
            for resource, ids in devices:
                c.devices.add(resource_name=resource, device_ids=ids)
    return msg


def test_lists_the_kubelets_allocations(kubelet: Kubelet) -> None:
    kubelet.reply = lambda _ctx: response(
        (
            "team-a",
            "train-0",
            [
                ("trainer", [("nvidia.com/gpu", ["GPU-aaaa", "GPU-bbbb"])]),
                ("logger", []),
            ],
        ),
        ("kube-system", "dns", [("coredns", [])]),
        ("team-b", "chat", [("app", [("nvidia.com/gpu", ["2"]), ("example.com/nic", ["eth1"])])]),
    )
    client = pr.PodResourcesClient(str(kubelet.socket))
    got = client.list()
    assert got == [
        Allocation("team-a", "train-0", "trainer", "nvidia.com/gpu", ("GPU-aaaa", "GPU-bbbb")),
        Allocation("team-b", "chat", "app", "nvidia.com/gpu", ("2",)),
        Allocation("team-b", "chat", "app", "example.com/nic", ("eth1",)),
    ]
    assert client.available() and client.calls == 1 and kubelet.calls == 1
    assert client.list() == got  # the channel is reused
    client.close()


def _varint(n: int) -> bytes:
    out = b""
    while True:
        b, n = n & 0x7F, n >> 7
        out += bytes([b | (0x80 if n else 0)])
        if not n:
            return out


def _field(number: int, payload: bytes) -> bytes:
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def test_fields_of_newer_kubelets_are_skipped(kubelet: Kubelet) -> None:
    # ContainerDevices with topology (3); ContainerResources with cpu_ids (3, packed)
    # and memory (4): fields the client does not declare.
    devices = (
        _field(1, b"nvidia.com/gpu") + _field(2, b"GPU-cccc") + _field(3, _field(1, b"\x08\x01"))
    )
    container = _field(1, b"main") + _field(2, devices) + _field(3, b"\x02\x03") + _field(4, b"")
    pod = _field(1, b"p") + _field(2, b"ns") + _field(3, container)
    wire = _field(1, pod)
    kubelet.reply = lambda _ctx: wire
    assert pr.decode_list(wire) == [Allocation("ns", "p", "main", "nvidia.com/gpu", ("GPU-cccc",))]
    assert pr.PodResourcesClient(str(kubelet.socket)).list() == pr.decode_list(wire)


def test_no_socket_means_not_available(tmp_path: Path) -> None:
    client = pr.PodResourcesClient(str(tmp_path / "absent.sock"))
    assert client.list() is None and not client.available()
    assert client.calls == 0  # nothing was dialled
    (tmp_path / "file.sock").write_text("not a socket")
    assert pr.PodResourcesClient(str(tmp_path / "file.sock")).list() is None


def test_an_error_status_means_not_available(kubelet: Kubelet) -> None:
    def refuse(ctx: Any) -> Any:
        ctx.abort(grpc.StatusCode.PERMISSION_DENIED, "not for you")

    kubelet.reply = refuse
    client = pr.PodResourcesClient(str(kubelet.socket))
    assert client.list() is None and client.failures == 1
    kubelet.reply = lambda _ctx: response(("ns", "p", [("c", [("nvidia.com/gpu", ["0"])])]))
    assert client.list() == [Allocation("ns", "p", "c", "nvidia.com/gpu", ("0",))]


def test_a_kubelet_that_hangs_is_cut_off_by_the_timeout(kubelet: Kubelet) -> None:
    release = threading.Event()

    def hang(_ctx: Any) -> Any:
        release.wait(5)
        return pr.ListPodResourcesResponse()

    kubelet.reply = hang
    client = pr.PodResourcesClient(str(kubelet.socket), timeout_s=0.2)
    try:
        assert client.list() is None
    finally:
        release.set()


def test_a_stopped_kubelet_means_not_available_and_recovers(tmp_path: Path) -> None:
    socket = tmp_path / "kubelet.sock"
    first = Kubelet(socket)
    first.start()
    client = pr.PodResourcesClient(str(socket), timeout_s=1.0)
    assert client.list() == []
    first.stop()
    assert client.list() is None
    second = Kubelet(socket)  # the kubelet restarts on the same path
    second.reply = lambda _ctx: response(("ns", "p", [("c", [("nvidia.com/gpu", ["1"])])]))
    second.start()
    try:
        got = None
        for _ in range(20):  # gRPC reconnects with backoff
            got = client.list()
            if got:
                break
            threading.Event().wait(0.1)
        assert got == [Allocation("ns", "p", "c", "nvidia.com/gpu", ("1",))]
    finally:
        second.stop()


def test_a_garbled_answer_means_not_available(kubelet: Kubelet) -> None:
    kubelet.reply = lambda _ctx: b"\xff\xff\xff"
    assert pr.PodResourcesClient(str(kubelet.socket)).list() is None
