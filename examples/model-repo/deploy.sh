#!/usr/bin/env bash
# Deploy the model version named in out/model.json into one application environment, with the
# kit's ml-app chart and service/serve.py as the service's code.
#
#   bash deploy.sh staging
#
# Everything it needs comes from the GoCD agent's environment (the kit sets it) or from GoCD:
#   CD4ML_NAMESPACE_<ENVIRONMENT>  the environment's namespace, e.g. CD4ML_NAMESPACE_STAGING
#   MLFLOW_TRACKING_URI            where the service loads the model from
#   FLUENTD_HOST, FLUENTD_PORT     where the service sends prediction events (absent when the stack
#                                  runs no Fluentd: the service then serves without logging events)
#   GO_PIPELINE_LABEL              the pipeline run being deployed (GoCD sets it; export it by hand
#                                  when deploying from a laptop)
#   CD4ML_ML_APP_CHART             the chart (default /opt/cd4ml/charts/ml-app, in the agent image)
#   CD4ML_MODEL_RUNTIME_REPOSITORY, CD4ML_MODEL_RUNTIME_TAG
#                                  the image the service runs in (the kit's model-runtime build)
#   CD4ML_TENANT                   optional, default cd4ml
#   CD4ML_MODEL_JSON               optional, default out/model.json (relative to the working directory)
#   CD4ML_ABANDONED_AFTER          optional, default 600: seconds after which a deploy still pending
#                                  (cancelled, or its agent killed) is taken as abandoned and undone
#
# Runs under macOS's bash 3.2 too: no empty array is ever expanded bare under `set -u` (bash before
# 4.4 calls that an unbound variable).
set -euo pipefail

release=model-service
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

die() { echo "deploy.sh: $*" >&2; exit 1; }

environment="${1:-}"
[[ -n "$environment" ]] || die "usage: deploy.sh <environment>   (staging, production, ...)"
[[ "$environment" =~ ^[a-z0-9]([a-z0-9-]*[a-z0-9])?$ ]] \
  || die "environment '$environment' is not a valid name (lower-case letters, digits and '-')"
ns_var="CD4ML_NAMESPACE_$(printf '%s' "$environment" | tr 'a-z-' 'A-Z_')"

missing=""
for var in "$ns_var" MLFLOW_TRACKING_URI GO_PIPELINE_LABEL; do
  [[ -n "${!var:-}" ]] || missing="${missing:+$missing }$var"
done
if [[ -n "$missing" ]]; then
  die "missing environment variable(s): ${missing}." \
      "The kit sets them on its GoCD agents (${ns_var} only if '$environment' is in the stack's appEnvironments)."
fi
ns="${!ns_var}"
if [[ -z "${FLUENTD_HOST:-}" ]]; then
  echo "deploy.sh: warning: FLUENTD_HOST is not set (no Fluentd in this platform?):" \
       "the service will log no prediction events" >&2
fi

model_json="${CD4ML_MODEL_JSON:-out/model.json}"
[[ -f "$model_json" ]] || die "$model_json not found: fetch it from the train stage first (see ci.gocd.yaml)"
field() {
  python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$model_json" "$1" 2>/dev/null \
    || die "$model_json has no '$1'; was it written by python -m model.train?"
}
model_name="$(field model_name)"
model_version="$(field model_version)"
model_uri="$(field model_uri)"

chart="${CD4ML_ML_APP_CHART:-/opt/cd4ml/charts/ml-app}"
if [[ "$chart" == /* || "$chart" == .* ]] && [[ ! -d "$chart" ]]; then
  die "chart $chart not found; set CD4ML_ML_APP_CHART to the kit's charts/ml-app"
fi

image_args=()
if [[ -n "${CD4ML_MODEL_RUNTIME_REPOSITORY:-}" ]]; then
  image_args+=(--set-string image.repository="$CD4ML_MODEL_RUNTIME_REPOSITORY")
  image_args+=(--set-string image.tag="${CD4ML_MODEL_RUNTIME_TAG:?CD4ML_MODEL_RUNTIME_TAG must accompany the repository}")
fi

# A deploy cancelled half-way (GoCD's Cancel, a killed agent) leaves the release pending, and Helm then
# refuses every later one: "another operation (install/upgrade/rollback) is in progress" (helm v3.19.2,
# pkg/action/upgrade.go:219). A pending release older than any deploy takes is abandoned: undo it (a
# rollback to the newest revision that was ever deployed — not simply the previous one, which may be
# the abandoned upgrade an abandoned rollback was undoing — or, with none, its removal); a younger one
# is somebody's deploy still running, and is left alone.
recover_abandoned_release() {
  local state status age
  state="$(helm status "$release" --namespace "$ns" --output json 2>/dev/null)" || return 0
  read -r status age < <(printf '%s' "$state" | python3 -c '
import datetime, json, re, sys
info = json.load(sys.stdin).get("info", {})
stamp = re.sub(r"[.][0-9]+", "", info.get("last_deployed", "")).replace("Z", "+00:00")
age = datetime.datetime.now(datetime.timezone.utc) - datetime.datetime.fromisoformat(stamp)
print(info.get("status", "unknown"), int(age.total_seconds()))
') || return 0
  case "$status" in
    pending-install|pending-upgrade|pending-rollback) ;;
    *) return 0 ;;
  esac
  if ((age < ${CD4ML_ABANDONED_AFTER:-600})); then
    die "release $release in $ns is $status since ${age}s ago: another deploy is running; retry when it is done"
  fi
  echo "deploy.sh: release $release in $ns was left $status ${age}s ago (a cancelled deploy): undoing it" >&2
  local good
  good="$(helm history "$release" --namespace "$ns" --output json | python3 -c '
import json, sys
history = json.load(sys.stdin)
current = max(entry["revision"] for entry in history)
good = [entry["revision"] for entry in history
        if entry["revision"] < current and entry["status"] in ("deployed", "superseded")]
print(max(good) if good else "")
')"
  if [[ -n "$good" ]]; then
    helm rollback "$release" "$good" --namespace "$ns" --wait --timeout 5m
  else
    helm uninstall "$release" --namespace "$ns" --wait --timeout 5m
  fi
}
recover_abandoned_release

echo "deploying $model_uri (pipeline $GO_PIPELINE_LABEL) to $environment (namespace $ns)"
# --set-string: a version "10" or a label "1.10" must stay text, not become a number.
helm upgrade --install "$release" "$chart" \
  --namespace "$ns" --wait --timeout 5m \
  --set-string model.name="$model_name" \
  --set-string model.version="$model_version" \
  --set-string model.uri="$model_uri" \
  --set-string pipelineLabel="$GO_PIPELINE_LABEL" \
  --set-string environment="$environment" \
  --set-string tenant="${CD4ML_TENANT:-cd4ml}" \
  --set-string mlflow.trackingUri="$MLFLOW_TRACKING_URI" \
  --set-string mlflow.credentialsSecret="${CD4ML_MLFLOW_LOGIN_SECRET:-}" \
  --set-string fluentd.host="${FLUENTD_HOST:-}" \
  --set fluentd.port="${FLUENTD_PORT:-24224}" \
  --set-file "source.serve\.py=$here/service/serve.py" \
  ${image_args[@]+"${image_args[@]}"}

kubectl -n "$ns" rollout status "deploy/$release" --timeout 5m
kubectl -n "$ns" get deploy "$release"
