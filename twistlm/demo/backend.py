"""What the demo runs on: model / tokenizer / vocoder dirs, loaded lazily and shared by requests.

The UI layer never loads a model itself: it asks a :class:`DemoBackend` for components, which
loads each one once (under a lock, so concurrent first requests load it once) through the
library's own loaders (``SpeechLM.from_pretrained``, ``UnitTokenizer.from_pretrained``,
``Vocoder.from_pretrained``) and checks them with ``twistlm.lm.components``, the rules every
stage uses.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

Which = Literal["warm", "cold"]

# The quickstart's layout (twistlm/quickstart/pipeline.py): key -> candidate subdirs, first wins.
QUICKSTART_COMMAND = "twistlm quickstart --out {dir}"
QUICKSTART_LAYOUT: dict[str, tuple[str, ...]] = {
    "model": ("models/warm",),
    "cold_model": ("models/cold",),
    "tokenizer": ("tokenizer",),
    # vocoder/ is the training run; vocoder/vocoder the exported model (plain dirs also work)
    "vocoder": ("vocoder/vocoder", "vocoder"),
    "samples": ("report/samples",),
    "benchmarks": ("benchmarks",),
}
# a candidate counts only when it holds this file (so a training-run folder is not taken)
_MARKER_FILE = {"vocoder": "generator.safetensors", "tokenizer": "tokenizer.json"}


def _find(qs: Path, key: str) -> Path | None:
    for sub in QUICKSTART_LAYOUT[key]:
        p = qs / sub
        marker = _MARKER_FILE.get(key)
        if p.is_dir() and (marker is None or (p / marker).is_file()):
            return p
    return None


class DemoUnavailable(RuntimeError):
    """A feature needs a component that does not exist (the message says how to make it)."""


@dataclass(frozen=True)
class DemoPaths:
    """Dirs the demo may read. ``None``: not given and not found in the quickstart dir."""

    quickstart_dir: Path
    model: Path | None
    cold_model: Path | None
    tokenizer: Path | None
    vocoder: Path | None
    samples: Path | None
    benchmarks: Path | None

    def readable_roots(self) -> list[Path]:
        """Every dir the demo reads from (besides its own output dir)."""
        roots = [self.model, self.cold_model, self.tokenizer, self.vocoder]
        roots += [self.samples, self.benchmarks]
        return [p.resolve() for p in roots if p is not None]


def resolve_paths(
    quickstart_dir: str | Path = "quickstart",
    model: str | Path | None = None,
    cold_model: str | Path | None = None,
    tokenizer: str | Path | None = None,
    vocoder: str | Path | None = None,
) -> DemoPaths:
    """Explicit dirs win; missing ones fall back to the quickstart layout when present there.

    An explicit dir that does not exist raises ``FileNotFoundError`` (a typo should not
    silently fall back); a missing quickstart default is just ``None``.
    """
    qs = Path(quickstart_dir)
    given = {"model": model, "cold_model": cold_model, "tokenizer": tokenizer, "vocoder": vocoder}
    found: dict[str, Path | None] = {}
    for key, value in given.items():
        if value is not None:
            p = Path(value)
            if not p.is_dir():
                flag = "--" + key.replace("_", "-")
                raise FileNotFoundError(f"{flag} {p}: not a directory")
            found[key] = p
        else:
            found[key] = _find(qs, key)
    extra = {key: _find(qs, key) for key in ("samples", "benchmarks")}
    return DemoPaths(quickstart_dir=qs, **found, **extra)


def missing_model_message(paths: DemoPaths, which: Which = "warm") -> str:
    """What to run when a model is missing (shown in the page and printed by the CLI)."""
    qs = paths.quickstart_dir
    cmd = QUICKSTART_COMMAND.format(dir=qs)
    if which == "cold":
        return (
            f"No cold-started model: looked for {qs / QUICKSTART_LAYOUT['cold_model'][0]}. "
            f"Run `{cmd}` (it trains a warm and a cold model), or pass --cold-model DIR."
        )
    return (
        f"No SpeechLM found: looked for {qs / QUICKSTART_LAYOUT['model'][0]}. "
        f"Make one with `{cmd}` (offline, CPU), or pass --model DIR "
        "(a twistlm, TWIST or SlamKit model dir; see `twistlm init-lm` and `twistlm train`)."
    )


class DemoBackend:
    """Lazily loaded, cached components shared by all requests (thread-safe).

    Args:
        paths: from :func:`resolve_paths`.
        device: torch device for every model.
        asr: ``"auto"`` (Whisper tiny.en when installed), ``"off"``, a faster-whisper model
            name/dir, or a callable ``wav (T,) float32 16 kHz -> text``.
        autocast: bf16 autocast for the SpeechLM (CPU with AMX, CUDA).
    """

    def __init__(
        self, paths: DemoPaths, device: str = "cpu", asr: Any = "auto", autocast: bool = False
    ):
        self.paths = paths
        self.device = device
        self.asr = asr
        self.autocast = autocast
        self._lock = threading.RLock()  # loaders nest (components -> lm)
        self._cache: dict[str, Any] = {}
        self._asr_error: str | None = None

    # ---- what exists ----
    def has_model(self, which: Which = "warm") -> bool:
        return (self.paths.model if which == "warm" else self.paths.cold_model) is not None

    def models_available(self) -> list[Which]:
        return [w for w in ("warm", "cold") if self.has_model(w)]  # type: ignore[misc]

    # ---- loading ----
    def _get(self, key: str, load):
        with self._lock:
            if key not in self._cache:
                self._cache[key] = load()
            return self._cache[key]

    def _recorded(self, key: str) -> Path | None:
        """A tokenizer / vocoder dir recorded in the first available model's metadata."""
        from twistlm.lm.components import recorded_dir  # the rule every stage uses

        for which in self.models_available():
            found = recorded_dir(self.lm(which).meta, key)
            if found is not None:
                return found
        return None

    def tokenizer(self):
        """The UnitTokenizer: --tokenizer / quickstart's, else the one the model records."""
        path = self.paths.tokenizer or self._recorded("tokenizer")
        if path is None:
            raise DemoUnavailable(
                "No tokenizer: pass --tokenizer DIR, or make the quickstart's with "
                f"`{QUICKSTART_COMMAND.format(dir=self.paths.quickstart_dir)}`."
            )
        from twistlm.tokenizer import UnitTokenizer

        return self._get("tokenizer", lambda: UnitTokenizer.from_pretrained(path))

    def vocoder(self):
        """The Vocoder: --vocoder / quickstart's, else the one the model records."""
        path = self.paths.vocoder or self._recorded("vocoder")
        if path is None:
            raise DemoUnavailable(
                "No vocoder: pass --vocoder DIR (train one with `twistlm train-vocoder`), or run "
                f"`{QUICKSTART_COMMAND.format(dir=self.paths.quickstart_dir)}`."
            )
        from twistlm.vocoder import load_vocoder

        return self._get("vocoder", lambda: load_vocoder(path, device=self.device))

    def lm(self, which: Which = "warm"):
        """The SpeechLM ``which`` (raises :class:`DemoUnavailable` with the command to make it)."""
        path = self.paths.model if which == "warm" else self.paths.cold_model
        if path is None:
            raise DemoUnavailable(missing_model_message(self.paths, which))
        from twistlm.lm.model import SpeechLM

        return self._get(f"lm:{which}", lambda: SpeechLM.from_pretrained(path, device=self.device))

    def scorer(self, which: Which = "warm") -> tuple[Any, Any]:
        """(SpeechLM, UnitTokenizer) for likelihoods: Compare works without a vocoder."""
        from twistlm.lm.components import check_compatible

        lm, tok = self.lm(which), self.tokenizer()
        tok_dir = self.paths.tokenizer or self._recorded("tokenizer")
        check_compatible(lm, tok, paths={"tokenizer": tok_dir})
        return lm, tok

    def components(self, which: Which = "warm") -> tuple[Any, Any, Any]:
        """(SpeechLM, UnitTokenizer, Vocoder), one tokenizer and vocoder for every model,
        checked compatible by the library (``load_components``)."""

        def load():
            from twistlm.lm.components import load_components

            lm, tok, voc = self.lm(which), self.tokenizer(), self.vocoder()
            return load_components(lm, tok, voc, device=self.device)

        return self._get(f"components:{which}", load)

    def transcriber(self):
        """``wav -> text`` or None when ASR is off / not installed (reason in :attr:`asr_status`)."""
        if self.asr in (None, "off", False):
            return None
        if callable(self.asr):
            return self.asr
        if self._asr_error is not None:
            return None

        def load():
            from twistlm.eval.textmetrics import whisper_transcriber

            return whisper_transcriber(None if self.asr == "auto" else self.asr, threads=1)

        try:
            return self._get("asr", load)
        except (ImportError, FileNotFoundError, OSError, RuntimeError, ValueError) as e:
            self._asr_error = " ".join(str(e).split())
            return None

    @property
    def asr_status(self) -> str:
        if self.asr in (None, "off", False):
            return "ASR off (--asr off)"
        return f"ASR unavailable: {self._asr_error}" if self._asr_error else "ASR on"

    def preload(self) -> list[str]:
        """Load what exists now (so the first request is fast); problems as messages."""
        problems = []
        steps = [(f"{w} model", lambda w=w: self.components(w)) for w in self.models_available()]
        if not steps:
            steps = [("tokenizer", self.tokenizer), ("vocoder", self.vocoder)]
        for name, load in steps:
            try:
                load()
            except (DemoUnavailable, ValueError, FileNotFoundError, OSError) as e:
                problems.append(f"{name}: {' '.join(str(e).split())}")
        return problems

    def status_markdown(self) -> str:
        """The banner at the top of the page: what was found, and what to run when not."""
        p = self.paths
        lines = []
        for label, path in (
            ("warm model", p.model),
            ("cold model", p.cold_model),
            ("tokenizer", p.tokenizer),
            ("vocoder", p.vocoder),
        ):
            lines.append(f"- {label}: `{path}`" if path else f"- {label}: not found")
        head = ""
        if p.model is None:
            head = f"**{missing_model_message(p)}**\n\n"
        return head + "\n".join(lines)
