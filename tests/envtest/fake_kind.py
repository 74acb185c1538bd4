"""A `kind` for the envtest harness: the subcommands and output the kit's cluster stack uses, backed by a
real control plane (tests/envtest/controlplane.py) instead of Docker containers. Not kind: what it
answers is kind v0.32.0's behaviour for these calls (pkg/cmd/kind: `version` prints `kind v0.32.0 go…
os/arch`; `create cluster` writes the context `kind-<name>` into $KUBECONFIG and makes it current;
`get kubeconfig` prints that cluster's kubeconfig; `delete cluster` removes the cluster and its context).

Run as `kind ...` through a wrapper on PATH; clusters live under $CD4ML_FAKE_KIND_HOME.
"""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).parent))
from controlplane import ControlPlane  # noqa: E402

VERSION = "v0.32.0"
HOME = Path(os.environ.get("CD4ML_FAKE_KIND_HOME", "/tmp/cd4ml-fake-kind"))


def _name(args: list[str]) -> str:
    return args[args.index("--name") + 1] if "--name" in args else "kind"


def _kubeconfig_of(root: Path, name: str) -> dict:
    document = yaml.safe_load((root / "kubeconfig").read_text())
    context = f"kind-{name}"
    document["clusters"][0]["name"] = document["contexts"][0]["context"]["cluster"] = context
    document["users"][0]["name"] = document["contexts"][0]["context"]["user"] = context
    document["contexts"][0]["name"] = document["current-context"] = context
    return document


def _merge_into_user_kubeconfig(own: dict, remove: str | None = None) -> None:
    path = Path(os.environ.get("KUBECONFIG") or Path.home() / ".kube" / "config")
    user = (yaml.safe_load(path.read_text()) if path.exists() else None) or {"apiVersion": "v1", "kind": "Config"}
    for key in ("clusters", "users", "contexts"):
        user[key] = [entry for entry in user.get(key) or [] if entry["name"] != (remove or own[key][0]["name"])]
        if not remove:
            user[key].append(own[key][0])
    if remove:
        if user.get("current-context") == remove:
            user["current-context"] = ""
    else:
        user["current-context"] = own["current-context"]
    path.write_text(yaml.safe_dump(user))


def main(args: list[str]) -> int:
    if args == ["version"]:
        print(f"kind {VERSION} go1.25.4 linux/amd64")
        return 0
    if args[:2] == ["get", "clusters"]:
        print("\n".join(sorted(p.name for p in HOME.glob("*") if (p / "kubeconfig").exists())))
        return 0
    name = _name(args)
    root = HOME / name
    if args[:2] == ["create", "cluster"]:
        if (root / "kubeconfig").exists():
            print(f'ERROR: failed to create cluster: node(s) already exist for a cluster with the name "{name}"',
                  file=sys.stderr)
            return 1
        plane = ControlPlane(root / "plane", nodes=2).start()
        (root / "pids.json").write_text(json.dumps({n: p.pid for n, p in plane.processes.items()}))
        (root / "kubeconfig").write_text(plane.kubeconfig_text())
        _merge_into_user_kubeconfig(_kubeconfig_of(root, name))
        print(f"Creating cluster \"{name}\" ...\nSet kubectl context to \"kind-{name}\"")
        return 0
    if args[:2] == ["get", "kubeconfig"]:
        if not (root / "kubeconfig").exists():
            print(f'ERROR: could not locate any control plane nodes for cluster named "{name}"', file=sys.stderr)
            return 1
        print(yaml.safe_dump(_kubeconfig_of(root, name)), end="")
        return 0
    if args[:2] == ["delete", "cluster"]:
        if (root / "pids.json").exists():
            for pid in json.loads((root / "pids.json").read_text()).values():
                try:
                    os.killpg(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        if root.exists():
            import shutil

            shutil.rmtree(root, ignore_errors=True)
        _merge_into_user_kubeconfig({}, remove=f"kind-{name}")
        print(f'Deleting cluster "{name}" ...')
        return 0
    print(f"fake kind: unsupported: {' '.join(args)}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
