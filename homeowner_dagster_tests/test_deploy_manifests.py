"""The Kubernetes manifests beside the Helm values name the pods and ports the values create.

Not a cluster test (none is available here): it keeps deploy/k8s/*.yaml and
deploy/helm/values.yaml from drifting apart, which would leave a policy selecting no pod.
"""

from __future__ import annotations

import yaml

from homeowner_dagster import settings

DEPLOY = settings.project_root() / "deploy"


def _docs(name: str) -> list[dict]:
    return list(yaml.safe_load_all((DEPLOY / "k8s" / name).read_text()))


def test_network_policies_select_the_values_pods_and_ports() -> None:
    values = yaml.safe_load((DEPLOY / "helm" / "values.yaml").read_text())
    [code_server] = values["dagster-user-deployments"]["deployments"]
    webserver_port = values["dagsterWebserver"]["service"]["port"]
    ui, code = _docs("network-policy.yaml")
    assert ui["spec"]["podSelector"]["matchLabels"] == {"component": "dagster-webserver"}
    assert [p["port"] for p in ui["spec"]["ingress"][0]["ports"]] == [webserver_port]
    [source] = ui["spec"]["ingress"][0]["from"]
    assert source["podSelector"]["matchLabels"] == {"app.kubernetes.io/name": "ingress-nginx"}
    assert values["ingress"]["annotations"][
        "nginx.ingress.kubernetes.io/auth-url"
    ]  # the ingress asks oauth2-proxy
    assert code["spec"]["podSelector"]["matchLabels"] == {
        "component": "user-deployments", "deployment": code_server["name"]
    }  # fmt: skip
    assert [p["port"] for p in code["spec"]["ingress"][0]["ports"]] == [code_server["port"]]
    [allowed] = code["spec"]["ingress"][0]["from"][0]["podSelector"]["matchExpressions"]
    assert sorted(allowed["values"]) == ["dagster-daemon", "dagster-webserver"]
    assert all(d["spec"]["policyTypes"] == ["Ingress"] for d in (ui, code))


def test_the_watchdog_runs_every_few_minutes_with_its_state_on_a_volume() -> None:
    claim, cron = _docs("watchdog-cronjob.yaml")
    assert (
        cron["spec"]["schedule"] == "*/5 * * * *" and cron["spec"]["concurrencyPolicy"] == "Forbid"
    )
    pod = cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    [container] = pod["containers"]
    assert container["command"] == ["homeowner", "watchdog"]
    env = {e["name"]: e["value"] for e in container["env"]}
    mount = container["volumeMounts"][0]["mountPath"]
    assert env["HOMEOWNER_WATCHDOG_STATE"].startswith(mount + "/")
    assert pod["volumes"][0]["persistentVolumeClaim"]["claimName"] == claim["metadata"]["name"]
