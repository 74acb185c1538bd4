"""Makes the repository's code and the kit's event schema importable for the tests.

`model` and `service` are imported from this directory, whichever directory pytest runs from.

`cd4ml_events` is the kit's prediction-event schema. In the cluster it comes with the model-runtime
image (a top-level module next to the service), so nothing here installs it. If `import cd4ml_events`
fails, it is loaded from a file with importlib.util.spec_from_file_location, under the same name:

- $CD4ML_EVENTS_PY, if set (a copy of the kit's infra/events.py, for a repository of your own);
- else ../../infra/events.py relative to this directory, i.e. the kit checkout when this repository
  is the kit's examples/model-repo.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent
KIT_EVENTS = REPO_ROOT.parent.parent / "infra" / "events.py"

if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))


def _load_cd4ml_events() -> None:
    try:
        import cd4ml_events  # noqa: F401 - installed (the runtime image) or already loaded
        return
    except ImportError:
        pass
    path = Path(os.environ.get("CD4ML_EVENTS_PY") or KIT_EVENTS)
    if not path.is_file():
        raise pytest.UsageError(
            f"cd4ml_events is not importable and {path} does not exist: copy the CD4ML kit's infra/events.py "
            "somewhere and set CD4ML_EVENTS_PY to it (or put it on PYTHONPATH as cd4ml_events.py)")
    spec = importlib.util.spec_from_file_location("cd4ml_events", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules["cd4ml_events"] = module  # before exec: dataclasses look their module up by name
    spec.loader.exec_module(module)


_load_cd4ml_events()
