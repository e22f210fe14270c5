"""The Gradio page: widgets wired to the plain handlers in ``handlers.py`` (no model logic here).

Every event goes through :func:`safe`, so bad input or a missing model becomes a message in the
page (the tab's message box), never a stack trace; unexpected errors are logged with their
traceback on the server and shown as one line.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from twistlm.demo.backend import DemoBackend, DemoUnavailable, missing_model_message
from twistlm.demo.handlers import (
    DemoInputError,
    Limits,
    OutputStore,
    SamplingSettings,
    compare_audio,
    continue_audio,
    list_benchmark_pairs,
    list_samples,
    load_pick,
    resynthesize_audio,
    warm_vs_cold,
)

log = logging.getLogger("twistlm.demo")

MARKER = ".twistlm-demo"  # marks a dir as the demo's own output dir

INTRO = """# twistlm: spoken language modelling demo
TWIST (Hassid et al. 2023): a speech language model warm-started from a text LM. Speech is turned
into discrete units, the SpeechLM continues or scores the unit sequence, a unit vocoder speaks it."""


def error_message(e: BaseException) -> str:
    """What the page shows for an exception (one paragraph, no traceback)."""
    if isinstance(e, (DemoInputError, DemoUnavailable)):
        return f"**Error:** {e}"
    if isinstance(e, (ValueError, FileNotFoundError)):  # library checks (incompatible dirs, ...)
        return f"**Error:** {' '.join(str(e).split())}"
    return f"**Internal error** ({type(e).__name__}: {' '.join(str(e).split())[:300]}); details in the server log."


def safe(fn: Callable[..., tuple], n_outputs: int) -> Callable[..., tuple]:
    """Wrap a handler returning ``(message, *outputs)``: any exception -> (message, None, ...)."""

    def wrapped(*args):
        try:
            return fn(*args)
        except Exception as e:
            if not isinstance(e, (DemoInputError, DemoUnavailable, ValueError, FileNotFoundError)):
                log.exception("demo handler %s failed", getattr(fn, "__name__", fn))
            return (error_message(e),) + (None,) * (n_outputs - 1)

    wrapped.__name__ = getattr(fn, "__name__", "handler")
    return wrapped


def pcm16(audio: tuple[int, np.ndarray]) -> tuple[int, np.ndarray]:
    """(rate, float32 in [-1, 1]) -> (rate, int16): Gradio would peak-normalise float audio,
    so picked samples would not reach the handlers as they are on disk."""
    sr, wav = audio
    return sr, (np.clip(wav, -1.0, 1.0) * 32767).astype(np.int16)


def _notes(notes: list[str]) -> str:
    return ("Note: " + "; ".join(notes) + ".") if notes else ""


def prepare_out_dir(out_dir: str | Path) -> OutputStore:
    """The demo writes only under ``out_dir``; refuse a dir that holds something else."""
    out = Path(out_dir).resolve()
    if out.exists() and any(out.iterdir()) and not (out / MARKER).exists():
        raise FileExistsError(
            f"{out} is not empty and is not a demo output dir: give --out-dir a new or empty dir "
            "(the demo serves files from it)"
        )
    out.mkdir(parents=True, exist_ok=True)
    (out / MARKER).touch()
    return OutputStore(out)


def _sampling_controls(gr: Any, limits: Limits, prefix: str) -> list:
    """The sampling widgets of a tab (continuation and prompt seconds, temperature, top-k,
    top-p, seed), in the order the handlers take them."""
    with gr.Accordion("Sampling settings", open=False):
        seconds = gr.Slider(
            0,
            float(limits.max_continue_seconds),
            value=0,
            step=0.5,
            label="continuation seconds (0 = TWIST rule: up to 3x the prompt)",
            elem_id=f"{prefix}-seconds",
        )
        prompt_s = gr.Slider(
            0,
            float(limits.max_seconds),
            value=3.0,
            step=0.5,
            label="prompt seconds used (0 = all)",
        )
        temperature = gr.Slider(0, 2, value=0.8, step=0.05, label="temperature (0 = greedy)")
        top_k = gr.Number(value=50, precision=0, label="top-k (0 = off; 50 as TWIST)")
        top_p = gr.Slider(0.05, 1, value=1.0, step=0.05, label="top-p (1 = off)")
        seed = gr.Number(value=0, precision=0, label="seed")
    return [seconds, prompt_s, temperature, top_k, top_p, seed]


def _audio_in(gr: Any, label: str, elem_id: str):
    return gr.Audio(sources=["upload", "microphone"], type="filepath", label=label, elem_id=elem_id)


class DemoApp:
    """The event functions (plain Python: ``(message, *outputs)``), then :meth:`build`."""

    def __init__(self, backend: DemoBackend, store: OutputStore, limits: Limits | None = None):
        self.backend, self.store, self.limits = backend, store, limits or Limits()
        self.samples = list_samples(backend)
        self.pairs = list_benchmark_pairs(backend)

    # ---- events ----
    def on_continue(self, audio, which, seconds, prompt_seconds, temperature, top_k, top_p, seed):
        s = SamplingSettings(
            seconds or None, prompt_seconds or None, temperature, top_k, top_p, int(seed or 0)
        )
        out = continue_audio(self.backend, self.store, audio, s, which or "warm", self.limits)
        return (
            _notes(out.notes) or "Done.",
            str(out.continuation_wav),
            str(out.full_wav),
            out.figure,
            out.transcript,
            out.details,
        )

    def on_compare(self, audio_a, audio_b, which):
        out = compare_audio(self.backend, audio_a, audio_b, which or "warm", self.limits)
        return _notes(out.notes) or "Done.", out.markdown

    def on_resynth(self, audio, durations):
        out = resynthesize_audio(self.backend, self.store, audio, durations, self.limits)
        return _notes(out.notes) or "Done.", str(out.wav_path), out.figure, out.details

    def on_warm_cold(self, audio, seconds, prompt_seconds, temperature, top_k, top_p, seed):
        s = SamplingSettings(
            seconds or None, prompt_seconds or None, temperature, top_k, top_p, int(seed or 0)
        )
        out = warm_vs_cold(self.backend, self.store, audio, s, self.limits)
        w, c = out.warm, out.cold
        return (
            _notes(w.notes) or "Done.",
            str(w.full_wav),
            w.figure,
            w.transcript,
            str(c.full_wav),
            c.figure,
            c.transcript,
            out.markdown,
        )

    def on_pick_sample(self, label):
        if not label:
            return "", None
        return "", pcm16(load_pick(self.samples[label], self.backend))

    def on_pick_pair(self, label):
        if not label:
            return "", None, None
        rec = self.pairs[label]
        a = pcm16(load_pick(rec.positive, self.backend))
        b = pcm16(load_pick(rec.negative, self.backend))
        text = f"A = the real one ({rec.positive_text or rec.positive.key}), B = the foil ({rec.negative_text or rec.negative.key})."
        return text, a, b

    # ---- page ----
    def build(self, preload_problems: list[str] | None = None):
        """The Gradio Blocks: the models' status, then one tab per task."""
        import gradio as gr

        backend = self.backend
        models = backend.models_available() or ["warm"]
        status = backend.status_markdown()
        if preload_problems:
            status += "\n\n**Problems:** " + "; ".join(preload_problems)
        theme = gr.themes.Default(  # system fonts: the page loads nothing from the internet
            font=["ui-sans-serif", "system-ui", "sans-serif"],
            font_mono=["ui-monospace", "monospace"],
        )
        self.theme = theme
        heavy = {"concurrency_id": "model", "concurrency_limit": self.concurrency}
        with gr.Blocks(
            title="twistlm demo", analytics_enabled=False, delete_cache=(3600, 86400)
        ) as page:
            gr.Markdown(INTRO)
            with gr.Accordion("Models", open=backend.paths.model is None):
                gr.Markdown(status, elem_id="status")
            self._continue_tab(gr, models, heavy)
            self._compare_tab(gr, models, heavy)
            self._resynth_tab(gr, heavy)
            self._warm_cold_tab(gr, heavy)
        return page

    def _continue_tab(self, gr: Any, models: list[str], heavy: dict[str, Any]) -> None:
        with gr.Tab("Continue", elem_id="tab-continue"):
            with gr.Row():
                with gr.Column():
                    prompt = _audio_in(gr, "prompt (upload or record)", "continue-prompt")
                    pick = gr.Dropdown(
                        list(self.samples),
                        label="or pick a held-out sample",
                        value=None,
                        visible=bool(self.samples),
                    )
                    which = gr.Radio(models, value=models[0], label="model")
                    ctl = _sampling_controls(gr, self.limits, "continue")
                    go = gr.Button("Continue", variant="primary", elem_id="continue-button")
                with gr.Column():
                    msg = gr.Markdown(elem_id="continue-message")
                    cont = gr.Audio(
                        label="continuation",
                        type="filepath",
                        interactive=False,
                        elem_id="continuation-audio",
                    )
                    full = gr.Audio(
                        label="prompt + continuation",
                        type="filepath",
                        interactive=False,
                        elem_id="full-audio",
                    )
                    plot = gr.Plot(label="units over time")
                    transcript = gr.Textbox(
                        label="ASR transcript of the continuation", interactive=False
                    )
                    details = gr.Markdown(elem_id="continue-details")
            pick.change(safe(self.on_pick_sample, 2), [pick], [msg, prompt])
            go.click(
                safe(self.on_continue, 6),
                [prompt, which, *ctl],
                [msg, cont, full, plot, transcript, details],
                api_name="continue",
                **heavy,
            )

    def _compare_tab(self, gr: Any, models: list[str], heavy: dict[str, Any]) -> None:
        with gr.Tab("Compare", elem_id="tab-compare"):
            gr.Markdown(
                "Which of two utterances does the SpeechLM find more likely? This is the sWUGGY / sBLIMP / StoryCloze test, made interactive."
            )
            with gr.Row():
                a = _audio_in(gr, "utterance A", "compare-a")
                b = _audio_in(gr, "utterance B", "compare-b")
            pair = gr.Dropdown(
                list(self.pairs),
                label="or pick a benchmark pair",
                value=None,
                visible=bool(self.pairs),
            )
            which_c = gr.Radio(models, value=models[0], label="model")
            go_c = gr.Button("Compare", variant="primary", elem_id="compare-button")
            msg_c = gr.Markdown(elem_id="compare-message")
            panel = gr.Markdown(elem_id="likelihood-panel")
            pair.change(safe(self.on_pick_pair, 3), [pair], [msg_c, a, b])
            go_c.click(
                safe(self.on_compare, 2),
                [a, b, which_c],
                [msg_c, panel],
                api_name="compare",
                **heavy,
            )

    def _resynth_tab(self, gr: Any, heavy: dict[str, Any]) -> None:
        with gr.Tab("Resynthesize", elem_id="tab-resynth"):
            gr.Markdown("Audio -> units -> vocoder: hear what the tokenizer keeps of the speech.")
            with gr.Row():
                with gr.Column():
                    r_in = _audio_in(gr, "input", "resynth-input")
                    durs = gr.Radio(
                        ["true", "predicted"],
                        value="true",
                        label="durations (true: the tokenizer's run lengths; predicted: the vocoder's predictor)",
                    )
                    go_r = gr.Button("Resynthesize", variant="primary", elem_id="resynth-button")
                with gr.Column():
                    msg_r = gr.Markdown(elem_id="resynth-message")
                    r_out = gr.Audio(
                        label="resynthesized",
                        type="filepath",
                        interactive=False,
                        elem_id="resynth-audio",
                    )
                    r_plot = gr.Plot(label="units over time")
                    r_details = gr.Markdown()
            go_r.click(
                safe(self.on_resynth, 4),
                [r_in, durs],
                [msg_r, r_out, r_plot, r_details],
                api_name="resynthesize",
                **heavy,
            )

    def _warm_cold_tab(self, gr: Any, heavy: dict[str, Any]) -> None:
        with gr.Tab("Warm vs cold", elem_id="tab-warm-cold"):
            if len(self.backend.models_available()) < 2:
                gr.Markdown(
                    f"**{missing_model_message(self.backend.paths, 'cold' if self.backend.has_model('warm') else 'warm')}**"
                )
            gr.Markdown(
                "The same prompt, settings and seed through the warm-started and the cold-started model (TWIST's main comparison)."
            )
            w_in = _audio_in(gr, "prompt", "wc-prompt")
            w_pick = gr.Dropdown(
                list(self.samples),
                label="or pick a held-out sample",
                value=None,
                visible=bool(self.samples),
            )
            w_ctl = _sampling_controls(gr, self.limits, "wc")
            go_w = gr.Button("Continue with both", variant="primary", elem_id="wc-button")
            msg_w = gr.Markdown(elem_id="wc-message")
            with gr.Row():
                with gr.Column():
                    gr.Markdown("### warm")
                    w_audio = gr.Audio(
                        label="warm: prompt + continuation", type="filepath", interactive=False
                    )
                    w_plot = gr.Plot(label="warm units")
                    w_text = gr.Textbox(label="warm ASR", interactive=False)
                with gr.Column():
                    gr.Markdown("### cold")
                    c_audio = gr.Audio(
                        label="cold: prompt + continuation", type="filepath", interactive=False
                    )
                    c_plot = gr.Plot(label="cold units")
                    c_text = gr.Textbox(label="cold ASR", interactive=False)
            w_table = gr.Markdown()
            w_pick.change(safe(self.on_pick_sample, 2), [w_pick], [msg_w, w_in])
            go_w.click(
                safe(self.on_warm_cold, 8),
                [w_in, *w_ctl],
                [msg_w, w_audio, w_plot, w_text, c_audio, c_plot, c_text, w_table],
                api_name="warm_vs_cold",
                **heavy,
            )

    concurrency: int = 1


def build_app(
    backend: DemoBackend,
    out_dir: str | Path,
    limits: Limits | None = None,
    concurrency: int = 1,
    max_queue: int = 16,
    preload: bool = True,
):
    """The queued Gradio Blocks and its launch kwargs (``page.launch(**kwargs)``).

    Uploads and Gradio's cache go to ``out_dir/cache``; results to ``out_dir/runs``. The server
    may serve files only from ``out_dir`` (``allowed_paths``); picked samples are read by the
    handlers from the given dirs and sent as audio data, so those dirs are never served.
    """
    limits = limits or Limits()
    store = prepare_out_dir(out_dir)
    os.environ["GRADIO_TEMP_DIR"] = str(store.root / "cache")  # uploads land in our dir
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    problems = backend.preload() if preload else []
    app = DemoApp(backend, store, limits)
    app.concurrency = concurrency
    page = app.build(problems)
    page.queue(max_size=max_queue, default_concurrency_limit=concurrency)
    launch_kwargs: dict[str, Any] = {
        "allowed_paths": [str(store.root)],
        "max_file_size": f"{4 * limits.max_upload_mb:g}mb",  # hard cap; ours gives the message
        "show_error": False,
        "share": False,
        "theme": app.theme,
        "footer_links": ["api"],
    }
    return page, launch_kwargs, app
