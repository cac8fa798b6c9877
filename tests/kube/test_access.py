"""Who may do what, answered by the real API server's RBAC: a pod's ServiceAccount token used
in-cluster style, SelfSubjectAccessReview and SubjectAccessReview."""

from pathlib import Path

import pytest

from resources.kubernetes import ApiRefused, KubernetesResource

pytestmark = pytest.mark.service

MANAGER = "piclusterops-tests"


def pod_reader(kube, namespace: str) -> None:
    """ServiceAccount `reader` may get and list pods in `namespace`, nothing else."""
    for manifest in (
        {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": {"name": "reader", "namespace": namespace},
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": {"name": "pod-reader", "namespace": namespace},
            "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]}],
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": {"name": "reader", "namespace": namespace},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "Role",
                "name": "pod-reader",
            },
            "subjects": [{"kind": "ServiceAccount", "name": "reader", "namespace": namespace}],
        },
    ):
        kube.apply(manifest, field_manager=MANAGER)


def token_for(kube, namespace: str, account: str) -> str:
    """A real bound token for the account (TokenRequest), as the kubelet mounts into a pod."""
    _status, body = kube._request(
        "POST",
        f"/api/v1/namespaces/{namespace}/serviceaccounts/{account}/token",
        obj=f"ServiceAccount/{namespace}/{account}",
        action="request a token for",
        body={
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenRequest",
            "spec": {"expirationSeconds": 3600},
        },
    )
    return body["status"]["token"]


@pytest.fixture
def in_a_pod(kube, kube_control_plane, namespace, tmp_path, monkeypatch):
    """This process as a pod of ServiceAccount `reader`: its token and the cluster CA in a
    stand-in for /var/run/secrets/kubernetes.io/serviceaccount, the service env set."""
    pod_reader(kube, namespace)
    mount = tmp_path / "serviceaccount"
    mount.mkdir()
    (mount / "token").write_text(token_for(kube, namespace, "reader"))
    (mount / "ca.crt").write_bytes(kube_control_plane.ca_cert.read_bytes())
    (mount / "namespace").write_text(namespace)
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "127.0.0.1")
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", str(kube_control_plane.port))
    return KubernetesResource(service_account_dir=str(mount))


def test_in_a_pod_the_service_account_is_used_and_rbac_answers(in_a_pod, namespace):
    assert in_a_pod.in_cluster()
    assert in_a_pod.list("v1", "Pod", namespace=namespace) == []
    with pytest.raises(ApiRefused) as refused:
        in_a_pod.get("v1", "Secret", "anything", namespace)
    assert refused.value.status == 403
    message = str(refused.value)
    assert f"Secret/{namespace}/anything" in message
    assert "ServiceAccount token in" in message
    assert in_a_pod.can_i("list", "pods", namespace=namespace)
    assert not in_a_pod.can_i("get", "secrets", namespace=namespace)
    assert not in_a_pod.can_i("list", "pods", namespace="kube-system")


def test_a_configured_kubeconfig_wins_over_the_pod_service_account(
    in_a_pod, kube_control_plane, namespace
):
    admin = KubernetesResource(
        kubeconfig_path=str(kube_control_plane.admin_kubeconfig),
        service_account_dir=in_a_pod.service_account_dir,
    )
    assert not admin.in_cluster()
    assert admin.can_i("get", "secrets", namespace=namespace)


def test_a_token_the_api_server_did_not_sign_is_refused(in_a_pod, namespace):
    in_a_pod_dir = Path(in_a_pod.service_account_dir)
    (in_a_pod_dir / "token").write_text("eyJhbGciOiJSUzI1NiJ9.e30.forged")
    with pytest.raises(ApiRefused) as refused:
        KubernetesResource(service_account_dir=str(in_a_pod_dir)).list(
            "v1", "Pod", namespace=namespace
        )
    assert refused.value.status == 401
    assert "forged" not in str(refused.value)


def test_access_reviews_answer_for_a_service_account_and_a_user(kube, namespace):
    pod_reader(kube, namespace)
    reader = f"system:serviceaccount:{namespace}:reader"
    assert kube.access_review(reader, "list", "pods", namespace=namespace)
    assert not kube.access_review(reader, "delete", "pods", namespace=namespace)
    assert not kube.access_review(reader, "get", "secrets", namespace=namespace)
    assert not kube.access_review("someone", "list", "pods", namespace=namespace)
    # Groups count: system:masters may do anything.
    assert kube.access_review("someone", "delete", "nodes", groups=("system:masters",))
    assert kube.can_i("create", "pods", subresource="eviction", namespace=namespace)
