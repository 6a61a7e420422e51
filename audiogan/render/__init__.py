"""Offline batch rendering of manifests (``audiogan render``): local or Ray engine, resumable."""

from audiogan.render.engine import Summary, run
from audiogan.render.manifest import Job, Manifest, ManifestError, json_schema, read_manifest
from audiogan.render.output import DiskFullError, OutputBusyError, record_invalid

__all__ = ["DiskFullError", "Job", "Manifest", "ManifestError", "OutputBusyError", "Summary", "json_schema",
           "read_manifest", "record_invalid", "run"]
