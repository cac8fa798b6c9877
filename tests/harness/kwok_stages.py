"""What KWOK does, as the kubelet, to the fake Pis' nodes and the pods bound to them.

KWOK acts only on nodes annotated `kwok.x-k8s.io/node=fake` (the fake Pis register theirs, see
tests/fake_pi/kubelet.py); a node is Ready while its annotation says the fake Pi's k3s runs and
NotReady once it says stopped. Pods bound to those nodes become Running and Ready at once; pods
of a Job complete a second later; a deleted pod is gone at once (no container to stop).
"""

# Which nodes KWOK acts as the kubelet for: only those carrying this annotation.
KWOK_NODE_ANNOTATION = ("kwok.x-k8s.io/node", "fake")
# Whether the fake Pi's `k3s` runs: KWOK's stages keep a node Ready only while it says so.
K3S_STATE_ANNOTATION = "fakepi.piclusterops.dev/k3s"

# KWOK's stages: what it does, as the kubelet, to the fake Pis' nodes and the pods bound to them.
# A node is Ready while its fake Pi's k3s runs (the annotation), NotReady when it stops.
_NODE_CONDITIONS_READY = """\
      conditions:
      - {type: Ready, status: "True", reason: KubeletReady, message: "kubelet is posting ready status (KWOK)", lastHeartbeatTime: {{ Now | Quote }}, lastTransitionTime: {{ Now | Quote }}}
      - {type: MemoryPressure, status: "False", reason: KubeletHasSufficientMemory, message: "", lastHeartbeatTime: {{ Now | Quote }}, lastTransitionTime: {{ Now | Quote }}}
      - {type: DiskPressure, status: "False", reason: KubeletHasNoDiskPressure, message: "", lastHeartbeatTime: {{ Now | Quote }}, lastTransitionTime: {{ Now | Quote }}}
      - {type: PIDPressure, status: "False", reason: KubeletHasSufficientPID, message: "", lastHeartbeatTime: {{ Now | Quote }}, lastTransitionTime: {{ Now | Quote }}}
"""  # noqa: E501

# What the node registered, else a Pi 5 8 GB's: the scheduler needs room for pods.
_NODE_RESOURCES = "".join(
    f"""\
      {field}:
      {{{{ with .status.{field} }}}}
      {{{{ YAML . 1 }}}}
      {{{{ else }}}}
        cpu: "4"
        memory: 8Gi
        pods: "110"
      {{{{ end }}}}
"""
    for field in ("capacity", "allocatable")
)

KWOK_STAGES = f"""\
apiVersion: kwok.x-k8s.io/v1alpha1
kind: Stage
metadata:
  name: fake-pi-k3s-started
spec:
  resourceRef: {{apiGroup: v1, kind: Node}}
  selector:
    matchExpressions:
    - key: '.metadata.annotations["{K3S_STATE_ANNOTATION}"]'
      operator: In
      values: [running]
    - key: '.status.conditions.[] | select( .type == "Ready" ) | .status'
      operator: NotIn
      values: ["True"]
  next:
    statusTemplate: |
{_NODE_CONDITIONS_READY}{_NODE_RESOURCES}      phase: Running
---
apiVersion: kwok.x-k8s.io/v1alpha1
kind: Stage
metadata:
  name: fake-pi-k3s-heartbeat
spec:
  resourceRef: {{apiGroup: v1, kind: Node}}
  selector:
    matchExpressions:
    - key: '.metadata.annotations["{K3S_STATE_ANNOTATION}"]'
      operator: In
      values: [running]
    - key: '.status.conditions.[] | select( .type == "Ready" ) | .status'
      operator: In
      values: ["True"]
  delay: {{durationMilliseconds: 10000, jitterDurationMilliseconds: 12000}}
  next:
    statusTemplate: |
{_NODE_CONDITIONS_READY}  immediateNextStage: true
---
apiVersion: kwok.x-k8s.io/v1alpha1
kind: Stage
metadata:
  name: fake-pi-k3s-stopped
spec:
  resourceRef: {{apiGroup: v1, kind: Node}}
  selector:
    matchExpressions:
    - key: '.metadata.annotations["{K3S_STATE_ANNOTATION}"]'
      operator: In
      values: [stopped]
    - key: '.status.conditions.[] | select( .type == "Ready" ) | .status'
      operator: In
      values: ["True"]
  next:
    statusTemplate: |
      conditions:
      - {{type: Ready, status: "False", reason: KubeletNotReady, message: "k3s is not running on the fake Pi", lastHeartbeatTime: {{{{ Now | Quote }}}}, lastTransitionTime: {{{{ Now | Quote }}}}}}
---
apiVersion: kwok.x-k8s.io/v1alpha1
kind: Stage
metadata:
  name: pod-running
spec:
  resourceRef: {{apiGroup: v1, kind: Pod}}
  selector:
    matchExpressions:
    - key: '.metadata.deletionTimestamp'
      operator: DoesNotExist
    - key: '.status.podIP'
      operator: DoesNotExist
  next:
    statusTemplate: |
      conditions:
      - {{type: Initialized, status: "True", lastTransitionTime: {{{{ Now | Quote }}}}}}
      - {{type: ContainersReady, status: "True", lastTransitionTime: {{{{ Now | Quote }}}}}}
      - {{type: Ready, status: "True", lastTransitionTime: {{{{ Now | Quote }}}}}}
      containerStatuses:
      {{{{ range .spec.containers }}}}
      - {{name: {{{{ .name | Quote }}}}, image: {{{{ .image | Quote }}}}, ready: true, restartCount: 0, started: true, state: {{running: {{startedAt: {{{{ Now | Quote }}}}}}}}}}
      {{{{ end }}}}
      hostIP: {{{{ NodeIPWith .spec.nodeName | Quote }}}}
      podIP: {{{{ PodIPWith .spec.nodeName ( or .spec.hostNetwork false ) ( or .metadata.uid "" ) ( or .metadata.name "" ) ( or .metadata.namespace "" ) | Quote }}}}
      phase: Running
      startTime: {{{{ Now | Quote }}}}
---
apiVersion: kwok.x-k8s.io/v1alpha1
kind: Stage
metadata:
  name: job-pod-complete
spec:
  resourceRef: {{apiGroup: v1, kind: Pod}}
  selector:
    matchExpressions:
    - key: '.metadata.deletionTimestamp'
      operator: DoesNotExist
    - key: '.status.phase'
      operator: In
      values: [Running]
    - key: '.metadata.ownerReferences.[].kind'
      operator: In
      values: [Job]
  delay: {{durationMilliseconds: 1000}}
  next:
    statusTemplate: |
      conditions:
      - {{type: Ready, status: "False", reason: PodCompleted, lastTransitionTime: {{{{ Now | Quote }}}}}}
      - {{type: ContainersReady, status: "False", reason: PodCompleted, lastTransitionTime: {{{{ Now | Quote }}}}}}
      containerStatuses:
      {{{{ range .spec.containers }}}}
      - {{name: {{{{ .name | Quote }}}}, image: {{{{ .image | Quote }}}}, ready: false, restartCount: 0, started: false, state: {{terminated: {{exitCode: 0, reason: Completed, startedAt: {{{{ Now | Quote }}}}, finishedAt: {{{{ Now | Quote }}}}}}}}}}
      {{{{ end }}}}
      phase: Succeeded
---
apiVersion: kwok.x-k8s.io/v1alpha1
kind: Stage
metadata:
  name: pod-delete
spec:
  resourceRef: {{apiGroup: v1, kind: Pod}}
  selector:
    matchExpressions:
    - key: '.metadata.deletionTimestamp'
      operator: Exists
  next:
    finalizers: {{empty: true}}
    delete: true
"""  # noqa: E501
