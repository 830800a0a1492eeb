"""A day of mixed GPU work replayed on a live local cluster, Ballast against kube-scheduler.

- :mod:`.workload` (pure): the traces (GenAI requests, base-model load
  latencies, an openb pod list) become timed pods, compressed from trace
  hours into replay minutes, with the classes, quotas and batch window they
  run under.
- :mod:`.driver`: creates those pods on the API server at their times,
  deletes serving replicas when the trace scales them down, keeps the nodes'
  model-cache annotations as node agents would, and records what the API
  server says about each pod (create, bind, preemption, waiting reasons).
- :mod:`.metrics` (pure): figures from the recorded pod timelines, the same
  for both schedulers.
- :mod:`.report`: the side-by-side table, ``report.json`` and ``index.html``.
- :mod:`.run`: one replay per scheduler on a freshly recreated cluster.
"""
