"""Ballast's container image, built without a Docker daemon (``make image``).

One image runs the operator, the scheduler and the agent (``ballast`` is the
entrypoint; the chart passes the command as arguments). The recipe is in
:mod:`ballast.image.spec`, which the repository's ``Dockerfile`` follows for users
with Docker; :mod:`ballast.image.build` makes the layers from Debian's packages
and the pinned ``requirements.lock`` and assembles them with crane.
"""
