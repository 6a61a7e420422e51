"""Offline batch rendering of manifests (``audiogan render``): local or Ray engine, resumable (imported on first
use)."""

from typing import TYPE_CHECKING

from audiogan._lazy import lazy_exports

if TYPE_CHECKING:
    from audiogan.render.engine import Summary, run
    from audiogan.render.manifest import Job, Manifest, ManifestError, json_schema, read_manifest
    from audiogan.render.output import DiskFullError, OutputBusyError, record_invalid

__all__ = ["DiskFullError", "Job", "Manifest", "ManifestError", "OutputBusyError", "Summary", "json_schema",
           "read_manifest", "record_invalid", "run"]
__getattr__, __dir__ = lazy_exports(__name__, {
    "engine": ("Summary", "run"),
    "manifest": ("Job", "Manifest", "ManifestError", "json_schema", "read_manifest"),
    "output": ("DiskFullError", "OutputBusyError", "record_invalid"),
})
