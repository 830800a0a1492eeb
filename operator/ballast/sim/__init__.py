"""The simulator: replays traces through the placement engine without a cluster.

``traces`` loads the public traces, ``cluster`` builds in-memory clusters,
``fill`` runs the FGD paper's fill-up experiment, ``serving`` replays the
GenAI trace as serving replicas and batch jobs over time, ``report`` writes
the JSON and PNG, and ``cli`` is ``ballast simulate``. See docs/simulator.md.
"""
