"""Checks on rendered overlays that no schema can express: the rules the manifests promise.

Schemas say a field is spelled right and has the right type; these say the objects agree with each
other and with the code:
- every Deployment's pods run non-root, read-only, without capabilities or privilege escalation,
  with seccomp, probes (/healthz live, /readyz ready), requests and limits, an emptyDir on /tmp, a
  pinned image, and a grace period longer than preStop + drain + relay flush;
- each service logs in to Kafka as its own KafkaUser, whose group ACL is the service's consumer group;
- no Secret is in the manifests, and every Secret they read is one an operator writes
  (CloudNativePG `<cluster>-app`, Strimzi's KafkaUser and cluster CA Secrets) or one the platform
  provides (listed in docs/kubernetes.md);
- the KafkaTopics are exactly the topics of contracts/src/buurtkracht_contracts/topics.py with
  its retention, and no topic is replicated more than there are brokers;
- every ScaledObject scales a Deployment, uses the service's consumer group, reads existing topics,
  keeps maxReplicaCount at or below their partitions, and keeps at least one replica (the API);
- every database archives its WAL through the Barman Cloud Plugin to an ObjectStore of the overlay, has a
  WAL volume and a nightly plugin backup; with standbys it replicates synchronously, never waiting for
  more standbys than it has, and with dataDurability required one standby may fail without stopping
  writes; an egress policy that selects its pods lets them reach the object store;
- Services, PodDisruptionBudgets and the Ingresses point at pods and ports that exist, and a setting that names
  an in-cluster URL (`BK_INITIATIVES_URL=http://initiatives:8080`) names a Service and one of its ports;
  the site's public URL (`BK_PUBLIC_URL`, and `BK_PUBLIC_BASE_URL` the e-mails link to) is an Ingress's host.

    python policy.py RENDERED.yaml...    (k8s.mk's k8s-lint passes the rendered overlays)
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlparse

import yaml

REPO = Path(__file__).resolve().parents[2]
TOPICS_MODULE = REPO / "contracts" / "src" / "buurtkracht_contracts" / "topics.py"
# Secrets the platform team creates (docs/kubernetes.md, "Secrets"); every other one comes from an operator.
PLATFORM_SECRETS = {
    "notifications-smtp",
    "portal-sign-in",
    "initiatives-db-backup-s3",
    "vouchers-db-backup-s3",
    "notifications-db-backup-s3",
    "portal-db-backup-s3",
}
BARMAN_CLOUD_PLUGIN = "barman-cloud.cloudnative-pg.io"


def contract_topics() -> dict[str, int]:
    """topic name -> retention.ms, from the contracts (a module without dependencies: loaded by path)."""
    spec = importlib.util.spec_from_file_location("buurtkracht_topics", TOPICS_MODULE)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return {topic.name: topic.retention_ms for topic in module.all_topics()}


def objects(path: Path) -> list[dict]:
    with path.open() as stream:
        return [document for document in yaml.safe_load_all(stream) if document]


def of_kind(docs: list[dict], kind: str) -> Iterator[dict]:
    return (doc for doc in docs if doc.get("kind") == kind)


def matches(selector: dict, labels: dict) -> bool:
    return all(labels.get(key) == value for key, value in selector.items())


def check_deployment(deployment: dict, settings: dict[str, str], problems: list[str]) -> None:
    name = deployment["metadata"]["name"]
    pod = deployment["spec"]["template"]["spec"]
    where = f"Deployment {name}"
    pod_security = pod.get("securityContext", {})
    if pod.get("automountServiceAccountToken") is not False:
        problems.append(f"{where}: automountServiceAccountToken must be false (the services never call the API)")
    if "replicas" in deployment["spec"]:
        problems.append(f"{where}: sets replicas, but its ScaledObject owns them")
    volumes = {volume["name"]: volume for volume in pod.get("volumes", [])}
    grace = pod.get("terminationGracePeriodSeconds", 30)
    for container in pod["containers"]:
        cname = f"{where} container {container['name']}"
        security = container.get("securityContext", {})

        def setting(key: str, container_security: dict = security) -> object:
            return container_security.get(key, pod_security.get(key))

        if setting("runAsNonRoot") is not True:
            problems.append(f"{cname}: runAsNonRoot must be true")
        if not isinstance(setting("runAsUser"), int) or setting("runAsUser") == 0:
            problems.append(f"{cname}: runAsUser must be a numeric non-root UID")
        if security.get("readOnlyRootFilesystem") is not True:
            problems.append(f"{cname}: readOnlyRootFilesystem must be true")
        if security.get("allowPrivilegeEscalation") is not False:
            problems.append(f"{cname}: allowPrivilegeEscalation must be false")
        if security.get("capabilities", {}).get("drop") != ["ALL"]:
            problems.append(f"{cname}: capabilities must drop ALL")
        if security.get("capabilities", {}).get("add"):
            problems.append(f"{cname}: adds capabilities")
        if (setting("seccompProfile") or {}).get("type") != "RuntimeDefault":
            problems.append(f"{cname}: seccompProfile must be RuntimeDefault")
        image = container.get("image", "")
        if "@sha256:" not in image and (":" not in image.rsplit("/", 1)[-1] or image.endswith(":latest")):
            problems.append(f"{cname}: image {image!r} has no pinned tag (set it in the overlay's images:)")
        for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
            if probe not in container:
                problems.append(f"{cname}: no {probe}")
        if container.get("livenessProbe", {}).get("httpGet", {}).get("path") != "/healthz":
            problems.append(f"{cname}: liveness must ask /healthz (cheap, no dependencies)")
        if container.get("readinessProbe", {}).get("httpGet", {}).get("path") != "/readyz":
            problems.append(f"{cname}: readiness must ask /readyz (database, Kafka, workers)")
        resources = container.get("resources", {})
        for needed in ("requests.cpu", "requests.memory", "limits.memory"):
            section, key = needed.split(".")
            if key not in resources.get(section, {}):
                problems.append(f"{cname}: no resources.{needed}")
        tmp = [mount for mount in container.get("volumeMounts", []) if mount["mountPath"] == "/tmp"]
        if not tmp or "emptyDir" not in volumes.get(tmp[0]["name"], {}):
            problems.append(f"{cname}: /tmp must be an emptyDir (the root filesystem is read-only)")
        pre_stop = container.get("lifecycle", {}).get("preStop", {}).get("exec", {}).get("command", [])
        sleep = int(pre_stop[1]) if len(pre_stop) == 2 and pre_stop[0] == "sleep" else 0
        if not sleep:
            problems.append(f"{cname}: no preStop sleep (endpoints must be removed before the drain)")
        drain = float(settings.get("BK_SHUTDOWN_GRACE_SECONDS", 20))
        # the HTTP drain and the relay's flush may each take the whole grace time
        if grace < sleep + 2 * drain + 5:
            problems.append(f"{cname}: terminationGracePeriodSeconds {grace} < preStop {sleep} + 2 x drain {drain} + 5")
        if not any(port.get("name") == "http" for port in container.get("ports", [])):
            problems.append(f"{cname}: no port named http")


def selects(selector: dict, labels: dict) -> bool:
    """A label selector (matchLabels and matchExpressions) against a pod's labels."""
    if not matches(selector.get("matchLabels", {}), labels):
        return False
    for expression in selector.get("matchExpressions", []):
        key, operator, values = expression["key"], expression["operator"], expression.get("values", [])
        if operator == "In" and labels.get(key) not in values:
            return False
        if operator == "NotIn" and labels.get(key) in values:
            return False
        if operator == "Exists" and key not in labels:
            return False
        if operator == "DoesNotExist" and key in labels:
            return False
    return True


def endpoint_port(url: str) -> int:
    parsed = urlparse(url)
    return parsed.port or (80 if parsed.scheme == "http" else 443)


def check_databases(docs: list[dict], known_secrets: set[str], problems: list[str]) -> None:
    stores = {doc["metadata"]["name"]: doc for doc in of_kind(docs, "ObjectStore")}
    archived_to: set[str] = set()
    egress_policies = [doc for doc in of_kind(docs, "NetworkPolicy") if "Egress" in doc["spec"].get("policyTypes", [])]
    for cluster in of_kind(docs, "Cluster"):
        name, spec = cluster["metadata"]["name"], cluster["spec"]
        where = f"Cluster {name}"
        archivers = [
            plugin
            for plugin in spec.get("plugins", [])
            if plugin["name"] == BARMAN_CLOUD_PLUGIN and plugin.get("isWALArchiver") and plugin.get("enabled", True)
        ]
        store_name = archivers[0].get("parameters", {}).get("barmanObjectName") if archivers else None
        if store_name not in stores:
            problems.append(f"{where}: archives no WAL to an ObjectStore here (plugin {BARMAN_CLOUD_PLUGIN})")
        archived_to.add(store_name or "")
        if "walStorage" not in spec:
            problems.append(f"{where}: no walStorage (WAL waiting for the archive would fill the data volume)")
        backups = [
            backup
            for backup in of_kind(docs, "ScheduledBackup")
            if backup["spec"]["cluster"]["name"] == name
            and backup["spec"].get("method") == "plugin"
            and backup["spec"].get("pluginConfiguration", {}).get("name") == BARMAN_CLOUD_PLUGIN
        ]
        if not backups:
            problems.append(f"{where}: no ScheduledBackup with method plugin ({BARMAN_CLOUD_PLUGIN})")

        standbys = spec.get("instances", 1) - 1
        synchronous = spec.get("postgresql", {}).get("synchronous")
        if synchronous is None and standbys > 0:
            problems.append(f"{where}: {standbys} standby(s) but no synchronous replication (a failover loses commits)")
        if synchronous is not None:
            number, durability = synchronous["number"], synchronous.get("dataDurability", "required")
            if number > standbys:
                problems.append(f"{where}: waits for {number} synchronous standby(s) but has {standbys}")
            elif durability == "required" and standbys - number < 1:
                problems.append(
                    f"{where}: dataDurability required with {number} of {standbys} standby(s): "
                    "one standby down would stop every write"
                )

        # the pods reach the object store: unless no egress policy selects them at all
        pod_labels = dict(spec.get("inheritedMetadata", {}).get("labels", {}))
        pod_labels |= {"cnpg.io/cluster": name, "cnpg.io/podRole": "instance"}
        policies = [policy for policy in egress_policies if selects(policy["spec"]["podSelector"], pod_labels)]
        if policies and store_name in stores:
            port = endpoint_port(stores[store_name]["spec"]["configuration"].get("endpointURL", "https://s3"))
            allowed = any(
                not rule.get("ports") or any(entry.get("port") in (None, port) for entry in rule["ports"])
                for policy in policies
                for rule in policy["spec"].get("egress", [])
            )
            if not allowed:
                problems.append(
                    f"{where}: egress policies {[p['metadata']['name'] for p in policies]} select its pods "
                    f"but none allows port {port} of the object store (WAL archiving would stop)"
                )

    for name, store in stores.items():
        if name not in archived_to:
            problems.append(f"ObjectStore {name}: no Cluster archives to it")
        configuration = store["spec"]["configuration"]
        references = [
            ref for ref in configuration.get("s3Credentials", {}).values() if isinstance(ref, dict) and "name" in ref
        ]
        references += [configuration["endpointCA"]] if "endpointCA" in configuration else []
        for ref in references:
            if ref["name"] not in known_secrets:
                problems.append(
                    f"ObjectStore {name}: reads Secret {ref['name']}, which no operator writes and the platform "
                    "is not asked for"
                )


def check(path: Path, topics_in_contracts: dict[str, int]) -> list[str]:
    docs = objects(path)
    problems: list[str] = []

    if any(doc["kind"] == "Secret" for doc in docs):
        problems.append("a Secret is in the manifests: secrets are referenced, never committed")

    config = {doc["metadata"]["name"]: doc.get("data", {}) for doc in of_kind(docs, "ConfigMap")}
    deployments = {doc["metadata"]["name"]: doc for doc in of_kind(docs, "Deployment")}
    for deployment in deployments.values():
        settings: dict[str, str] = {}
        for container in deployment["spec"]["template"]["spec"]["containers"]:
            for source in container.get("envFrom", []):
                settings |= config.get(source.get("configMapRef", {}).get("name"), {})
        check_deployment(deployment, settings, problems)
        if settings.get("BK_SERVICE_NAME") != deployment["metadata"]["name"]:
            problems.append(
                f"Deployment {deployment['metadata']['name']}: BK_SERVICE_NAME is "
                f"{settings.get('BK_SERVICE_NAME')!r}, not the Deployment's name (the consumer group id)"
            )

    # Secrets: written by an operator or provided by the platform
    clusters = {doc["metadata"]["name"] for doc in of_kind(docs, "Cluster")}
    users = {doc["metadata"]["name"] for doc in of_kind(docs, "KafkaUser")}
    kafkas = {doc["metadata"]["name"] for doc in of_kind(docs, "Kafka")}
    known = {f"{name}-app" for name in clusters} | users | {f"{name}-cluster-ca-cert" for name in kafkas}
    known |= PLATFORM_SECRETS
    for deployment in deployments.values():
        pod = deployment["spec"]["template"]["spec"]
        referenced = [volume["secret"]["secretName"] for volume in pod.get("volumes", []) if "secret" in volume]
        for container in pod["containers"]:
            referenced += [
                env["valueFrom"]["secretKeyRef"]["name"]
                for env in container.get("env", [])
                if "secretKeyRef" in env.get("valueFrom", {})
            ]
        for name in referenced:
            if name not in known:
                problems.append(
                    f"Deployment {deployment['metadata']['name']}: reads Secret {name}, which no "
                    "operator writes and the platform is not asked for"
                )
    # Kafka identity: the username is a KafkaUser, the password its Secret, its group ACL the service's
    acls = {doc["metadata"]["name"]: doc["spec"]["authorization"]["acls"] for doc in of_kind(docs, "KafkaUser")}
    for name, deployment in deployments.items():
        settings = {}
        container = deployment["spec"]["template"]["spec"]["containers"][0]
        for source in container.get("envFrom", []):
            settings |= config.get(source.get("configMapRef", {}).get("name"), {})
        username = settings.get("BK_KAFKA_SASL_USERNAME")
        password = [
            env["valueFrom"]["secretKeyRef"]["name"]
            for env in container.get("env", [])
            if env["name"] == "BK_KAFKA_SASL_PASSWORD" and "secretKeyRef" in env.get("valueFrom", {})
        ]
        if username not in users or password != [username]:
            problems.append(
                f"Deployment {name}: Kafka user {username!r} with the password of {password}: "
                "both must be the service's KafkaUser"
            )
        groups = [acl["resource"].get("name") for acl in acls.get(username, []) if acl["resource"]["type"] == "group"]
        if groups != [name]:
            problems.append(f"KafkaUser {username}: group ACLs {groups}, but the consumer group is {name!r}")
    for auth in of_kind(docs, "TriggerAuthentication"):
        for ref in auth["spec"].get("secretTargetRef", []):
            if ref["name"] not in known:
                problems.append(f"TriggerAuthentication {auth['metadata']['name']}: unknown Secret {ref['name']}")

    # Databases: replication, WAL archiving and backups
    check_databases(docs, known, problems)

    # Kafka: topics as in the contracts, replication within the brokers
    brokers = sum(
        pool["spec"]["replicas"] for pool in of_kind(docs, "KafkaNodePool") if "broker" in pool["spec"]["roles"]
    )
    topics = {doc["spec"].get("topicName", doc["metadata"]["name"]): doc for doc in of_kind(docs, "KafkaTopic")}
    if set(topics) != set(topics_in_contracts):
        problems.append(f"KafkaTopics {sorted(topics)} are not the contracts' topics {sorted(topics_in_contracts)}")
    for name, topic in topics.items():
        spec = topic["spec"]
        if name in topics_in_contracts and int(spec["config"].get("retention.ms", -1)) != topics_in_contracts[name]:
            problems.append(f"KafkaTopic {name}: retention.ms differs from the contracts' {topics_in_contracts[name]}")
        if spec["replicas"] > brokers:
            problems.append(f"KafkaTopic {name}: {spec['replicas']} replicas, but {brokers} broker(s)")
        min_isr = int(spec["config"].get("min.insync.replicas", 1))
        if spec["replicas"] >= 3 and min_isr != spec["replicas"] - 1:
            problems.append(
                f"KafkaTopic {name}: min.insync.replicas {min_isr} with {spec['replicas']} replicas "
                "(an acknowledged event must survive one broker, and one broker may be down)"
            )
        if min_isr > spec["replicas"]:
            problems.append(f"KafkaTopic {name}: min.insync.replicas above replicas: nothing could be written")
    for kafka in of_kind(docs, "Kafka"):
        kafka_config = kafka["spec"]["kafka"].get("config", {})
        for key in (
            "default.replication.factor",
            "offsets.topic.replication.factor",
            "transaction.state.log.replication.factor",
        ):
            if int(kafka_config.get(key, 1)) > brokers:
                problems.append(f"Kafka {kafka['metadata']['name']}: {key} above the {brokers} broker(s)")

    # KEDA
    for scaled in of_kind(docs, "ScaledObject"):
        spec = scaled["spec"]
        target = spec["scaleTargetRef"]["name"]
        where = f"ScaledObject {scaled['metadata']['name']}"
        if target not in deployments:
            problems.append(f"{where}: scales {target}, which is no Deployment here")
        if spec.get("minReplicaCount", 0) < 1:
            problems.append(f"{where}: minReplicaCount below 1 would stop the HTTP API")
        if spec.get("minReplicaCount", 0) > spec.get("maxReplicaCount", 100):
            problems.append(f"{where}: minReplicaCount above maxReplicaCount")
        kafka_triggers = [trigger for trigger in spec["triggers"] if trigger["type"] == "kafka"]
        if not kafka_triggers:
            problems.append(f"{where}: no kafka trigger")
        for trigger in kafka_triggers:
            metadata = trigger["metadata"]
            if metadata.get("consumerGroup") != target:
                problems.append(
                    f"{where}: consumerGroup {metadata.get('consumerGroup')!r} is not the service's group id {target!r}"
                )
            topic = topics.get(metadata.get("topic"))
            if topic is None:
                problems.append(f"{where}: topic {metadata.get('topic')!r} is no KafkaTopic")
            elif spec["maxReplicaCount"] > topic["spec"]["partitions"]:
                problems.append(
                    f"{where}: maxReplicaCount {spec['maxReplicaCount']} above the "
                    f"{topic['spec']['partitions']} partitions of {metadata['topic']}"
                )
            namespace = scaled["metadata"].get("namespace")
            if f".{namespace}.svc:" not in metadata.get("bootstrapServers", ""):
                problems.append(
                    f"{where}: bootstrapServers {metadata.get('bootstrapServers')!r} is not in "
                    f"namespace {namespace} (KEDA resolves it from its own namespace)"
                )

    # Services, PodDisruptionBudgets, Ingress
    pod_labels = {name: d["spec"]["template"]["metadata"]["labels"] for name, d in deployments.items()}
    services = {doc["metadata"]["name"]: doc for doc in of_kind(docs, "Service")}
    for kind, selector_of in (
        ("Service", lambda d: d["spec"]["selector"]),
        ("PodDisruptionBudget", lambda d: d["spec"]["selector"]["matchLabels"]),
    ):
        for doc in of_kind(docs, kind):
            if not any(matches(selector_of(doc), labels) for labels in pod_labels.values()):
                problems.append(f"{kind} {doc['metadata']['name']}: selects no Deployment's pods")
    hosts = {rule.get("host") for ingress in of_kind(docs, "Ingress") for rule in ingress["spec"]["rules"]}
    for name, data in config.items():
        for key, value in data.items():
            if not key.endswith("_URL") or not isinstance(value, str):
                continue
            url = urlparse(value)
            # the site's own address (sign-in's redirect URI, the e-mails' links) is a host an Ingress serves
            if key in ("BK_PUBLIC_URL", "BK_PUBLIC_BASE_URL") and url.hostname not in hosts:
                problems.append(f"ConfigMap {name}: {key}={value}, but no Ingress serves {url.hostname}")
            # a host without a dot is a Service of this namespace
            if url.scheme in ("http", "https") and url.hostname and "." not in url.hostname:
                service = services.get(url.hostname)
                ports = {port["port"] for port in service["spec"]["ports"]} if service else set()
                if endpoint_port(value) not in ports:
                    problems.append(
                        f"ConfigMap {name}: {key}={value} names no Service port here ({url.hostname}: {sorted(ports)})"
                    )
    for ingress in of_kind(docs, "Ingress"):
        for rule in ingress["spec"]["rules"]:
            for path in rule["http"]["paths"]:
                backend = path["backend"]["service"]
                service = services.get(backend["name"])
                port_names = {port.get("name") for port in service["spec"]["ports"]} if service else set()
                if backend["port"].get("name") not in port_names:
                    problems.append(
                        f"Ingress {ingress['metadata']['name']}: {path['path']} goes to "
                        f"{backend['name']}:{backend['port']}, which does not exist"
                    )
    return problems


def main() -> None:
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    topics_in_contracts = contract_topics()
    failed = False
    for argument in sys.argv[1:]:
        path = Path(argument)
        problems = check(path, topics_in_contracts)
        for problem in problems:
            print(f"{path.name}: {problem}")
        failed |= bool(problems)
        print(f"{path.name}: {'FAILED' if problems else 'ok'} ({len(objects(path))} objects)")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
