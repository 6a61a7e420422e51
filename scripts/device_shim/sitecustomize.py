"""Imported by Python at start-up when this folder is on PYTHONPATH: the CPU rehearsals of the device calls
(scripts/gpu_checks.sh, scripts/gpu_train.sh) hide the modules the GPU image lacks, so that a step which
would need one there fails here too. AUDIOGAN_DEVICE_HAS (comma-separated) names those a call brings
along, such as phonemizer from the espeak bundle."""

import os
import sys

DEVICE_LACKS = {"librosa", "pesq", "pystoi", "pretty_midi", "phonemizer"}


class HideModules:
    def __init__(self, names: set[str]) -> None:
        self.names = names

    def find_spec(self, name: str, path: object = None, target: object = None) -> None:
        if name.partition(".")[0] in self.names:
            raise ImportError(f"{name}: not on the device image")


sys.meta_path.insert(0, HideModules(DEVICE_LACKS - set(os.environ.get("AUDIOGAN_DEVICE_HAS", "").split(","))))
