"""Fluentd from the `fluent/fluentd` chart: a DaemonSet that ships every container's log to
Elasticsearch, plus a forward input (24224) behind a Service for application events.

The chart owns the whole Fluentd configuration (its image's env-driven config is not used), so
the kit replaces the output file and adds the forward source. Container logs and application
events go to separate index families; events are indexed per tenant, the first part of their tag
(`<tenant>.prediction`, infra/events.py): `cd4ml-events-<tenant>-YYYY.MM.DD`. Index settings and
mappings come from the templates the Elasticsearch service installs first. Config keys read: profile.
"""

from __future__ import annotations

from infra.config import Profile
from infra.platform import elasticsearch
from infra.platform.context import BuildContext
from infra.platform.layout import Namespaces
from infra.platform.model import ChartPin, Container, Endpoint, Image, Labels, Resources, Service, Stage, Workload

CHART = ChartPin(repo="https://fluent.github.io/helm-charts", chart="fluentd", version="0.6.0")
IMAGE = Image(repository="fluent/fluentd-kubernetes-daemonset", tag="v1.19.3-debian-elasticsearch8-1.1")
"""The elasticsearch8 variant: its client gem must match the Elasticsearch major."""
RELEASE = "fluentd"
PODS: Labels = (("app.kubernetes.io/name", "fluentd"), ("app.kubernetes.io/instance", RELEASE))
FORWARD_PORT = 24224
METRICS_PORT = 24231
SIZES = {
    Profile.LAPTOP: Resources(100, 200, 500, 512),
    Profile.CLUSTER: Resources(200, 512, 1000, 1024),
}
CONTAINER_LOG_TAG = "kubernetes.**"
"""Tag of events from the kit's tail source; everything else came in through forward."""
TAIL_REFRESH_SECONDS = 5
"""How often the tail source looks for new container log files. in_tail's default is 60 s (fluentd
v1.19.3 `lib/fluent/plugin/in_tail.rb` l.87, timer at l.286): a short-lived pod's file could come and go
unseen. The position file makes a frequent scan cheap."""


def forward_endpoint(ns: Namespaces) -> Endpoint:
    return Endpoint(RELEASE, ns.logging, FORWARD_PORT, scheme="tcp")


def _es_output(match: str, output_id: str, index_prefix: str, es: Endpoint, chunk_keys: str = "") -> str:
    # Pinned to ES 8: without default_elasticsearch_version the plugin assumes 5 and sends
    # `_type`, which ES 8 rejects; suppress_type_name makes the intent explicit. The version is known,
    # so it is not asked at start: fluent-plugin-elasticsearch 5.4.4 asks during `configure`
    # (out_elasticsearch.rb l.338, l.484-491), retrying 15 times with 2**n s sleeps
    # (elasticsearch_index_template.rb l.51-66) while Elasticsearch is not up yet, and meanwhile
    # Fluentd serves nothing: not /metrics, which the chart's liveness probe reads, so it is killed.
    return f"""  <match {match}>
    @type elasticsearch
    @id {output_id}
    host {es.host}
    port {es.port}
    scheme {es.scheme}
    user "#{{ENV['ES_USERNAME']}}"
    password "#{{ENV['ES_PASSWORD']}}"
    default_elasticsearch_version 8
    verify_es_version_at_startup false
    suppress_type_name true
    logstash_format true
    logstash_prefix {index_prefix}
    include_tag_key true
    reconnect_on_error true
    reload_on_failure true
    reload_connections false
    request_timeout 30s
    <buffer{f" {chunk_keys}" if chunk_keys else ""}>
      @type memory
      flush_interval 5s
      chunk_limit_size 8MB
      total_limit_size 64MB
      retry_max_interval 30s
      overflow_action drop_oldest_chunk
    </buffer>
  </match>
"""


def file_configs(es: Endpoint) -> dict[str, str]:
    """Files the kit adds to, or replaces in, the chart's `fileConfigs` (maps merge in Helm)."""
    outputs = (
        "<label @OUTPUT>\n"
        + _es_output(CONTAINER_LOG_TAG, "out_es_container_logs", elasticsearch.LOG_INDEX_PREFIX, es)
        # ${tag[0]} needs `tag` as a buffer chunk key: one chunk per tag, so one tenant per index.
        + _es_output("**", "out_es_app_events", f"{elasticsearch.EVENT_INDEX_PREFIX}-${{tag[0]}}", es,
                     chunk_keys="tag")
        + "</label>\n"
    )
    # The chart's pipeline runs on labels only; an unlabelled forward source would match nothing.
    forward = f"""<source>
  @type forward
  @id in_forward
  @label @DISPATCH
  port {FORWARD_PORT}
  bind 0.0.0.0
</source>
"""
    return {"01_sources.conf": tail_sources(), "04_outputs.conf": outputs, "05_forward.conf": forward}


def tail_sources() -> str:
    """The chart's sources (fluentd-0.6.0 values.yaml l.305-340) with two changes: containerd's log format
    read by the `cri` parser the image ships (Gemfile l.17, fluent-plugin-parser-cri 0.1.1 in
    Gemfile.lock) instead of the chart's JSON-then-regexp, whose greedy time group splits a line at its
    last " stdout "; and new files found every TAIL_REFRESH_SECONDS."""
    return f"""<source>
  @type tail
  @id in_tail_container_logs
  @label @KUBERNETES
  path /var/log/containers/*.log
  pos_file /var/log/fluentd-containers.log.pos
  tag kubernetes.*
  read_from_head true
  refresh_interval {TAIL_REFRESH_SECONDS}s
  <parse>
    @type cri
  </parse>
  emit_unmatched_lines true
</source>

# expose metrics in prometheus format (the chart's probes read /metrics)
<source>
  @type prometheus
  bind 0.0.0.0
  port {METRICS_PORT}
  metrics_path /metrics
</source>
"""


def build(ctx: BuildContext) -> Service:
    ns = ctx.ns
    edge = ctx.edge("fluentd", "elasticsearch")
    assert edge is not None and edge.endpoint and edge.credentials, "validated: fluentd needs elasticsearch"
    size = SIZES[ctx.profile]
    image = ctx.image(IMAGE)
    values = {
        "kind": "DaemonSet",
        "image": {"repository": image.name, "tag": image.tag},
        "variant": "elasticsearch8",
        "resources": size.as_k8s(),
        "env": [
            {"name": "ES_USERNAME", "valueFrom": edge.credentials.username.as_env_source()},
            {"name": "ES_PASSWORD", "valueFrom": edge.credentials.password.as_env_source()},
        ],
        "service": {
            "type": "ClusterIP",
            "ports": [{"name": "forward", "protocol": "TCP", "containerPort": FORWARD_PORT}],
        },
        # The chart's dashboard needs a Prometheus datasource, which the platform does not run.
        # (a boolean: the chart tests the value's truthiness, so the string "false" would still render it)
        "dashboards": {"enabled": False},
        # containerd nodes (kind, k3d, most clouds) have no /var/lib/docker/containers.
        "mountDockerContainersDirectory": False,
        "fileConfigs": file_configs(edge.endpoint),
    }
    return Service(
        name="fluentd",
        namespace=ns.logging,
        endpoint=forward_endpoint(ns),
        credentials=None,
        secrets=(),
        stages=(Stage(releases=(CHART.release(RELEASE, ns.logging, values),)),),
        workloads=(Workload(RELEASE, "DaemonSet", 1, (Container("fluentd", image, size),)),),
        after=("elasticsearch",),
    )
