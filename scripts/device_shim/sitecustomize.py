"""Imported by Python at start-up when this folder is on PYTHONPATH. The CPU rehearsals of the device calls
(scripts/gpu_checks.sh, scripts/gpu_train.sh) list in AUDIOGAN_HIDE_MODULES (comma-separated) the modules
the GPU image lacks, so that a step which would need one there fails here too."""

import os
import sys


class HideModules:
    def __init__(self, names: set[str]) -> None:
        self.names = names

    def find_spec(self, name: str, path: object = None, target: object = None) -> None:
        if name.partition(".")[0] in self.names:
            raise ImportError(f"{name}: not on the device image")


_names = {n for n in os.environ.get("AUDIOGAN_HIDE_MODULES", "").split(",") if n}
if _names:
    sys.meta_path.insert(0, HideModules(_names))
