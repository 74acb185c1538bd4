"""Handouts: one page per participant (Markdown, and HTML rendered from it: one file each and one to
print them all, a participant per printed page) and a facilitator summary.

Built from the platform model: its tenants (as `platform.json` shows them), the access table and each
tenant's GoCD agent environment, so a page never names a URL, namespace or variable the platform does
not have. Passwords come from the deployed stack's secret outputs,
handed in by the caller; without them the pages carry a placeholder. The facilitator summary never
holds a password: it is the file that gets mailed around.
"""

from __future__ import annotations

import csv
import html
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from string import Template

from markdown_it import MarkdownIt

from infra.config import TlsIssuer
from infra.document import TenantEntry
from infra.platform.access import browser_url
from infra.platform.gitea import GiteaSettings
from infra.platform.gocd import GoCDSettings
from infra.platform.ingress import IngressSettings
from infra.platform.model import Platform

ALL_PAGES = "all-participants.html"
"""Every participant's page in one file, one printed page each: what a facilitator prints."""
PASSWORD_PLACEHOLDER = "(not deployed yet: run `cd4ml up`, then `cd4ml handout` again)"
SUMMARY_COLUMNS = ("participant", "login", "staging_namespace", "production_namespace", "mlflow_experiment",
                   "gocd_pipeline_group", "fluentd_tag", "index_pattern", "repository")
SHOWN_VARIABLES = ("CD4ML_TENANT", "MLFLOW_TRACKING_URI", "MLFLOW_EXPERIMENT_NAME", "CD4ML_MODEL_PREFIX",
                   "FLUENTD_HOST",
                   "FLUENTD_PORT")
"""The agent variables worth knowing (plus each environment's CD4ML_NAMESPACE_<ENV>)."""


@dataclass(frozen=True)
class Links:
    gocd: str
    mlflow: str
    kibana: str
    grafana: str
    git: str | None = None
    """The kit's git server, where each participant's ready repository is (None without it)."""
    untrusted_tls: bool = False
    """The published hosts' certificate is one no laptop trusts (self-signed, Let's Encrypt staging): browsers
    warn once per host, but git refuses to clone until told."""


def handout_links(platform: Platform) -> Links:
    """What people open: the public URL where the stack publishes, else the access table's."""
    def url(name: str, suffix: str = "") -> str:
        service = platform.services.get(name)
        if not service or not service.endpoint:
            return "(not in this stack)"
        return (service.public_url or browser_url(name, service.endpoint)) + suffix

    ingress = platform.optional_extra("ingress")
    issuer = ingress.settings.issuer if ingress and isinstance(ingress.settings, IngressSettings) else None
    return Links(gocd=url("gocd"), mlflow=url("mlflow"), kibana=url("kibana", "/app/discover"),
                 grafana=url("grafana", "/d/cd4ml-model-monitoring"),
                 git=url("gitea", "/") if "gitea" in platform.services else None,
                 untrusted_tls=issuer not in (None, TlsIssuer.LETSENCRYPT.value))


def ready_repo_urls(platform: Platform) -> dict[str, str]:
    """Each tenant's ready repository on the kit's git server, as they clone it (none with modelRepos)."""
    gitea = platform.services.get("gitea")
    if gitea is None or not isinstance(gitea.settings, GiteaSettings):
        return {}
    return {repo.tenant: repo.user_url for repo in gitea.settings.repos}


def handout_envs(platform: Platform) -> dict[str, dict[str, str]]:
    """Each tenant's agent environment (the variables worth knowing), as the model gives GoCD's profiles."""
    gocd = platform.services.get("gocd")
    if gocd is None or not isinstance(gocd.settings, GoCDSettings):
        return {}
    return {profile.tenant: {k: v for k, v in profile.env.items()
                             if k in SHOWN_VARIABLES or k.startswith("CD4ML_NAMESPACE_")}
            for profile in gocd.settings.agent_profiles.values()}


def _link(url: str) -> str:
    """A CommonMark autolink, so the page's addresses are links; anything else as it is."""
    return f"<{url}>" if url.startswith(("https://", "http://")) else url


def _first_step(tenant: TenantEntry, repo: str | None, links: Links, on_git_server: bool) -> str:
    if repo and on_git_server:  # the kit's git server seeded it at `up`
        trust = ("\n   The platform's certificate is not one your laptop trusts, so tell git once: `git -c "
                 "http.sslVerify=false clone ...`, then `git config http.sslVerify false` in the clone."
                 if links.untrusted_tls else "")
        return (f"""1. Clone your repository, {_link(repo)}, with your login (git asks for it): the example model,
   its pipeline `{tenant.pipeline_prefix}diabetes-model` already yours (group, environment
   `{tenant.gocd_environment}`, agents `{tenant.gocd_elastic_profile}`), and GoCD already reads it. Your
   pipelines' names start with `{tenant.pipeline_prefix}`; your agents run no other pipelines.{trust}""")
    if repo:  # `cd4ml repos` wrote it, named for them, and the facilitator pushed it there
        return (f"""1. Clone your repository, {_link(repo) if repo.startswith("http") else f"`{repo}`"}: the example
   model, its pipeline `{tenant.pipeline_prefix}diabetes-model` already yours (group, environment
   `{tenant.gocd_environment}`, agents `{tenant.gocd_elastic_profile}`). Your pipelines' names start with
   `{tenant.pipeline_prefix}`; your agents run no other pipelines.""")
    return f"""1. Fork the example model repository (`examples/model-repo`), set its git URL in `ci.gocd.yaml`, name
   the pipeline `{tenant.pipeline_prefix}diabetes-model` (your pipelines' names start with
   `{tenant.pipeline_prefix}`), make its group `{tenant.gocd_pipeline_group}`, every job's
   `elastic_profile_id: {tenant.gocd_elastic_profile}`, list it under `environments: {tenant.gocd_environment}:`,
   and push it where your facilitator's GoCD reads it. Your agents run no other pipelines."""


def page_markdown(tenant: TenantEntry, links: Links, password: str | None, env: Mapping[str, str],
                  repo: str | None = None) -> str:
    name = tenant.name
    urls = tenant.model_urls  # published through the ingress controller (cloud stacks)
    namespaces = "\n".join(f"- {env_name}: `{namespace}`" + (f", at {_link(urls[env_name])}" if env_name in urls
                                                               else "")
                           for env_name, namespace in tenant.namespaces.items())
    variables = "\n".join(f"    {key}={value}" for key, value in env.items())
    tools = ["GoCD", "Kibana", "Grafana", "MLflow"] + (["the git server"] if links.git else []) + (
        ["your model service"] if urls else [])
    for_what = ", ".join(tools[:-1]) + " and " + tools[-1]
    calling = _calling(tenant, links.untrusted_tls)
    on_git_server = bool(links.git and repo and repo.startswith(links.git))
    git_row = f"| Git server | {_link(links.git)} | your repository {_link(repo)} |\n" if on_git_server else ""
    return f"""# CD4ML workshop: {name}

Your login ({for_what}): **{tenant.login}** / **{password or PASSWORD_PLACEHOLDER}**

| tool | where | what is yours |
|---|---|---|
| GoCD | {_link(links.gocd)} | pipeline group `{tenant.gocd_pipeline_group}`, agents `{tenant.gocd_elastic_profile}` |
| MLflow | {_link(links.mlflow)} | experiment `{tenant.mlflow_experiment}` |
| Kibana | {_link(links.kibana)} | your predictions: index pattern `{tenant.index_pattern}` |
| Grafana | {_link(links.grafana)} | dashboard *CD4ML: model monitoring*, participant `{name}` |
{git_row}
Your model service is deployed into:
{namespaces}

Your pipeline's jobs run with (the platform sets these; nothing to configure):

{variables}

## First three steps
{_first_step(tenant, repo, links, on_git_server)}
2. Open GoCD, log in as `{tenant.login}`, and watch your pipeline test, train (a run appears in MLflow
   experiment `{tenant.mlflow_experiment}`), pass the gate and deploy to staging.
3. Send a few predictions to your model service and find them in Kibana (`fluentd_tag` `{tenant.fluentd_tag}`)
   and on the Grafana dashboard; then change the model, push, and compare the versions.{calling}
"""


def _calling(tenant: TenantEntry, untrusted_tls: bool = False) -> str:
    """How a participant reaches their own model service from their laptop (published stacks only)."""
    first = next(iter(tenant.model_urls.values()), None)
    if not first:
        return ""
    return (f"\n\nFrom your laptop, with your login: `curl {'-k ' if untrusted_tls else ''}-u {tenant.login} "
            f"{first}/version`; "
            f"`POST /predict` with `{{\"features\": {{...}}}}`; `POST /feedback` with its `event_id` and the "
            f"`true_value`.")


_MARKDOWN = MarkdownIt("commonmark", {"html": False}).enable("table")
"""CommonMark with tables; raw HTML in the text is shown as text, never interpreted."""

_DOCUMENT = Template("""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>$title</title>
<style>
body { font-family: system-ui, sans-serif; font-size: 11pt; line-height: 1.4; margin: 1.5cm; color: #111 }
article { max-width: 18cm }
article + article { border-top: 1px dashed #999; margin-top: 2em; padding-top: 1em }
table { border-collapse: collapse; margin: 0.5em 0 }
th, td { border: 1px solid #999; padding: 0.25em 0.5em; text-align: left; vertical-align: top }
code, pre { font-family: ui-monospace, monospace; font-size: 10pt }
pre { background: #f4f4f4; padding: 0.5em; white-space: pre-wrap }
a { color: #0645ad; overflow-wrap: anywhere }
@media print {
  body { margin: 0; font-size: 10pt }
  article { break-after: page }
  article + article { border: 0; margin: 0; padding: 0 }
}
</style></head>
<body>
$articles
</body></html>
""")


def page_html(markdown_texts: Sequence[str], title: str) -> str:
    """A printable HTML document: each Markdown page rendered (markdown-it-py) into its own article,
    one printed page each."""
    articles = "\n".join(f"<article>\n{_MARKDOWN.render(text)}</article>" for text in markdown_texts)
    return _DOCUMENT.substitute(title=html.escape(title), articles=articles)


def write_handouts(tenants: Sequence[TenantEntry], links: Links, passwords: Mapping[str, str] | None,
                   envs: Mapping[str, Mapping[str, str]], out_dir: Path,
                   repos: Mapping[str, str | None] | None = None) -> int:
    out_dir.mkdir(parents=True, exist_ok=True)
    pages = []
    for tenant in tenants:
        password = (passwords or {}).get(tenant.name)
        text = page_markdown(tenant, links, password, envs.get(tenant.name, {}), (repos or {}).get(tenant.name))
        pages.append(text)
        (out_dir / f"{tenant.name}.md").write_text(text)
        (out_dir / f"{tenant.name}.html").write_text(page_html([text], f"CD4ML workshop: {tenant.name}"))
    (out_dir / ALL_PAGES).write_text(page_html(pages, f"CD4ML workshop: {len(pages)} participants"))
    with (out_dir / "facilitator-summary.csv").open("w", newline="") as summary:
        writer = csv.writer(summary)
        writer.writerow(SUMMARY_COLUMNS)
        for t in tenants:
            writer.writerow([t.name, t.login, t.namespaces.get("staging", ""), t.namespaces.get("production", ""),
                             t.mlflow_experiment, t.gocd_pipeline_group, t.fluentd_tag, t.index_pattern,
                             (repos or {}).get(t.name) or ""])
    return len(tenants)
