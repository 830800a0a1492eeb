"""The operator's one startup handler: every kopf setting, with why."""

from __future__ import annotations

import datetime as dt
import logging
import os
import warnings
from typing import Any

import aiohttp
import kopf

from ballast.api.peering import PEERING_GROUP, PEERING_PLURAL, PEERING_VERSION
from ballast.api.wellknown import GROUP
from ballast.clock import SystemClock
from ballast.kube.raw import Kube, KubeError, Resource

# Env knobs (also set by the Helm chart). BALLAST_CLOCK_OFFSET_SECONDS shifts
# the operator's clock, so a demo or test can look at "tonight's" window now.
ENV_KUBECONFIG = "KUBECONFIG"
ENV_CLOCK_OFFSET = "BALLAST_CLOCK_OFFSET_SECONDS"
ENV_RESYNC = "BALLAST_RESYNC_SECONDS"
# Read at import, like the SLO interval. The resync is only a safety net
# (drift and references are event-driven), so it is rare by default: a pass
# re-reads every class and quota (handlers/resync.py, handlers/gpuquota.py).
RESYNC_SECONDS = float(os.environ.get(ENV_RESYNC, "300") or 300)
# Node pools: a node stays in a pool at least this long after it was chosen,
# so that a reservation that shrinks and grows back does not make nodes flap
# (labels, taints and the pods that follow them). Tests shorten it.
ENV_POOL_DWELL = "BALLAST_POOL_DWELL_SECONDS"
POOL_DWELL_SECONDS = float(os.environ.get(ENV_POOL_DWELL, "300") or 300)
# Backoff of a reconciliation that failed (an API error, a PriorityClass that
# did not converge): 1, 2, 4, ... seconds, capped. kopf counts the retries.
RETRY_BASE_SECONDS = 1.0
RETRY_MAX_SECONDS = 60.0


def retry_delay(retry: int) -> float:
    """Seconds before retry number ``retry`` (0 for the first) of a failed reconciliation."""
    return float(min(RETRY_MAX_SECONDS, RETRY_BASE_SECONDS * 2 ** min(max(retry, 0), 16)))


# kopf's own HTTP client has no bound on connections: a burst of events over
# thousands of classes opened one TLS connection per concurrent request
# (hundreds, each with its buffers and a handshake on both sides). The
# operator's session keeps kopf's credentials and bounds the pool; the watch
# streams (one per watched kind, about 25) hold a connection each, so the
# bound leaves about a hundred for requests, which wait for a free one.
API_CONNECTIONS = 128

PEERING_LIFETIME_SECONDS = 15
CLUSTER_PEERINGS = Resource(PEERING_GROUP, PEERING_VERSION, PEERING_PLURAL, False)


def ensure_peering_object(kube: Kube, name: str) -> None:
    """Create the ClusterKopfPeering ``name`` unless it exists (its CRD must be installed).

    Read first: where the Helm chart made the object, the operator's role
    grants ``get`` on it but no ``create``.
    """
    try:
        if kube.get(CLUSTER_PEERINGS.path(name)) is not None:
            return
    except KubeError as exc:
        if exc.status != 403:
            raise
    try:
        kube.create(
            CLUSTER_PEERINGS.path(),
            {
                "apiVersion": f"{PEERING_GROUP}/{PEERING_VERSION}",
                "kind": "ClusterKopfPeering",
                "metadata": {"name": name},
            },
        )
    except KubeError as exc:
        if exc.conflict:
            return
        if exc.not_found:
            raise kopf.PermanentError(
                f"--peering {name}: the ClusterKopfPeering CRD ({PEERING_PLURAL}."
                f"{PEERING_GROUP}) is not installed; kubectl apply -f crds/"
            ) from exc
        raise


@kopf.on.login()
async def login(**kwargs: Any) -> kopf.AiohttpSession | None:
    """kopf's own login (kubeconfig, in-cluster, exec plugins), over a bounded connection pool."""
    info = kopf.login_via_client(**kwargs)
    if info is None:
        return None
    with warnings.catch_warnings():  # kopf's basic-auth helper warns of its own deprecation
        warnings.simplefilter("ignore", DeprecationWarning)
        auth = info.as_aiohttp_basic_auth()
    session = aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=API_CONNECTIONS, ssl=info.as_ssl_context()),
        headers=info.as_http_headers(),
        auth=auth,
        proxy=info.proxy_url,
        trust_env=info.trust_env,
    )
    return kopf.AiohttpSession(
        server=info.server,
        default_namespace=info.default_namespace,
        priority=info.priority,
        expiration=info.expiration,
        aiohttp_session=session,
    )


@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    """Tune kopf and put the shared API client and clock into ``memo``."""
    # Progress and diff-base in annotations under our own prefix: status is
    # ours (structural schema, conditions), and kopf's default status.kopf
    # field would be pruned by the API server anyway.
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=GROUP)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=GROUP, key="last-handled-configuration"
    )
    # kopf's finalizer is only added when a non-optional deletion handler
    # exists; Ballast has none (owner references + GC clean up), so deleting
    # a CR never waits on the operator being up.
    settings.persistence.finalizer = f"{GROUP}/finalizer"
    # Events name the operator, not the framework.
    settings.posting.reporting_component = "ballast-operator"
    # Only warnings from handler loggers become events; the meaningful events
    # (PriorityClassCreated, WindowOpened, ...) are posted explicitly.
    settings.posting.level = logging.WARNING
    # Reconciliations are short API calls; 1 s backoff keeps drift repair fast.
    settings.execution.max_workers = 16
    settings.execution.default_backoff = 2
    settings.queueing.error_delays = (1, 1, 2, 3, 5, 8, 13, 21, 34, 60)
    # Streams are restarted by kopf; a short server timeout bounds how long a
    # silently dropped connection goes unnoticed.
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    settings.watching.connect_timeout = 10
    settings.networking.request_timeout = 60
    # Standalone or peering comes from the command line (`--peering NAME`),
    # already in settings.peering. With peering, a replica whose keep-alive is
    # older than this is presumed dead and the next one resumes: 15 s bounds
    # the failover after a crash (a clean exit hands over at once); keep-alives
    # are written every 5-10 s and are not logged.
    settings.peering.clusterwide = True
    settings.peering.lifetime = PEERING_LIFETIME_SECONDS
    settings.peering.stealth = True

    memo.kube = Kube.connect(os.environ.get(ENV_KUBECONFIG) or None)
    # The resync loop runs outside kopf's handlers and checks peering itself.
    memo.settings = settings
    if not settings.peering.standalone:
        # kopf only patches the peering object's status; without the object
        # a mandatory peering pauses forever, so create it.
        ensure_peering_object(memo.kube, settings.peering.name)
    offset = float(os.environ.get(ENV_CLOCK_OFFSET, "0") or 0)
    memo.clock = SystemClock(dt.timedelta(seconds=offset))


@kopf.on.cleanup()
def shutdown(memo: kopf.Memo, **_: Any) -> None:
    """Release the API connection pool."""
    kube = getattr(memo, "kube", None)
    if kube is not None:
        kube.close()
