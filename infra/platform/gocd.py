"""GoCD server and agents from the official `gocd/gocd` chart, configured by code.

The chart installs the server; a configure Job (infra/configure/gocd.py) then ensures, through
GoCD's API, the Kubernetes elastic-agent cluster profile, the ML agent profile, one config
repository per model repository, and password-file security with a generated admin password.
Agents run as a ServiceAccount the kit declares, so the application environments can grant it
deploy rights (and nothing else); their environment is the wiring edges they consume.
Config keys read: gocdAgents, gocdStorageGi, storageClass, exposure, profile, modelRepos,
imageRegistry.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

import yaml

from infra.config import Profile, StackConfig
from infra.platform import gitea
from infra.platform.access import service_type
from infra.platform.configure_job import configure_job
from infra.platform.context import BuildContext
from infra.platform.hosts import public_url
from infra.platform.kit_images import GOCD_AGENT_ML, MODEL_RUNTIME, PYTHON_IMAGE
from infra.platform.layout import Namespaces
from infra.platform.model import (
    PART_OF,
    ChartPin,
    Container,
    Credentials,
    Endpoint,
    GeneratedPassword,
    Image,
    KitSecret,
    Labels,
    Resources,
    Service,
    ServiceSettings,
    Stage,
    WiringEdge,
    Workload,
)
from infra.platform.tenants import DEFAULT_PROFILE, DEFAULT_SERVICE_ACCOUNT, Tenant
from infra.platform.variables import (
    MLFLOW_TRACKING_PASSWORD,
    MLFLOW_TRACKING_USERNAME,
    client_variables,
    tenant_variables,
)

CHART = ChartPin(repo="https://gocd.github.io/helm-chart", chart="gocd", version="2.18.0")
SERVER_IMAGE = Image(repository="gocd/gocd-server", tag="v26.1.0")
AGENT_BASE_IMAGE = Image(repository="gocd/gocd-agent-wolfi", tag="v26.1.0")
"""The chart's agent image; the kit's ML agent image (images/gocd-agent-ml) is built FROM it."""
RELEASE = "gocd"
HTTP_PORT = 8153
AGENT_SERVICE_ACCOUNT = DEFAULT_SERVICE_ACCOUNT
"""The single team's agents (a participant's are `gocd-agent-<name>`, see tenants.py)."""
ELASTIC_AGENT_PLUGIN = (
    "GOCD_PLUGIN_INSTALL_kubernetes-elastic-agents",
    "https://github.com/gocd/kubernetes-elastic-agents/releases/download/v5.0.2-779/"
    "kubernetes-elastic-agent-5.0.2-779.jar",
)
"""The chart's default `server.env.extraEnvVars` entry. Helm replaces lists whole, so setting
that list without it would silently drop the elastic-agent plugin."""
ELASTIC_AGENT_PLUGIN_ID = "cd.go.contrib.elasticagent.kubernetes"
PASSWORD_FILE_PLUGIN_ID = "cd.go.authentication.passwordfile"
YAML_CONFIG_PLUGIN_ID = "yaml.config.plugin"
CLUSTER_PROFILE_ID = "cd4ml-kubernetes"
ML_PROFILE_ID = DEFAULT_PROFILE
"""The elastic agent profile every job of a model pipeline names (`elastic_profile_id`)."""
AUTH_CONFIG_ID = "cd4ml-password-file"
ADMIN_USER = "cd4ml-admin"
ADMIN_SECRET = "gocd-admin"
PASSWORD_FILE_SECRET = "gocd-password-file"
PASSWORD_FILE_KEY = "password.properties"
PASSWORD_FILE_DIR = "/etc/cd4ml/gocd-auth"
ML_APP_CHART_PATH = "/opt/cd4ml/charts/ml-app"
"""Where the ML agent image carries charts/ml-app for the pipelines' deploy stages."""
CONFIGURE_TIMEOUT_SECONDS = 1200

SERVER_HEAP_MI = {Profile.LAPTOP: 512, Profile.CLUSTER: 1024}
SERVER_METASPACE_MAX_MI = 400
"""The server's own JVM default, passed before the kit's options (gocd/gocd 26.1.0
buildSrc/.../InstallerTypeServer.groovy l.59-66: -Xms512m -Xmx1024m -XX:MaxMetaspaceSize=400m; the kit's
-Xmx comes later on the command line and wins)."""
JVM_NATIVE_MI = 240 + 128
"""Beyond heap and metaspace: HotSpot's reserved code cache (240 MiB with tiered compilation) and about
128 MiB of threads, GC structures, direct buffers and JRuby's native stubs (an estimate: GoCD does not run
here to measure)."""


SERVER_SERVICE_ACCOUNT = RELEASE
"""The chart's server ServiceAccount: gocd.fullname, the release name (gocd chart 2.18.0 _helpers.tpl
l.30-36)."""
SERVER_CLUSTER_ROLE = "cd4ml-gocd-server-cluster-reads"
"""What the elastic-agent plugin needs cluster-wide: nodes and events, list only. Its pods need rights only
in the namespace it starts them in (kubernetes-elastic-agents v5.0.2-779 docs/configure_cluster_profile.md
l.30-39), so the kit binds those in a Role there, and names this ClusterRole as the chart's `rbac.roleRef`,
in place of the chart's own, which grants `*` on pods cluster-wide (templates/gocd-cluster-role.yaml)."""


def server_rights(namespace: str) -> tuple[dict[str, Any], ...]:
    """The GoCD server's rights, least privilege: cluster-wide reads; pods only in its own namespace."""
    labels = dict(PART_OF)
    subject = [{"kind": "ServiceAccount", "name": SERVER_SERVICE_ACCOUNT, "namespace": namespace}]
    return (
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
         "metadata": {"name": SERVER_CLUSTER_ROLE, "labels": labels},
         "rules": [{"apiGroups": [""], "resources": ["nodes", "events"], "verbs": ["list"]}]},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
         "metadata": {"name": "gocd-elastic-agent-pods", "namespace": namespace, "labels": labels},
         # What the plugin calls (v5.0.2-779 src/main): pods create (KubernetesInstanceFactory.java l.147),
         # get and list (KubernetesAgentInstances.java l.151-220), delete (KubernetesInstance.java l.33), and
         # a container's log for its status report (KubernetesElasticAgent.java l.133): not the docs' `*`.
         "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["create", "get", "list", "delete"]},
                   {"apiGroups": [""], "resources": ["pods/log"], "verbs": ["get"]}]},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
         "metadata": {"name": "gocd-elastic-agent-pods", "namespace": namespace, "labels": labels},
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "gocd-elastic-agent-pods"},
         "subjects": subject},
    )


def jvm_footprint_mi(heap_mi: int) -> int:
    """What the server's JVM may take at most: the container limit must hold it, or the kernel kills GoCD."""
    return heap_mi + SERVER_METASPACE_MAX_MI + JVM_NATIVE_MI


SERVER_SIZES = {
    Profile.LAPTOP: Resources(250, 1024, 1000, 1280),
    Profile.CLUSTER: Resources(500, 1536, 2000, 2048),
}
SERVER_HEALTH_CHECK = {
    Profile.LAPTOP: {"initialDelaySeconds": 90, "periodSeconds": 15, "failureThreshold": 40},
    Profile.CLUSTER: {"initialDelaySeconds": 90, "periodSeconds": 15, "failureThreshold": 20},
}
"""The chart's liveness budget is 90 + 15 x 10 = 240 s (gocd chart 2.18.0 values.yaml l.131-137, the
same values for readiness, templates/gocd-server-deployment.yaml l.99-112; no startup probe): a first
start on one laptop CPU downloads the elastic-agent plugin and creates its database, and must not be
killed half-way. 10 minutes on a laptop, 5.25 on a cluster."""
AGENT_SIZES = {
    Profile.LAPTOP: Resources(100, 256, 1000, 2048),
    Profile.CLUSTER: Resources(250, 512, 2000, 4096),
}
AGENT_USER = 1000
"""The `go` user of GoCD's agent images."""


SERVER_PODS: Labels = (("app", "gocd"), ("release", RELEASE), ("component", "server"))
"""The chart's server pod labels (gocd.name is the chart name)."""
AGENT_ROLE: Labels = (("app.kubernetes.io/component", "gocd-agent"),)
"""On every agent pod, elastic or static: what the agents' API-server and internet egress select."""


def agent_pods(tenant: Tenant) -> Labels:
    """A tenant's agent pods: the role plus the tenant, so each tenant's agents are their own node."""
    return AGENT_ROLE + (("cd4ml.dev/tenant", tenant.name),)


def endpoint(ns: Namespaces) -> Endpoint:
    return Endpoint(f"{RELEASE}-server", ns.gocd, HTTP_PORT, path="/go")


def admin_credentials(ns: Namespaces) -> Credentials:
    return Credentials(namespace=ns.gocd, secret=ADMIN_SECRET)


def agent_env(edges: tuple[WiringEdge, ...], ns: Namespaces, model_runtime: Image,
              tenant: Tenant, app_login_secret: str | None = None) -> list[dict[str, Any]]:
    """Agent environment from the agents' outgoing edges (a switched-off service leaves no var), plus
    what a deploy stage passes to charts/ml-app."""
    connects = {e.provider.id: e for e in edges if e.kind == "connect" and e.endpoint is not None}
    env: list[dict[str, Any]] = [
        {"name": name, "value": value}
        for name, value in client_variables({p: e.endpoint for p, e in connects.items() if e.endpoint}).items()]
    mlflow = connects.get("mlflow")
    if mlflow and mlflow.credentials:
        env += [{"name": MLFLOW_TRACKING_USERNAME, "valueFrom": mlflow.credentials.username.as_env_source()},
                {"name": MLFLOW_TRACKING_PASSWORD, "valueFrom": mlflow.credentials.password.as_env_source()}]
    if mlflow and app_login_secret:  # what a deploy stage hands charts/ml-app (mlflow.credentialsSecret)
        env.append({"name": "CD4ML_MLFLOW_LOGIN_SECRET", "value": app_login_secret})
    deploy_targets = [edge.provider.namespace for edge in edges if edge.kind == "deploy"]
    if deploy_targets:
        env.append({"name": "CD4ML_DEPLOY_NAMESPACES", "value": ",".join(deploy_targets)})
        by_namespace = {namespace: name for name, namespace in ns.apps}
        env += [{"name": f"CD4ML_NAMESPACE_{by_namespace[target].upper().replace('-', '_')}", "value": target}
                for target in deploy_targets]
    env += [{"name": name, "value": value} for name, value in tenant_variables(tenant).items()]
    env += [{"name": "CD4ML_ML_APP_CHART", "value": ML_APP_CHART_PATH},
            {"name": "CD4ML_MODEL_RUNTIME_REPOSITORY", "value": f"{model_runtime.registry}/{model_runtime.repository}"},
            {"name": "CD4ML_MODEL_RUNTIME_TAG", "value": model_runtime.tag}]
    return env


def agent_pod(image: Image, env: list[dict[str, str]], resources: Resources,
              service_account: str = AGENT_SERVICE_ACCOUNT, labels: Labels = AGENT_ROLE) -> dict[str, Any]:
    """The pod the elastic-agent plugin starts for each ML job (PodSpecType yaml); the plugin
    fills in the `{{ POD_POSTFIX }}`/`{{ CONTAINER_POSTFIX }}` placeholders and its own env."""
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": f"{service_account}-{{{{ POD_POSTFIX }}}}",
                     "labels": {**PART_OF, **dict(labels)}},
        "spec": {
            "serviceAccountName": service_account,
            # The token is what kubectl/helm deploy with; its rights are the app namespaces' RoleBindings.
            "automountServiceAccountToken": True,
            "securityContext": {"runAsNonRoot": True, "runAsUser": AGENT_USER, "runAsGroup": 0,
                                "seccompProfile": {"type": "RuntimeDefault"}},
            "containers": [{
                "name": "gocd-agent-container-{{ CONTAINER_POSTFIX }}",
                "image": image.ref,
                "imagePullPolicy": "IfNotPresent",
                "env": env,
                "resources": resources.as_k8s(),
                "securityContext": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}},
            }],
        },
    }


PLUGIN_PLACEHOLDERS = {"{{ POD_POSTFIX }}": "plan-preview", "{{ CONTAINER_POSTFIX }}": "plan-preview"}


def as_started(pod: dict[str, Any], namespace: str,
               marks: tuple[dict[str, str], dict[str, str]] = ({}, {})) -> dict[str, Any]:
    """The agent pod as the plugin sends it to the API server: placeholders filled, in its namespace, with
    the plugin's labels and annotations for a job (`marks`, plugin_marks)."""
    text = yaml.safe_dump(pod, sort_keys=False)
    for placeholder, value in PLUGIN_PLACEHOLDERS.items():
        text = text.replace(placeholder, value)
    started: dict[str, Any] = yaml.safe_load(text)
    started["metadata"]["namespace"] = namespace
    labels, annotations = marks
    started["metadata"]["labels"] = {**started["metadata"].get("labels", {}), **labels}
    if annotations:
        started["metadata"]["annotations"] = {**started["metadata"].get("annotations", {}), **annotations}
    return started


def config_repo_id(url: str, taken: set[str]) -> str:
    """A stable, readable id from the repository's name: `.../fraud-model.git` -> `fraud-model`."""
    base = re.sub(r"[^A-Za-z0-9_.-]+", "-", re.split(r"[/:]", url.rstrip("/"))[-1].removesuffix(".git")).strip("-.")
    candidate, n = base or "model-repo", 2
    while candidate in taken:
        candidate, n = f"{base}-{n}", n + 1
    taken.add(candidate)
    return candidate


PARTICIPANT_PLACEHOLDER = "{participant}"
"""In a `modelRepos` URL: one config repository per participant, allowed only their pipeline group."""


def participant_repo_urls(model_repos: tuple[str, ...], participant: str) -> list[str]:
    """A participant's own repositories: each `modelRepos` URL with {participant} in it, filled in."""
    return [url.replace(PARTICIPANT_PLACEHOLDER, participant) for url in model_repos if PARTICIPANT_PLACEHOLDER in url]


READER_DIR = "/etc/cd4ml/gitea-reader"
"""Where the configure Job finds the git server's reader login, to register the ready repositories with."""


def _config_repo(repo_id: str, url: str, groups: str, environments: str | None = "*",
                 reader: Credentials | None = None) -> dict[str, Any]:
    """`environments` None: the repository may put its pipelines in no environment (PartialConfig
    l.90-92 checks each one it defines), so in a workshop its jobs start on nobody's agents. With a
    `reader` the material logs in: its username, and `password_file` the configure Job sends as `password`
    (GitMaterialRepresenter l.41-45; GoCD keeps it encrypted and hands it to the agents for the checkout)."""
    rules = [{"directive": "allow", "action": "refer", "type": "pipeline_group", "resource": groups}]
    if environments is not None:
        rules.append({"directive": "allow", "action": "refer", "type": "environment", "resource": environments})
    return {
        "id": repo_id,
        "plugin_id": YAML_CONFIG_PLUGIN_ID,
        "material": {"type": "git", "attributes": {"url": url, "branch": "main", "auto_update": True, **({
            "username": gitea.READER_USER, "password_file": f"{READER_DIR}/{reader.password_key}"}
            if reader else {})}},
        "configuration": [],
        # Without an allow rule a config repo may define nothing that refers to groups/environments.
        "rules": rules,
    }


def desired_configuration(config: StackConfig, ns: Namespaces, tenants: tuple[Tenant, ...],
                          pods: dict[str, dict[str, Any]], reader: Credentials | None = None) -> dict[str, Any]:
    """What the configure Job ensures, in GoCD's own API shapes (see infra/configure/gocd.py). With the
    git server's `reader`, each tenant's ready repository is its config repository."""
    taken: set[str] = set()
    repos = []
    by_tenant = {t.name: t for t in tenants}
    for ready in gitea.ready_repos(config, ns, tenants) if reader else ():
        tenant = by_tenant[ready.tenant]
        repos.append(_config_repo(config_repo_id(f"{ready.tenant}-{ready.name}", taken), ready.clone_url,
                                  tenant.pipeline_group if tenant.participant else "*",
                                  tenant.gocd_environment or "*", reader))
    workshop = any(t.participant for t in tenants)
    for url in config.model_repos:
        if PARTICIPANT_PLACEHOLDER not in url:
            # A repository shared by a workshop is nobody's: it may not join a participant's environment
            # (whose agents would then run its pipelines as that participant).
            repos.append(_config_repo(config_repo_id(url, taken), url, "*", None if workshop else "*"))
            continue
        for tenant in tenants:
            [own] = participant_repo_urls((url,), tenant.name)
            repos.append(_config_repo(config_repo_id(f"{tenant.name}-{own}", taken), own, tenant.pipeline_group,
                                      tenant.gocd_environment or "*"))
    participants = [t for t in tenants if t.participant]
    return {
        "cluster_profile": {
            "id": CLUSTER_PROFILE_ID,
            "plugin_id": ELASTIC_AGENT_PLUGIN_ID,
            "properties": [
                {"key": "go_server_url", "value": endpoint(ns).url},
                {"key": "namespace", "value": ns.gocd},
            ],
        },
        "elastic_profiles": [{
            "id": tenant.elastic_profile,
            "cluster_profile_id": CLUSTER_PROFILE_ID,
            "properties": [
                {"key": "PodSpecType", "value": "yaml"},
                {"key": "PodConfiguration", "value": yaml.safe_dump(pods[tenant.name], sort_keys=False)},
            ],
        } for tenant in tenants],
        # Each participant sees, runs and edits only their own group (GoCD pipeline group authorization).
        "pipeline_groups": [{
            "name": tenant.pipeline_group,
            "authorization": {role: {"users": [tenant.login], "roles": []} for role in ("view", "operate", "admins")},
        } for tenant in participants],
        "config_repos": repos,
        "auth_config": {
            "id": AUTH_CONFIG_ID,
            "plugin_id": PASSWORD_FILE_PLUGIN_ID,
            "allow_only_known_users_to_login": False,
            "properties": [{"key": "PasswordFilePath", "value": f"{PASSWORD_FILE_DIR}/{PASSWORD_FILE_KEY}"}],
        },
        # With no admins named every logged-in user is an admin; participants' users must not be.
        "system_admins": {"roles": [], "users": [ADMIN_USER]},
        **({"site_urls": {"site_url": site, "secure_site_url": site}} if (site := public_url(config, "gocd")) else {}),
    }


JOB_IDENTIFIER_ANNOTATION = "Elastic-Agent-Job-Identifier"
ENVIRONMENT_LABEL = "Elastic-Agent-Environment-Name"
"""What kubernetes-elastic-agents v5.0.2-779 puts on every pod it starts (KubernetesInstanceFactory.java
l.138-143, 199-212): the job as Gson JSON ({"pipeline_name":"...",...}) in an annotation, the job's GoCD
environment (when it has one) in a label; nothing names the elastic profile."""


SMOKE_PIPELINE = "cd4ml-smoke"
"""The job name on pods that stand in for an agent (the kit's declared pods, smoke probes)."""


def plugin_marks(pipeline: str, environment: str | None, job_id: int = 0) -> tuple[dict[str, str], dict[str, str]]:
    """The labels and annotations the plugin puts on the pod it starts for a job of `pipeline` in the GoCD
    `environment` (KubernetesInstanceFactory.java l.138-143, 199-212; the job as Gson writes
    JobIdentifier, model/JobIdentifier.java l.28-54: compact, pipeline_name first)."""
    job = {"pipeline_name": pipeline, "pipeline_counter": 1, "pipeline_label": "1", "stage_name": "smoke",
           "stage_counter": "1", "job_name": "smoke", "job_id": job_id}
    labels = {"Elastic-Agent-Created-By": ELASTIC_AGENT_PLUGIN_ID, "Elastic-Agent-Job-Id": str(job_id),
              "kind": "kubernetes-elastic-agent", **({ENVIRONMENT_LABEL: environment} if environment else {})}
    return labels, {JOB_IDENTIFIER_ANNOTATION: json.dumps(job, separators=(",", ":"))}


def own_job_marks(gocd_environment: str | None, pipeline_prefix: str) -> tuple[dict[str, str], dict[str, str]]:
    """What a pod standing in for a tenant's agent carries: the marks of a job of the tenant's own, which the
    agents' admission policy admits (nothing for a single team, which has no policy)."""
    if not gocd_environment:
        return {}, {}
    return plugin_marks(f"{pipeline_prefix}{SMOKE_PIPELINE}", gocd_environment)


def policy_name(gocd_namespace: str) -> str:
    return f"{gocd_namespace}-agents-run-their-own-pipelines"


def agent_admission(ns: Namespaces, tenants: tuple[Tenant, ...]) -> tuple[dict[str, Any], ...]:
    """Participants' agents run only their own pipelines' jobs. GoCD lets any pipeline name any elastic
    profile (JobConfig.isValidProfileId checks only that it exists) and config-repo rules do not govern
    profiles or pipeline names, so the API server refuses, at pod creation, an agent pod whose
    ServiceAccount is one participant's unless the job's GoCD environment is theirs (only their config
    repository may refer to it) and its pipeline's name starts with theirs."""
    participants = [t for t in tenants if t.participant and t.gocd_environment]
    if not participants:
        return ()
    owners = ", ".join(f"'{t.service_account}': '{t.gocd_environment}'" for t in participants)
    name = policy_name(ns.gocd)
    policy = {
        "apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingAdmissionPolicy",
        "metadata": {"name": name, "labels": dict(PART_OF)},
        "spec": {
            "failurePolicy": "Fail",
            "matchConstraints": {
                "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": ns.gocd}},
                "resourceRules": [{"apiGroups": [""], "apiVersions": ["v1"], "operations": ["CREATE", "UPDATE"],
                                   "resources": ["pods"]}]},
            "matchConditions": [{"name": "a-participants-agent",
                                 "expression": f"has(object.spec.serviceAccountName) && "
                                               f"object.spec.serviceAccountName in {{{owners}}}"}],
            "variables": [
                {"name": "owner", "expression": f"{{{owners}}}[object.spec.serviceAccountName]"},
                {"name": "environment",
                 "expression": f"has(object.metadata.labels) && '{ENVIRONMENT_LABEL}' in object.metadata.labels"
                               f" ? object.metadata.labels['{ENVIRONMENT_LABEL}'] : ''"},
                {"name": "job",
                 "expression": f"has(object.metadata.annotations) && '{JOB_IDENTIFIER_ANNOTATION}' in "
                               f"object.metadata.annotations ? object.metadata.annotations"
                               f"['{JOB_IDENTIFIER_ANNOTATION}'] : ''"},
            ],
            "validations": [
                # GoCD compares environment and pipeline names ignoring case (AbstractDirective l.131,
                # CaseInsensitiveString): so does the policy, or an owner's "Ada" would be refused.
                {"expression": "variables.environment.lowerAscii() == variables.owner",
                 "messageExpression": f"'the agents of ' + variables.owner + ' (elastic profile {DEFAULT_PROFILE}-' "
                                      f"+ variables.owner + ') run only jobs of pipelines in the GoCD environment '"
                                      f" + variables.owner + ', and this job is in ' + (variables.environment == ''"
                                      f" ? 'none' : variables.environment)"},
                {"expression": "variables.job.matches('(?i)\"pipeline_name\":\"' + variables.owner + '-')",
                 "messageExpression": "'the agents of ' + variables.owner + ' run only pipelines named ' + "
                                      "variables.owner + '-...'"},
            ],
        },
    }
    binding = {
        "apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingAdmissionPolicyBinding",
        "metadata": {"name": name, "labels": dict(PART_OF)},
        "spec": {"policyName": name, "validationActions": ["Deny"]},
    }
    return policy, binding


def elastic_agent_pod(platform_config: dict[str, Any], profile_id: str = ML_PROFILE_ID) -> dict[str, Any]:
    """The pod YAML of an elastic profile in a desired configuration, parsed back."""
    profile = next(p for p in platform_config["elastic_profiles"] if p["id"] == profile_id)
    properties = {p["key"]: p["value"] for p in profile["properties"]}
    pod: dict[str, Any] = yaml.safe_load(properties["PodConfiguration"])
    return pod


def _app_login_secret(ctx: BuildContext, tenant: Tenant) -> str | None:
    """The Secret a tenant's model services log in to MLflow with (the same name in each of its
    namespaces, from the app -> mlflow edges)."""
    names = {e.credentials.secret for env, _ in tenant.environments
             if (e := ctx.edge(tenant.app_node(env), "mlflow")) and e.credentials}
    assert len(names) <= 1, names
    return next(iter(names), None)


@dataclass(frozen=True)
class AgentProfile:
    """One tenant's elastic agent profile: whose pods it starts, as whom, with what environment."""

    tenant: str
    agents_node: str
    """Its pods' node in the wiring graph."""
    service_account: str
    env: dict[str, str]
    """The variables its pods get by value (credentials come from Secrets and are not listed)."""


@dataclass(frozen=True)
class ConfigRepo:
    id: str
    url: str


@dataclass(frozen=True)
class GoCDSettings(ServiceSettings):
    cluster_profile: str
    elastic_profiles: tuple[str, ...]
    agent_profiles: dict[str, AgentProfile]
    """Elastic profile id -> what it gives its pods."""
    pipeline_groups: tuple[str, ...]
    agent_image: str
    config_repos: tuple[ConfigRepo, ...]
    admins: tuple[str, ...]


def build(ctx: BuildContext) -> Service:
    ns, config = ctx.ns, ctx.config
    persistence: dict[str, Any] = {
        "enabled": True,
        "size": f"{config.gocd_storage_gi}Gi",
        "extraVolumes": [{"name": "cd4ml-auth", "secret": {"secretName": PASSWORD_FILE_SECRET}}],
        "extraVolumeMounts": [{"name": "cd4ml-auth", "mountPath": PASSWORD_FILE_DIR, "readOnly": True}],
    }
    if config.storage_class:
        persistence["storageClass"] = config.storage_class
    agent_image = Image.from_ref(config.agent_image) if config.agent_image else GOCD_AGENT_ML.image(config)
    server_image = ctx.image(SERVER_IMAGE)
    agent_size = AGENT_SIZES[ctx.profile]
    envs = {t.name: agent_env(ctx.edges_from(t.agents_node), ns, MODEL_RUNTIME.image(config), t,
                              _app_login_secret(ctx, t)) for t in ctx.tenants}
    pods = {t.name: agent_pod(agent_image, envs[t.name], agent_size, t.service_account, agent_pods(t))
            for t in ctx.tenants}
    # Static agents (a single team only: infra/config/rules.py refuses them in a workshop).
    env = envs[ctx.tenants[0].name]
    values = {
        "server": {
            "image": {"repository": server_image.name, "tag": server_image.tag},
            "service": {"type": service_type("gocd", config.exposure), "httpPort": HTTP_PORT},
            "ingress": {"enabled": False},
            "resources": SERVER_SIZES[ctx.profile].as_k8s(),
            "healthCheck": SERVER_HEALTH_CHECK[ctx.profile],
            # The kit configures GoCD through its API (the configure Job); the chart's script would add a
            # demo profile and pipeline, and fails once security is on.
            "shouldPreconfigure": False,
            "env": {
                "goServerJvmOpts": f"-Xmx{SERVER_HEAP_MI[ctx.profile]}m",
                "extraEnvVars": [{"name": ELASTIC_AGENT_PLUGIN[0], "value": ELASTIC_AGENT_PLUGIN[1]}],
            },
            "persistence": persistence,
        },
        "agent": {
            "replicaCount": config.gocd_agents,
            "image": {"repository": f"{agent_image.registry}/{agent_image.repository}", "tag": agent_image.tag},
            "resources": agent_size.as_k8s(),
            "env": {"extraEnvVars": env},
            "pod": {"labels": dict(agent_pods(ctx.tenants[0]))},
            "serviceAccount": {
                "reuseTopLevelServiceAccount": False,
                "name": ctx.tenants[0].service_account,
                "automountServiceAccountToken": True,
            },
        },
    }
    values["rbac"] = {"create": True, "roleRef": SERVER_CLUSTER_ROLE}
    service_accounts = tuple({
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": {"name": t.service_account, "namespace": ns.gocd, "labels": dict(PART_OF)},
        "automountServiceAccountToken": False,
    } for t in ctx.tenants) + server_rights(ns.gocd)
    admin = admin_credentials(ns)
    admin_password = GeneratedPassword("gocd-admin")
    secrets = (
        KitSecret(ns.gocd, ADMIN_SECRET, literals=(("username", ADMIN_USER),),
                  generated=(("password", admin_password),), type="kubernetes.io/basic-auth"),
        # One file, one line per login: the admin, then each participant (never an admin).
        KitSecret(ns.gocd, PASSWORD_FILE_SECRET, password_files=(
            (PASSWORD_FILE_KEY, ADMIN_USER, admin_password),
            *((PASSWORD_FILE_KEY, t.login, t.password) for t in ctx.tenants if t.login and t.password))),
    )
    git = ctx.edge("gocd", "gitea")
    reader = git.credentials if git else None
    desired = desired_configuration(config, ns, ctx.tenants, pods, reader)
    configure = configure_job(
        name="gocd-configure", namespace=ns.gocd, module="gocd", desired=desired,
        env={"GOCD_URL": ctx.configure_edge("gocd").target.url,
             "CD4ML_HEALTH_TIMEOUT": str(CONFIGURE_TIMEOUT_SECONDS - 120)},
        secret_env={"GOCD_USERNAME": admin.username, "GOCD_PASSWORD": admin.password},
        timeout_seconds=CONFIGURE_TIMEOUT_SECONDS, image=ctx.image(PYTHON_IMAGE),
        secret_files=((reader.secret, READER_DIR),) if reader else ())
    workloads = [Workload(f"{RELEASE}-server", "Deployment", 1,
                          (Container("gocd-server", server_image, SERVER_SIZES[ctx.profile]),))]
    if config.gocd_agents:
        workloads.append(Workload(f"{RELEASE}-agent", "Deployment", config.gocd_agents,
                                  (Container("gocd-agent", agent_image, agent_size),)))
    return Service(
        name="gocd",
        namespace=ns.gocd,
        endpoint=endpoint(ns),
        credentials=admin,
        secrets=secrets,
        # The server's JVM start, plugin download and health check take minutes on a laptop.
        stages=(Stage(objects=service_accounts + agent_admission(ns, ctx.tenants)),
                Stage(releases=(CHART.release(RELEASE, ns.gocd, values, timeout_seconds=900),)),
                Stage(objects=configure)),
        workloads=tuple(workloads),
        embedded=tuple(as_started(pods[t.name], ns.gocd, own_job_marks(t.gocd_environment, t.pipeline_prefix))
                       for t in ctx.tenants),
        settings=GoCDSettings(
            cluster_profile=CLUSTER_PROFILE_ID,
            elastic_profiles=tuple(p["id"] for p in desired["elastic_profiles"]),
            agent_profiles={t.elastic_profile: AgentProfile(
                tenant=t.name, agents_node=t.agents_node, service_account=t.service_account,
                env={e["name"]: e["value"] for e in envs[t.name] if "value" in e}) for t in ctx.tenants},
            pipeline_groups=tuple(g["name"] for g in desired["pipeline_groups"]),
            agent_image=agent_image.ref,
            config_repos=tuple(ConfigRepo(r["id"], r["material"]["attributes"]["url"])
                               for r in desired["config_repos"]),
            admins=tuple(desired["system_admins"]["users"]),
        ),
        # Elastic agents are started on demand from the ML image; the configure Job runs stock Python.
        extra_images=(agent_image, ctx.image(PYTHON_IMAGE)),
        public_url=public_url(config, "gocd", endpoint(ns).path),
    )
