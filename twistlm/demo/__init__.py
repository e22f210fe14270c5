"""Local web demo over the library (``twistlm demo``): continue, compare, resynthesize, warm vs cold.

``handlers`` holds the plain request functions (tested without a browser), ``backend`` the lazily
loaded components, ``app`` the Gradio page that wires them, ``cli`` the subcommand.
"""

from twistlm.demo.backend import DemoBackend, DemoPaths, DemoUnavailable, resolve_paths
from twistlm.demo.handlers import SamplingSettings
from twistlm.demo.inputs import DemoInputError, Limits, OutputStore

__all__ = [
    "DemoBackend",
    "DemoInputError",
    "DemoPaths",
    "DemoUnavailable",
    "Limits",
    "OutputStore",
    "SamplingSettings",
    "resolve_paths",
]
