"""The two root filesystems, made by mmdebstrap from Debian's packages through apt.

* the runtime one (:func:`runtime_tar`): ``minbase`` plus python3 and the CA
  certificates, written as a tar that becomes the base layer;
* the build stage (:func:`build_stage`): the same plus ``python3-venv``, in a
  folder, where the virtual environment is made by the image's own python3
  and the pinned dependencies are installed by pip inside a chroot
  (mmdebstrap mounts ``/proc``, ``/dev`` and the host's resolver for its hooks).

The project wheel is then installed into that folder's environment by
:func:`install_wheel` (a chroot with no network: ``--no-index``).
"""

from __future__ import annotations

import os
import shlex
import shutil
import ssl
import subprocess
from pathlib import Path

from ballast.image import spec
from ballast.image.steps import ImageError, run_logged

MERGED_USR_HOOKS = Path("/usr/share/mmdebstrap/hooks/merged-usr")


def require_tools() -> None:
    """mmdebstrap and chroot are needed, and root (dpkg sets owners, chroot needs it)."""
    missing = [t for t in ("mmdebstrap", "chroot") if shutil.which(t) is None]
    if missing:
        raise ImageError(
            f"{', '.join(missing)} not found: `make image` needs Debian's mmdebstrap "
            f"(`apt-get install mmdebstrap`) and coreutils' chroot"
        )
    if os.geteuid() != 0:
        raise ImageError("`make image` runs mmdebstrap and chroot, which need root")


def _mmdebstrap(packages: tuple[str, ...]) -> list[str]:
    argv = [
        "mmdebstrap",
        "--mode=root",
        f"--variant={spec.VARIANT}",
        f"--include={','.join(packages)}",
        *(f"--dpkgopt={o}" for o in spec.DPKG_OPTIONS),
    ]
    if MERGED_USR_HOOKS.is_dir():
        # /usr merged by directory symlinks, as debootstrap does, without the usrmerge
        # package (which would pull perl into the image).
        argv.append(f"--hook-dir={MERGED_USR_HOOKS}")
    return argv


def runtime_tar(out: Path, log_path: Path) -> float:
    """The runtime root filesystem as a tar at ``out``; returns the seconds taken."""
    argv = [*_mmdebstrap(spec.RUNTIME_PACKAGES), spec.SUITE, str(out)]
    return run_logged(argv, log_path, "runtime root filesystem (mmdebstrap)")


def host_ca_bundle() -> Path | None:
    """The CA bundle pip trusts on this machine (``$PIP_CERT``, ``$SSL_CERT_FILE``, OpenSSL's).

    pip in the build stage uses it too, so a proxy that re-signs TLS with a local
    CA works there as here; it stays in the build stage, never in the image.
    """
    for var in ("PIP_CERT", "REQUESTS_CA_BUNDLE", "SSL_CERT_FILE"):
        value = os.environ.get(var)
        if value and Path(value).is_file():
            return Path(value)
    default = Path(ssl.get_default_verify_paths().openssl_cafile)
    return default if default.is_file() else None


def chroot_env() -> list[str]:
    """``env -i`` and the variables a command in the build stage gets: no host pip settings."""
    keep = ("http_proxy", "https_proxy", "no_proxy", "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY")
    env = ["env", "-i", "PATH=/usr/sbin:/usr/bin:/sbin:/bin", "HOME=/root", "LANG=C.UTF-8"]
    env += [f"{k}={os.environ[k]}" for k in keep if os.environ.get(k)]
    return env


def build_stage(target: Path, context: Path, log_path: Path) -> float:
    """The build stage in ``target``: python3, its venv at :data:`spec.VENV`, the pinned deps.

    ``context`` holds ``requirements.lock`` and ``dependencies.txt`` (and
    ``ca.crt``, the host's CA bundle, when there is one), copied to ``/src`` in
    the chroot. Returns the seconds taken.
    """
    env = chroot_env()
    names = [spec.LOCK, "dependencies.txt"]
    ca = host_ca_bundle()
    if ca is not None:
        shutil.copyfile(ca, context / "ca.crt")
        names.append("ca.crt")
        env.append("PIP_CERT=/src/ca.crt")
    chroot = f'chroot "$1" {shlex.join(env)} '
    venv = shlex.join(["python3", "-m", "venv", spec.VENV])
    files = " ".join(str(context / n) for n in names)
    argv = [
        *_mmdebstrap(spec.BUILD_PACKAGES),
        '--customize-hook=mkdir -p "$1/src"',
        f"--customize-hook=copy-in {files} /src",
        f"--customize-hook={chroot}{venv}",
        f"--customize-hook={chroot}{shlex.join(spec.PIP_DEPS)}",
        spec.SUITE,
        str(target),
    ]
    return run_logged(argv, log_path, "build stage and pinned dependencies (mmdebstrap, pip)")


def install_wheel(stage: Path, wheel: Path, log_path: Path) -> float:
    """Install ``wheel`` into the build stage's environment (replacing an older one)."""
    inside = Path("/src") / wheel.name
    shutil.copy2(wheel, stage / inside.relative_to("/"))
    pip = f"{spec.VENV}/bin/pip"
    uninstall = [
        "chroot",
        str(stage),
        *chroot_env(),
        pip,
        "uninstall",
        "--yes",
        "--quiet",
        "ballast",
    ]
    subprocess.run(uninstall, capture_output=True, check=False)  # absent the first time
    try:
        return run_logged(
            ["chroot", str(stage), *chroot_env(), *spec.PIP_APP, str(inside)],
            log_path,
            "project wheel into the environment (pip in a chroot)",
            progress=lambda line: None,
        )
    finally:
        (stage / inside.relative_to("/")).unlink(missing_ok=True)


def record(stage: Path, distribution: str) -> list[str]:
    """The files pip installed for ``distribution`` (its RECORD), relative to ``stage``."""
    site = site_packages(stage)
    infos = sorted(site.glob(f"{distribution}-*.dist-info"))
    if not infos:
        raise ImageError(f"{distribution} is not installed in {site}")
    found: list[str] = []
    for line in (infos[-1] / "RECORD").read_text().splitlines():
        name = line.rsplit(",", 2)[0]
        if name:
            path = os.path.normpath(
                site / name
            )  # RECORD's ../../../bin/ballast; no symlinks followed
            found.append(Path(path).relative_to(stage).as_posix())
    return found


def site_packages(stage: Path) -> Path:
    """The environment's ``lib/pythonX.Y/site-packages`` in the build stage."""
    found = sorted((stage / spec.VENV.lstrip("/") / "lib").glob("python3*/site-packages"))
    if len(found) != 1:
        raise ImageError(f"expected one site-packages under {spec.VENV}/lib, found {found}")
    return found[0]
