"""FAKE Kubernetes API, in memory: for the unit tests of the release assets' logic only.

It has none of the API's semantics (no admission, no schema, no server-side-apply merge, no
controllers, no defaulting): `apply` stores the manifest as sent, `apply_diff` compares it with
what is stored. What needs the real semantics (the HelmChart CRD, the helm-controller's Jobs,
field managers) is tested against the real control plane. Every call is recorded, so a test can
prove nothing was contacted.
"""

import difflib
import uuid
from dataclasses import dataclass

import yaml

from resources.kubernetes import KubernetesResource


@dataclass(frozen=True)
class FakeDiff:
    kind: str
    namespace: str
    name: str
    exists: bool
    changed: bool
    diff: str


@dataclass(frozen=True)
class FakeRollout:
    ready: bool
    reason: str


def _key(api_version, kind, name, namespace):
    return (api_version, kind, namespace or "", name)


# Dagster re-creates resources from their config for a run, so the state lives here, by id.
_STATE: dict[str, tuple[dict, list]] = {}


class FakeKube(KubernetesResource):
    """FAKE: see the module docstring."""

    kubeconfig_path: str = ""
    state_id: str = ""

    @classmethod
    def new(cls, kubeconfig_path: str) -> "FakeKube":
        state_id = uuid.uuid4().hex
        _STATE[state_id] = ({}, [])
        return cls(kubeconfig_path=kubeconfig_path, state_id=state_id)

    @property
    def _objects(self) -> dict:
        return _STATE[self.state_id][0]

    @property
    def _calls(self) -> list:
        return _STATE[self.state_id][1]

    @property
    def calls(self) -> list:
        return self._calls

    @property
    def objects(self) -> dict:
        return self._objects

    def get(self, api_version, kind, name, namespace=None):
        self._calls.append(("get", kind, namespace, name))
        return self._objects.get(_key(api_version, kind, name, namespace))

    def list(self, api_version, kind, namespace=None, label_selector=None):
        self._calls.append(("list", kind, namespace, label_selector))
        want = dict(p.split("=", 1) for p in (label_selector or "").split(",") if p)
        return [
            obj
            for (a, k, ns, _), obj in self._objects.items()
            if (a, k) == (api_version, kind)
            and (namespace is None or ns == namespace)
            and all(obj["metadata"].get("labels", {}).get(x) == v for x, v in want.items())
        ]

    def apply(self, manifest, *, field_manager, dry_run=False, force=False):
        meta = manifest["metadata"]
        self._calls.append(("apply", manifest["kind"], meta.get("namespace"), meta["name"]))
        key = _key(manifest["apiVersion"], manifest["kind"], meta["name"], meta.get("namespace"))
        if not dry_run:
            self._objects[key] = manifest
        return manifest

    def apply_diff(self, manifest, *, field_manager):
        meta = manifest["metadata"]
        self._calls.append(("apply_diff", manifest["kind"], meta.get("namespace"), meta["name"]))
        live = self._objects.get(
            _key(manifest["apiVersion"], manifest["kind"], meta["name"], meta.get("namespace"))
        )
        before = yaml.safe_dump(live["spec"]).splitlines() if live else []
        after = yaml.safe_dump(manifest["spec"]).splitlines()
        diff = "\n".join(difflib.unified_diff(before, after, "live", "desired", lineterm=""))
        return FakeDiff(
            manifest["kind"],
            meta.get("namespace"),
            meta["name"],
            live is not None,
            bool(diff),
            diff,
        )

    def rollout_status(self, kind, name, namespace):
        self._calls.append(("rollout_status", kind, namespace, name))
        return FakeRollout(True, "fake: always ready")

    def wait_for_rollout(self, kind, name, namespace, timeout_s):
        return self.rollout_status(kind, name, namespace)

    def pod_logs(self, name, namespace, tail_lines=20):
        return ""
