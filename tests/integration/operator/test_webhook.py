"""The admission webhook, called by the real kube-apiserver over TLS on loopback.

The webhook service runs in the test process (as it does in each operator
replica), with its configurations scoped to namespaces carrying this
module's label so that the rest of the session's tests never meet it, and
deleted at the end. The session operator produces the PriorityClasses.
"""

from __future__ import annotations

import base64
import datetime as dt
import socket
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from ballast.clock import SystemClock
from ballast.kube.raw import (
    BATCHWINDOWS,
    NAMESPACES,
    PODS,
    PRIORITY_CLASSES,
    WORKLOADCLASSES,
    Kube,
    KubeError,
    Resource,
)
from ballast.localcluster import NodeSpec
from ballast.localcluster.ballast_procs import BallastProcess
from ballast.webhook import config
from ballast.webhook.options import WebhookOptions
from ballast.webhook.service import SECRETS, WebhookService, delete_configs

JOBS = Resource("batch", "v1", "jobs", True)
RUN = uuid.uuid4().hex[:6]
SCOPE_LABEL = "ballast.dev/webhook-test"
CHAT, TRAIN, BATCH, WINDOW = (
    f"wh-chat-{RUN}",
    f"wh-train-{RUN}",
    f"wh-batch-{RUN}",
    f"wh-closed-{RUN}",
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(what: str, probe: Callable[[], Any], timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.2)


def _namespace(kube: Kube, name: str, labels: dict[str, str]) -> None:
    kube.create(NAMESPACES.path(), {"metadata": {"name": name, "labels": labels}})
    # Pods need the default ServiceAccount (ServiceAccount admission).
    wait_for(
        f"serviceaccount in {name}",
        lambda: kube.get(f"/api/v1/namespaces/{name}/serviceaccounts/default"),
        60,
    )


def _closed_window_spec(now: dt.datetime) -> dict[str, Any]:
    # Opens daily 12 hours from now for one hour: closed for the whole test.
    hour = (now.hour + 12) % 24
    return {"schedule": f"0 {hour} * * *", "duration": "1h", "timeZone": "UTC"}


@pytest.fixture(scope="module")
def webhook(
    kube: Kube, operator: BallastProcess, gpu_nodes: list[NodeSpec]
) -> Iterator[dict[str, Any]]:
    ops, allowed, forbidden = f"wh-ops-{RUN}", f"wh-search-{RUN}", f"wh-ads-{RUN}"
    _namespace(kube, ops, {})
    _namespace(kube, allowed, {SCOPE_LABEL: RUN, "team": "search"})
    _namespace(kube, forbidden, {SCOPE_LABEL: RUN, "team": "ads"})
    classes = {
        CHAT: {
            "tier": "Interactive",
            "priority": 10,
            "namespaceSelector": {"matchLabels": {"team": "search"}},
            "nodePool": {"name": f"serving-{RUN}"},
            "batching": {"maxBatchSize": 16, "maxQueueDelayMs": 5},
        },
        TRAIN: {"tier": "Offline", "nodePool": {"gpuProducts": ["NVIDIA-L4"]}},
        BATCH: {"tier": "Offline", "window": WINDOW},
    }
    kube.create(
        BATCHWINDOWS.path(),
        {
            "apiVersion": "ballast.dev/v1alpha1",
            "kind": "BatchWindow",
            "metadata": {"name": WINDOW},
            "spec": _closed_window_spec(dt.datetime.now(dt.UTC)),
        },
    )
    for name, spec in classes.items():
        kube.create(
            WORKLOADCLASSES.path(),
            {
                "apiVersion": "ballast.dev/v1alpha1",
                "kind": "WorkloadClass",
                "metadata": {"name": name},
                "spec": spec,
            },
        )
    port = _free_port()
    opts = WebhookOptions(
        port=port,
        host="127.0.0.1",
        namespace=ops,
        config_name=f"ballast-test-{RUN}",
        url=f"https://127.0.0.1:{port}",
        service_name=None,
        namespace_labels={SCOPE_LABEL: RUN},
    )
    service = WebhookService(kube, opts, SystemClock())
    service.start()
    env = {"service": service, "opts": opts, "ops": ops, "allowed": allowed, "forbidden": forbidden}
    try:
        assert service.wait_synced(30)
        # The operator makes the PriorityClass; the webhook's watch sees it.
        wait_for(
            "the class's PriorityClass",
            lambda: service.view.priority_class(f"ballast-{CHAT}"),
            60,
        )
        wait_for("the classes in the webhook's view", lambda: service.view.cls(BATCH))
        # The API server picks the configuration up asynchronously: probe with dry runs.
        wait_for(
            "the API server to call the webhook",
            lambda: (
                create_pod(kube, allowed, "probe", CHAT, dry_run=True)["spec"]["schedulerName"]
                == "ballast"
            ),
        )
        yield env
    finally:
        service.stop()
        delete_configs(kube, opts.config_name)
        for name in classes:
            kube.delete(WORKLOADCLASSES.path(name))
        kube.delete(BATCHWINDOWS.path(WINDOW))
        for ns in (ops, allowed, forbidden):
            kube.delete(NAMESPACES.path(ns))


def create_pod(
    kube: Kube,
    namespace: str,
    name: str,
    cls: str,
    *,
    gpus: int = 0,
    annotations: dict[str, str] | None = None,
    env: list[dict[str, str]] | None = None,
    dry_run: bool = False,
) -> dict[str, Any]:
    container: dict[str, Any] = {"name": "main", "image": "registry.local/serve:1"}
    if gpus:
        container["resources"] = {"limits": {"nvidia.com/gpu": str(gpus)}}
    if env:
        container["env"] = env
    body = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "labels": {"ballast.dev/class": cls},
            "annotations": annotations or {},
        },
        "spec": {"containers": [container]},
    }
    path = PODS.path(namespace=namespace)
    if dry_run:
        result: dict[str, Any] = kube.request("POST", path, query={"dryRun": "All"}, body=body)
        return result
    return kube.create(path, body)


def env_of(pod: dict[str, Any]) -> dict[str, str]:
    return {e["name"]: e.get("value", "") for e in pod["spec"]["containers"][0].get("env") or ()}


def test_configuration_and_certificate_are_in_place(kube: Kube, webhook: dict[str, Any]) -> None:
    opts: WebhookOptions = webhook["opts"]
    secret = kube.get(SECRETS.path(opts.secret_name, webhook["ops"]))
    assert secret is not None and secret["type"] == "kubernetes.io/tls"
    ca = base64.b64decode(secret["data"]["ca.crt"])
    for kind in ("mutating", "validating"):
        cfg = kube.get(config.path(kind, opts.config_name))
        assert cfg is not None
        assert cfg["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "ballast"
        for hook in cfg["webhooks"]:
            assert base64.b64decode(hook["clientConfig"]["caBundle"]) == ca
            assert hook["failurePolicy"] == "Ignore"


def test_a_pod_with_only_the_class_label_is_filled_in(kube: Kube, webhook: dict[str, Any]) -> None:
    pod = create_pod(kube, webhook["allowed"], "chat-0", CHAT)
    spec = pod["spec"]
    pc = kube.get(PRIORITY_CLASSES.path(f"ballast-{CHAT}"))
    assert pc is not None
    assert spec["schedulerName"] == "ballast"
    assert spec["priorityClassName"] == f"ballast-{CHAT}"
    assert spec["priority"] == pc["value"] == 300_010
    assert {
        "key": "ballast.dev/pool",
        "operator": "Equal",
        "value": f"serving-{RUN}",
        "effect": "NoSchedule",
    } in spec["tolerations"]
    assert env_of(pod) == {"BALLAST_MAX_BATCH_SIZE": "16", "BALLAST_MAX_QUEUE_DELAY_MS": "5"}


def test_env_the_user_set_wins(kube: Kube, webhook: dict[str, Any]) -> None:
    pod = create_pod(
        kube,
        webhook["allowed"],
        "chat-1",
        CHAT,
        env=[{"name": "BALLAST_MAX_BATCH_SIZE", "value": "4"}],
    )
    assert env_of(pod) == {"BALLAST_MAX_BATCH_SIZE": "4", "BALLAST_MAX_QUEUE_DELAY_MS": "5"}


def test_a_namespace_the_class_does_not_select_is_refused(
    kube: Kube, webhook: dict[str, Any]
) -> None:
    with pytest.raises(KubeError) as err:
        create_pod(kube, webhook["forbidden"], "chat-x", CHAT)
    assert err.value.status == 403
    assert "pods.validate.ballast.dev" in err.value.message
    assert f"may not use WorkloadClass {CHAT}" in err.value.message
    assert "metadata.labels[ballast.dev/class]" in err.value.message


def test_a_malformed_annotation_is_refused_by_name(kube: Kube, webhook: dict[str, Any]) -> None:
    with pytest.raises(KubeError) as err:
        create_pod(
            kube, webhook["allowed"], "milli", TRAIN, annotations={"ballast.dev/gpu-milli": "lots"}
        )
    assert "metadata.annotations[ballast.dev/gpu-milli]" in err.value.message


def test_more_gpus_than_any_pool_node_is_refused(kube: Kube, webhook: dict[str, Any]) -> None:
    with pytest.raises(KubeError) as err:
        create_pod(kube, webhook["allowed"], "too-big", TRAIN, gpus=5)
    assert "the largest node of WorkloadClass" in err.value.message and "has 4" in err.value.message
    create_pod(kube, webhook["allowed"], "fits", TRAIN, gpus=4)  # the L4 nodes have 4


def job_body(name: str, cls: str, *, on_job: bool) -> dict[str, Any]:
    labels = {"ballast.dev/class": cls}
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        # A Job without labels takes its template's (API defaulting): give it its own.
        "metadata": {"name": name, "labels": labels if on_job else {"app": "embed"}},
        "spec": {
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [{"name": "c", "image": "registry.local/embed:1"}],
                },
            }
        },
    }


def test_a_job_created_while_its_window_is_closed_is_suspended(
    kube: Kube, webhook: dict[str, Any]
) -> None:
    jobs = JOBS.path(namespace=webhook["allowed"])
    job = kube.create(jobs, job_body("embed", BATCH, on_job=True))
    assert job["spec"]["suspend"] is True
    assert job["metadata"]["annotations"]["ballast.dev/suspended-by-window"] == WINDOW
    # A label only on the template is not the Job's class (the operator would never resume it).
    other = kube.create(jobs, job_body("embed-template-only", BATCH, on_job=False))
    assert other["spec"]["suspend"] is False


def test_with_the_webhook_down_pods_are_created_unchanged(
    kube: Kube, webhook: dict[str, Any]
) -> None:
    """failurePolicy Ignore: nothing is refused or filled in; the scheduler is the last line."""
    service: WebhookService = webhook["service"]
    assert service.server is not None
    service.server.stop()
    try:
        start = time.monotonic()
        pod = create_pod(kube, webhook["allowed"], "down-0", CHAT)
        assert time.monotonic() - start < 5  # connection refused: no timeout to wait out
        assert pod["spec"]["schedulerName"] == "default-scheduler"
        assert "tolerations" not in pod["spec"] or not any(
            t.get("key") == "ballast.dev/pool" for t in pod["spec"]["tolerations"]
        )
        # Validation is not enforced either: the scheduler refuses it (ClassNotAllowed).
        create_pod(kube, webhook["forbidden"], "down-1", CHAT)
    finally:
        service.server = None
