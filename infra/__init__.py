"""The CD4ML platform kit: GoCD, Elasticsearch/Fluentd/Kibana, Grafana and MLflow on Kubernetes, wired."""
