"""Stack config: every setting of a platform stack, validated once into `StackConfig`.

    model     the fields, their defaults and descriptions, each value's own checks
    rules     what one setting needs of another
    loading   stack files, `--set` overrides and the engine's config, all through `load_config`
    errors    ConfigError: every problem, naming its key, the value and what is allowed

Pulumi.yaml's `config:` block is generated from the fields (`pulumi_project_config`).
"""

from infra.config.errors import PROJECT, ConfigError, ConfigProblem
from infra.config.loading import (
    load_config,
    load_stack,
    parse_overrides,
    pulumi_project_config,
    read_stack_file,
    stack_file,
)
from infra.config.model import (
    CLUSTER_STACK_ENV,
    CONFIG_KEYS,
    KUBE_CONTEXT_ENV,
    KUBE_TARGET_OUTPUT,
    MAX_PARTICIPANTS,
    RESERVED_TENANTS,
    SERVICE_NAMES,
    SERVICE_REQUIREMENTS,
    ClusterProvider,
    Exposure,
    Profile,
    StackConfig,
    TlsIssuer,
)
from infra.paths import project_dir

__all__ = [
    "CLUSTER_STACK_ENV", "CONFIG_KEYS", "KUBE_CONTEXT_ENV", "KUBE_TARGET_OUTPUT", "MAX_PARTICIPANTS", "PROJECT",
    "RESERVED_TENANTS", "SERVICE_NAMES", "SERVICE_REQUIREMENTS", "ClusterProvider", "ConfigError", "ConfigProblem",
    "Exposure", "Profile", "StackConfig", "TlsIssuer", "load_config", "load_stack",
    "parse_overrides", "project_dir", "pulumi_project_config", "read_stack_file", "stack_file",
]
