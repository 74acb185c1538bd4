"""Entry point of the cluster project: everything lives in infra/cluster/."""

from infra.cluster.program import run

run()
