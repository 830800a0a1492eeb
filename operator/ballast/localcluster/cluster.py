"""``LocalCluster``: start, inspect and stop one named local control plane.

The processes are detached (see :mod:`ballast.localcluster.processes`), so a
cluster outlives the Python process that started it; everything needed to
find it again is in ``<cache>/clusters/<name>/state.json``. Any process (the
CLI, a test session, the demo) can therefore ``up``, ``status`` or ``down``
the same cluster by name.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import re
import shutil
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from ballast.localcluster import components as comp
from ballast.localcluster import keda, netns, tools
from ballast.localcluster import prometheus as prom
from ballast.localcluster.ballast_procs import BallastProcess, stop_all
from ballast.localcluster.binaries import cache_dir, missing_binaries, resolve_bin_dir
from ballast.localcluster.certs import PKI, generate_pki, issue_leaf
from ballast.localcluster.errors import ClusterError, ComponentError, PortInUseError
from ballast.localcluster.probe import admin_context, get, insecure_context
from ballast.localcluster.processes import (
    free_ports,
    is_alive,
    port_in_use,
    spawn,
    stop,
    tail,
)
from ballast.localcluster.state import (
    COMPONENTS,
    CORE,
    ClusterState,
    ClusterStatus,
    ComponentState,
    ComponentStatus,
    Layout,
    load_state,
    save_state,
    write_kubeconfig,
)
from ballast.logs import kv

log = logging.getLogger(__name__)

_NAME = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
_DEFAULT_SA = "/api/v1/namespaces/default/serviceaccounts/default"


class LocalCluster:
    """A local control plane: etcd, kube-apiserver, kube-controller-manager, kwok (+ scheduler).

    ``cache`` defaults to ``$BALLAST_CACHE`` or ``~/.cache/ballast``;
    ``bin_dir`` to the cached build (see :func:`resolve_bin_dir`);
    ``api_port`` to a free port chosen at ``up``.
    """

    def __init__(
        self,
        name: str = "default",
        cache: Path | None = None,
        *,
        bin_dir: Path | None = None,
        api_port: int | None = None,
        ready_timeout_s: float = 120.0,
        hpa_sync_seconds: float = 5.0,
        scrape_interval_s: float = prom.SCRAPE_INTERVAL_S,
    ) -> None:
        if not _NAME.match(name):
            raise ClusterError(f"cluster name {name!r}: use lowercase letters, digits and '-'")
        self.name = name
        self.cache = cache or cache_dir()
        self.layout = Layout(self.cache / "clusters" / name)
        self._bin_dir = bin_dir
        self._api_port = api_port
        self.ready_timeout_s = ready_timeout_s
        # The HPA controller's period: shorter than Kubernetes' 15 s, as the local
        # Prometheus scrapes every 2 s (a cluster started with it keeps it).
        self.hpa_sync_seconds = hpa_sync_seconds
        self.scrape_interval_s = scrape_interval_s  # Prometheus', when it starts

    def __repr__(self) -> str:
        return f"LocalCluster(name={self.name!r}, cache={str(self.cache)!r})"

    @property
    def kubeconfig(self) -> Path:
        """The admin kubeconfig (exists while the cluster is up)."""
        return self.layout.kubeconfig

    @property
    def state(self) -> ClusterState | None:
        """The recorded state, or None when the cluster was never started or is down."""
        return load_state(self.layout)

    @classmethod
    def names(cls, cache: Path | None = None) -> list[str]:
        """Names of the clusters that have a state folder under ``cache``."""
        root = (cache or cache_dir()) / "clusters"
        return sorted(p.name for p in root.glob("*") if (p / "state.json").exists())

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        self.layout.root.mkdir(parents=True, exist_ok=True)
        with self.layout.lock_file.open("w") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(f, fcntl.LOCK_UN)

    def _plan(self, state: ClusterState) -> comp.Plan:
        return comp.Plan(
            name=self.name,
            bin_dir=Path(state.bin_dir),
            layout=self.layout,
            pki=PKI(self.layout.pki_dir),
            ports=state.ports,
            etcd_data_dir=Path(state.etcd_data_dir),
            hpa_sync_seconds=self.hpa_sync_seconds,
        )

    def _probe(self, component: str, port: int) -> bool:
        if component == "keda-operator":
            return get(keda.operator_health_url(port)) == 200
        if component == "keda-adapter":
            state = load_state(self.layout)
            address = state.keda_address if state else None
            return (
                address is not None
                and get(keda.adapter_health_url(address, port), insecure_context()) == 200
            )
        url = comp.health_url(component, port)
        if component == "kube-apiserver":
            try:
                context = admin_context(PKI(self.layout.pki_dir))
            except OSError:  # certificates already removed by a concurrent `down`
                return False
            return get(url, context) == 200
        if url.startswith("https"):
            return get(url, insecure_context()) == 200
        return get(url) == 200

    # -- up ---------------------------------------------------------------------------------

    def up(
        self,
        with_scheduler: bool = False,
        scheduler_config: Path | Mapping[str, Any] | None = None,
        scheduler_args: Sequence[str] = (),
        with_prometheus: bool = False,
        with_keda: bool = False,
        with_dra_driver: bool = False,
    ) -> Path:
        """Start the cluster (a no-op when it already runs) and return the kubeconfig path.

        With ``with_scheduler`` or ``scheduler_config``, kube-scheduler is added
        if it is not running; a running one is kept as it is (use
        :meth:`start_scheduler` to restart it with another configuration).
        With ``with_prometheus``, Prometheus is added likewise
        (:mod:`ballast.localcluster.prometheus`; its URL is in the state).
        With ``with_keda``, KEDA's operator and metrics API server are added
        likewise, behind the aggregation layer (:mod:`ballast.localcluster.keda`).
        With ``with_dra_driver``, the test DRA driver publishes ResourceSlices for
        labelled KWOK nodes (:mod:`ballast.localcluster.dradriver`), restarted if running.
        """
        with self._locked():
            state = load_state(self.layout)
            if state and all(
                n in state.components and is_alive(state.components[n].process) for n in CORE
            ):
                log.info("cluster already running", extra=kv(name=self.name, server=state.server))
            else:
                if state:
                    log.warning("cleaning up a partly running cluster", extra=kv(name=self.name))
                    self._teardown(state)
                state = self._start_core_retrying()
            if (with_scheduler or scheduler_config) and "kube-scheduler" not in state.components:
                self._start_scheduler(state, scheduler_config, scheduler_args)
            if with_prometheus and "prometheus" not in state.components:
                self._start_prometheus(state)
            if with_keda and not {"keda-operator", "keda-adapter"} <= set(state.components):
                self._start_keda(state)
            if with_dra_driver:  # a Ballast process: `cluster down` stops it (stop_all)
                BallastProcess("dra-driver", ["cluster", "dra-driver"], self.kubeconfig,
                               self.layout.root).start()  # fmt: skip
        return self.kubeconfig

    def _start_core_retrying(self, attempts: int = 3) -> ClusterState:
        attempt = 1
        while True:
            try:
                return self._start_core()
            except ComponentError as exc:
                if not exc.port_conflict or attempt >= attempts:
                    raise
                log.warning(
                    "port taken during startup; retrying with new ports",
                    extra=kv(component=exc.component, attempt=attempt),
                )
                attempt += 1

    def _start_core(self) -> ClusterState:
        started = time.monotonic()
        bin_dir = self._bin_dir or resolve_bin_dir(self.cache)
        missing = missing_binaries(bin_dir)
        if missing:
            raise ClusterError(f"{bin_dir} lacks {', '.join(missing)}: run `ballast cluster build`")
        if self._api_port is not None and port_in_use(self._api_port):
            raise PortInUseError(
                f"port {self._api_port} on 127.0.0.1 is in use: stop what listens there "
                f"(`ss -ltnp 'sport = :{self._api_port}'`) or choose another --port"
            )
        exclude = [self._api_port] if self._api_port else []
        picked = free_ports(len(comp.PORT_NAMES), exclude=exclude)
        ports = dict(zip(comp.PORT_NAMES, picked, strict=True))
        if self._api_port is not None:
            ports["kube-apiserver"] = self._api_port
        self.layout.logs_dir.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(self.layout.pki_dir, ignore_errors=True)
        shutil.rmtree(prom.root(self.layout.root), ignore_errors=True)  # a crashed run's targets
        pki = generate_pki(self.layout.pki_dir)
        state = ClusterState(
            name=self.name,
            bin_dir=str(bin_dir),
            kubeconfig=str(self.kubeconfig),
            etcd_data_dir=tempfile.mkdtemp(prefix=f"ballast-etcd-{self.name}-"),
            ports=ports,
        )
        write_kubeconfig(
            self.kubeconfig,
            self.name,
            state.server,
            pki.ca_cert.read_bytes(),
            pki.admin_cert.read_bytes(),
            pki.admin_key.read_bytes(),
        )
        self.layout.kwok_config.write_text(comp.KWOK_CONFIG)
        save_state(self.layout, state)
        plan = self._plan(state)
        try:
            self._launch(state, "etcd", comp.etcd_args(plan))
            self._await_ready(state, "etcd")
            self._launch(state, "kube-apiserver", comp.apiserver_args(plan))
            self._await_ready(state, "kube-apiserver")
            # Both only need the API server: start them together, then wait for each.
            self._launch(state, "kube-controller-manager", comp.controller_manager_args(plan))
            self._launch(state, "kwok", comp.kwok_args(plan))
            self._await_ready(state, "kube-controller-manager")
            self._await_ready(state, "kwok")
            self._await_default_service_account(state)
        except BaseException:
            self._teardown(state)
            raise
        log.info(
            "cluster up",
            extra=kv(
                name=self.name,
                server=state.server,
                kubeconfig=self.kubeconfig,
                seconds=round(time.monotonic() - started, 1),
            ),
        )
        return state

    def _launch(
        self,
        state: ClusterState,
        component: str,
        argv: list[str],
        env: Mapping[str, str] | None = None,
    ) -> None:
        ref = spawn(argv, self.layout.log(component), env=env)
        state.components[component] = ComponentState(
            ref.pid, ref.start_time, state.ports[component], argv
        )
        save_state(self.layout, state)
        log.debug("started", extra=kv(component=component, pid=ref.pid))

    def _fail(self, component: str, reason: str) -> ComponentError:
        log_path = self.layout.log(component)
        return ComponentError(component, reason, log_path, tail(log_path, 40))

    def _await_ready(self, state: ClusterState, component: str) -> None:
        ref = state.components[component].process
        port = state.ports[component]
        deadline = time.monotonic() + self.ready_timeout_s
        while not self._probe(component, port):
            if not is_alive(ref):
                raise self._fail(component, "exited during startup")
            if time.monotonic() > deadline:
                raise self._fail(component, f"not ready after {self.ready_timeout_s:.0f}s")
            time.sleep(0.25)
        log.info("ready", extra=kv(component=component, port=port))

    def _await_default_service_account(self, state: ClusterState) -> None:
        # Pod creation in a namespace fails until the controller manager made its
        # `default` ServiceAccount: wait for the one in `default`.
        context = admin_context(PKI(self.layout.pki_dir))
        deadline = time.monotonic() + self.ready_timeout_s
        while get(state.server + _DEFAULT_SA, context) != 200:
            if not is_alive(state.components["kube-controller-manager"].process):
                raise self._fail("kube-controller-manager", "exited")
            if time.monotonic() > deadline:
                raise self._fail(
                    "kube-controller-manager",
                    f"made no default ServiceAccount within {self.ready_timeout_s:.0f}s",
                )
            time.sleep(0.25)

    # -- scheduler --------------------------------------------------------------------------

    def start_scheduler(
        self,
        config: Path | Mapping[str, Any] | None = None,
        extra_args: Sequence[str] = (),
    ) -> None:
        """(Re)start kube-scheduler, optionally with a KubeSchedulerConfiguration.

        ``config`` is a path to YAML or a mapping; its client kubeconfig and
        ``leaderElect: false`` are filled in when absent (see
        :func:`components.scheduler_config`), so an extender configuration
        needs only its ``extenders`` (and ``profiles``) entries.
        """
        with self._locked():
            state = self._require_running()
            if "kube-scheduler" in state.components:
                self._stop_component(state, "kube-scheduler")
            self._start_scheduler(state, config, extra_args)

    def stop_scheduler(self) -> None:
        """Stop kube-scheduler if it runs (the rest of the cluster keeps running)."""
        with self._locked():
            state = load_state(self.layout)
            if state and "kube-scheduler" in state.components:
                self._stop_component(state, "kube-scheduler")

    def _start_scheduler(
        self,
        state: ClusterState,
        config: Path | Mapping[str, Any] | None,
        extra_args: Sequence[str],
    ) -> None:
        config_path: Path | None = None
        if config is not None:
            doc = yaml.safe_load(Path(config).read_text()) if isinstance(config, Path) else config
            full = comp.scheduler_config(doc or {}, self.kubeconfig)
            self.layout.scheduler_config.write_text(yaml.safe_dump(full, sort_keys=False))
            config_path = self.layout.scheduler_config
        state.ports["kube-scheduler"] = free_ports(1, exclude=list(state.ports.values()))[0]
        argv = comp.scheduler_args(self._plan(state), config_path, extra_args)
        self._launch(state, "kube-scheduler", argv)
        try:
            self._await_ready(state, "kube-scheduler")
        except ComponentError:
            self._stop_component(state, "kube-scheduler")
            raise

    # -- prometheus -------------------------------------------------------------------------

    def add_scrape_target(
        self,
        job: str,
        address: str,
        name: str | None = None,
        labels: Mapping[str, str] | None = None,
    ) -> Path:
        """Have this cluster's Prometheus scrape ``address`` (``host:port``) in ``job``.

        ``job`` is one of :data:`prometheus.JOBS`. Safe before Prometheus starts or
        without it: the target file is read when (and if) it runs. Returns the file.
        """
        return prom.add_target(self.layout.root, job, address, name, labels)

    def remove_scrape_target(self, job: str, name: str) -> None:
        """Forget a target added with :meth:`add_scrape_target` under ``name``."""
        prom.remove_target(self.layout.root, job, name)

    def _start_prometheus(self, state: ClusterState) -> None:
        binary = tools.binary(tools.PROMETHEUS, "prometheus", self.cache)
        port = free_ports(1, exclude=list(state.ports.values()))[0]
        state.ports["prometheus"] = port
        prom.write_config(self.layout.root, port, self.scrape_interval_s)
        self._launch(state, "prometheus", prom.args(binary, self.layout.root, port))
        try:
            self._await_ready(state, "prometheus")
        except ComponentError:
            self._stop_component(state, "prometheus")
            raise
        log.info("prometheus up", extra=kv(url=state.prometheus_url))

    # -- keda -------------------------------------------------------------------------------

    def _start_keda(self, state: ClusterState) -> None:
        tool_dir = tools.resolve(tools.KEDA, self.cache)
        for component in ("keda-adapter", "keda-operator"):  # a half-started earlier try
            if component in state.components:
                self._stop_component(state, component)
        pair = netns.ensure(self.name)
        state.keda_address = pair.host_ip
        picked = free_ports(len(keda.PORT_NAMES), exclude=list(state.ports.values()))
        ports = dict(zip(keda.PORT_NAMES, picked, strict=True))
        state.ports.update(ports)
        pki = PKI(self.layout.pki_dir)
        certs = issue_leaf(pki, keda.cert_dir(self.layout.root), "keda",
                           ips=("127.0.0.1", pair.host_ip), dns=keda.cert_names())  # fmt: skip
        keda.install(self.kubeconfig, tool_dir, pair.host_ip, ports["keda-adapter"], pki)
        environment = {**os.environ, **keda.env(self.kubeconfig)}
        started = time.monotonic()
        try:
            self._launch(state, "keda-operator", keda.operator_args(
                tool_dir / "keda", certs, ports), env=environment)  # fmt: skip
            self._launch(state, "keda-adapter", keda.adapter_args(
                tool_dir / "keda-adapter", certs, self.kubeconfig, pair.host_ip, ports),
                env=environment)  # fmt: skip
            self._await_ready(state, "keda-operator")
            self._await_ready(state, "keda-adapter")
            keda.await_available(self.kubeconfig, self.ready_timeout_s)
        except BaseException:
            for component in ("keda-adapter", "keda-operator"):
                if component in state.components:
                    self._stop_component(state, component)
            raise
        log.info(
            "keda up", extra=kv(address=pair.host_ip, seconds=round(time.monotonic() - started, 1))
        )

    def _stop_component(self, state: ClusterState, component: str) -> None:
        killed = stop(state.components[component].process)
        del state.components[component]
        save_state(self.layout, state)
        log.info("stopped", extra=kv(component=component, killed=killed))

    def _require_running(self) -> ClusterState:
        state = load_state(self.layout)
        apiserver = state.components.get("kube-apiserver") if state else None
        if state is None or apiserver is None or not is_alive(apiserver.process):
            raise ClusterError(
                f"cluster {self.name!r} is not running: `ballast cluster up --name {self.name}`"
            )
        return state

    # -- down / status ----------------------------------------------------------------------

    def down(self, purge: bool = False) -> None:
        """Stop every component (SIGTERM, then SIGKILL) and remove the cluster's temp data.

        Logs are kept for troubleshooting unless ``purge`` removes the whole state folder.
        """
        if not self.layout.root.exists():
            log.info("no such cluster", extra=kv(name=self.name))
            return
        with self._locked():
            state = load_state(self.layout)
            if state is None:
                log.info("cluster not running", extra=kv(name=self.name))
            else:
                self._teardown(state)
                log.info("cluster down", extra=kv(name=self.name))
            if purge:
                shutil.rmtree(self.layout.root, ignore_errors=True)

    def _teardown(self, state: ClusterState) -> None:
        # Ballast's own processes (operator, scheduler) started beside the cluster go first,
        # while the API server they talk to is still there.
        for name in stop_all(self.layout.root):
            log.info("stopped", extra=kv(component=name))
        for component in reversed(COMPONENTS):
            if component in state.components:
                self._stop_component(state, component)
        shutil.rmtree(state.etcd_data_dir, ignore_errors=True)
        shutil.rmtree(self.layout.pki_dir, ignore_errors=True)
        shutil.rmtree(prom.root(self.layout.root), ignore_errors=True)
        if state.keda_address is not None or keda.root(self.layout.root).exists():
            netns.remove(self.name)
            shutil.rmtree(keda.root(self.layout.root), ignore_errors=True)
        for path in (
            self.layout.kubeconfig,
            self.layout.state_file,
            self.layout.kwok_config,
            self.layout.scheduler_config,
        ):
            path.unlink(missing_ok=True)

    def status(self) -> ClusterStatus:
        """Each component's pid, port, liveness and readiness (probed now)."""
        state = load_state(self.layout)
        if state is None:
            return ClusterStatus(self.name, None, None)
        rows = []
        for name in COMPONENTS:
            c = state.components.get(name)
            alive = c is not None and is_alive(c.process)
            ready = alive and c is not None and self._probe(name, c.port)
            rows.append(
                ComponentStatus(
                    name,
                    c.pid if c else None,
                    c.port if c else None,
                    alive,
                    ready,
                    self.layout.log(name),
                )
            )
        return ClusterStatus(
            self.name, Path(state.kubeconfig), state.server, rows, state.prometheus_url
        )
