"""The pod lifecycle kwok plays on the local cluster's fake nodes (Stage documents).

kwok uses its built-in pod stages only when its configuration names none,
so the ones below restate that behaviour and add one:

- ``pod-ready``: a pod bound to a fake node becomes Running and Ready at once;
- ``pod-run-for``: a Running pod annotated :data:`RUN_FOR_ANNOTATION` (a Go
  duration such as ``12.5s``) completes (phase Succeeded) that long after it
  started. The day replay (:mod:`ballast.dayreplay`) gives each pod its
  trace lifetime this way;
- ``pod-complete``: a Running pod owned by a Job, without that annotation,
  completes at once (kwok's default for Jobs);
- ``pod-delete``: a pod being deleted is removed at once (its finalizers emptied).
"""

from __future__ import annotations

RUN_FOR_ANNOTATION = "pod-complete.stage.kwok.x-k8s.io/delay"

_COMPLETED = """\
      {{ $now := Now }}
      containerStatuses:
      {{ range .spec.containers }}
      - image: {{ .image | Quote }}
        name: {{ .name | Quote }}
        ready: false
        restartCount: 0
        started: false
        state:
          terminated:
            exitCode: 0
            reason: Completed
            startedAt: {{ $now | Quote }}
            finishedAt: {{ $now | Quote }}
      {{ end }}
      phase: Succeeded
"""

STAGES = f"""\
---
apiVersion: kwok.x-k8s.io/v1alpha1
kind: Stage
metadata:
  name: pod-ready
spec:
  resourceRef:
    apiGroup: v1
    kind: Pod
  selector:
    matchExpressions:
    - key: .metadata.deletionTimestamp
      operator: DoesNotExist
    - key: .status.podIP
      operator: DoesNotExist
  next:
    statusTemplate: |
      {{{{ $now := Now }}}}
      conditions:
      - type: Initialized
        status: "True"
        lastTransitionTime: {{{{ $now | Quote }}}}
      - type: Ready
        status: "True"
        lastTransitionTime: {{{{ $now | Quote }}}}
      - type: ContainersReady
        status: "True"
        lastTransitionTime: {{{{ $now | Quote }}}}
      {{{{ range .spec.readinessGates }}}}
      - type: {{{{ .conditionType | Quote }}}}
        status: "True"
        lastTransitionTime: {{{{ $now | Quote }}}}
      {{{{ end }}}}
      containerStatuses:
      {{{{ range .spec.containers }}}}
      - image: {{{{ .image | Quote }}}}
        name: {{{{ .name | Quote }}}}
        ready: true
        restartCount: 0
        state:
          running:
            startedAt: {{{{ $now | Quote }}}}
      {{{{ end }}}}
      initContainerStatuses:
      {{{{ range .spec.initContainers }}}}
      - image: {{{{ .image | Quote }}}}
        name: {{{{ .name | Quote }}}}
        ready: true
        restartCount: 0
        {{{{ if eq .restartPolicy "Always" }}}}
        started: true
        state:
          running:
            startedAt: {{{{ $now | Quote }}}}
        {{{{ else }}}}
        state:
          terminated:
            exitCode: 0
            reason: Completed
            startedAt: {{{{ $now | Quote }}}}
            finishedAt: {{{{ $now | Quote }}}}
        {{{{ end }}}}
      {{{{ end }}}}
      hostIP: {{{{ NodeIPWith .spec.nodeName | Quote }}}}
      podIP: {{{{ PodIPWith .spec.nodeName ( or .spec.hostNetwork false ) ( or .metadata.uid "" ) ( or .metadata.name "" ) ( or .metadata.namespace "" ) | Quote }}}}
      phase: Running
      startTime: {{{{ $now | Quote }}}}
---
apiVersion: kwok.x-k8s.io/v1alpha1
kind: Stage
metadata:
  name: pod-run-for
spec:
  resourceRef:
    apiGroup: v1
    kind: Pod
  selector:
    matchExpressions:
    - key: .metadata.deletionTimestamp
      operator: DoesNotExist
    - key: .status.phase
      operator: In
      values: [Running]
    - key: '.metadata.annotations["{RUN_FOR_ANNOTATION}"]'
      operator: Exists
  delay:
    durationMilliseconds: 0
    durationFrom:
      expressionFrom: '.metadata.annotations["{RUN_FOR_ANNOTATION}"]'
  next:
    statusTemplate: |
{_COMPLETED}---
apiVersion: kwok.x-k8s.io/v1alpha1
kind: Stage
metadata:
  name: pod-complete
spec:
  resourceRef:
    apiGroup: v1
    kind: Pod
  selector:
    matchExpressions:
    - key: .metadata.deletionTimestamp
      operator: DoesNotExist
    - key: .status.phase
      operator: In
      values: [Running]
    - key: .metadata.ownerReferences.[].kind
      operator: In
      values: [Job]
    - key: '.metadata.annotations["{RUN_FOR_ANNOTATION}"]'
      operator: DoesNotExist
  next:
    statusTemplate: |
{_COMPLETED}---
apiVersion: kwok.x-k8s.io/v1alpha1
kind: Stage
metadata:
  name: pod-delete
spec:
  resourceRef:
    apiGroup: v1
    kind: Pod
  selector:
    matchExpressions:
    - key: .metadata.deletionTimestamp
      operator: Exists
  next:
    finalizers:
      empty: true
    delete: true
"""
