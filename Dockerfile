# syntax=docker/dockerfile:1
# Ballast's image for users with Docker: one image for the operator, the scheduler
# and the node agent (`ballast` is the entrypoint; the chart passes the command).
# `make image` builds the same image without a Docker daemon; both follow
# operator/ballast/image/spec.py, and tests/unit/test_image_recipe.py keeps them in step.
#
#   docker build -t localhost/ballast:0.1.0 --build-arg REVISION=$(git rev-parse HEAD) .
ARG DEBIAN=debian:bookworm-slim

# Build stage: the image's own python3 makes the virtual environment.
FROM ${DEBIAN} AS build
RUN apt-get update \
 && apt-get install --yes --no-install-recommends python3 python3-venv ca-certificates \
 && rm -rf /var/lib/apt/lists/*
RUN python3 -m venv /opt/ballast
COPY requirements.lock pyproject.toml /src/
# Runtime dependencies only (pyproject's [project].dependencies), every version from the lock;
# the test suites some of them ship inside their packages are left out.
RUN python3 -c "import tomllib; print('\n'.join(tomllib.load(open('/src/pyproject.toml', 'rb'))['project']['dependencies']))" > /src/dependencies.txt \
 && /opt/ballast/bin/pip install --no-cache-dir --disable-pip-version-check --constraint /src/requirements.lock --requirement /src/dependencies.txt \
 && find /opt/ballast/lib -depth -type d -name tests -path '*/site-packages/*' -exec rm -rf {} +
COPY README.md /src/
COPY operator/ballast /src/operator/ballast
# The project as a wheel, without dependencies; then the installer leaves the environment.
RUN /opt/ballast/bin/pip wheel --no-cache-dir --disable-pip-version-check --no-deps --wheel-dir /src/dist /src \
 && /opt/ballast/bin/pip install --no-cache-dir --disable-pip-version-check --no-deps --no-index /src/dist/ballast-*.whl \
 && /opt/ballast/bin/pip uninstall --yes pip setuptools \
 && rm -f /opt/ballast/bin/activate* /opt/ballast/bin/Activate.ps1

# Runtime: python3 and the CA certificates, the environment, a non-root user.
FROM ${DEBIAN}
RUN apt-get update \
 && apt-get install --yes --no-install-recommends python3 ca-certificates \
 && rm -rf /var/lib/apt/lists/*
COPY --from=build /opt/ballast /opt/ballast
ARG VERSION=0.1.0
ARG REVISION=unknown
LABEL org.opencontainers.image.title="ballast" \
      org.opencontainers.image.description="Ballast: the operator; the GPU-aware scheduler and the node agent" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.source="https://github.com/ballast-dev/ballast" \
      org.opencontainers.image.licenses="Apache-2.0"
ENV PATH=/opt/ballast/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
# The chart's securityContext.runAsUser; no passwd entry is needed.
USER 65532:65532
WORKDIR /
ENTRYPOINT ["/opt/ballast/bin/ballast"]
