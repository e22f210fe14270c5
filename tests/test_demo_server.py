"""The demo server without a browser: CLI, page wiring, error messages, file serving, the API."""

import socket

import httpx
import numpy as np
import pytest
import soundfile as sf

from twistlm.cli import main
from twistlm.demo.app import DemoApp, build_app, prepare_out_dir, safe
from twistlm.demo.backend import DemoBackend, resolve_paths
from twistlm.demo.handlers import Limits, OutputStore

gradio = pytest.importorskip("gradio", reason="the demo extra is not installed")


@pytest.fixture(scope="module")
def qs(tmp_path_factory, tiny_speech_lm):
    from test_demo_handlers import build_quickstart_layout

    return build_quickstart_layout(tiny_speech_lm, tmp_path_factory.mktemp("qs"), cold=False)


def test_cli_check_and_errors(qs, tmp_path, capsys):
    assert main(["demo", "--check", "--quickstart-dir", str(qs), "--asr", "off"]) == 0
    out = capsys.readouterr().out
    assert f"warm model: {qs / 'models/warm'}" in out and "cold model: not found" in out
    assert main(["demo", "--check", "--quickstart-dir", str(tmp_path / "none")]) == 1
    assert f"Make one with twistlm quickstart --out {tmp_path / 'none'} " in capsys.readouterr().out
    assert main(["demo", "--check", "--model", str(tmp_path / "typo")]) == 1
    assert "--model" in capsys.readouterr().err
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine/thesis.tex").write_text("x")
    rc = main(["demo", "--quickstart-dir", str(qs), "--out-dir", str(tmp_path / "mine")])
    assert rc == 1 and "not a demo output dir" in capsys.readouterr().err
    import argparse

    from twistlm.demo import cli

    p = argparse.ArgumentParser()
    cli.add_arguments(p)
    args = p.parse_args([])
    assert (args.host, args.port, args.quickstart_dir) == ("127.0.0.1", 7860, "quickstart")


def test_out_dir_is_the_demos_own(tmp_path):
    store = prepare_out_dir(tmp_path / "o")
    assert (store.root / ".twistlm-demo").exists()
    prepare_out_dir(tmp_path / "o")  # reusing its own dir is fine
    (tmp_path / "x").mkdir()
    (tmp_path / "x/data.csv").write_text("1")
    with pytest.raises(FileExistsError):
        prepare_out_dir(tmp_path / "x")


def test_page_events_turn_errors_into_messages(qs, tmp_path):
    empty = DemoBackend(resolve_paths(tmp_path / "no_quickstart"), asr="off")
    app = DemoApp(empty, OutputStore(tmp_path / "o"))
    wav = tmp_path / "p.wav"
    sf.write(str(wav), np.sin(np.arange(16000) / 5).astype(np.float32) * 0.3, 16000)
    msg, *rest = safe(app.on_continue, 6)(str(wav), "warm", 0, 3, 0.8, 0, 1.0, 0)
    assert msg.startswith("**Error:** No SpeechLM found") and "`twistlm quickstart --out" in msg
    assert rest == [None] * 5
    app = DemoApp(DemoBackend(resolve_paths(qs), asr="off"), OutputStore(tmp_path / "o"))
    msg, panel = safe(app.on_compare, 2)(str(wav), None, "warm")
    assert msg == "**Error:** no utterance B audio: upload a file or record one" and panel is None

    def broken(*_):
        raise RuntimeError("boom\nsecond line")

    msg, x = safe(broken, 2)()
    assert msg == "**Internal error** (RuntimeError: boom second line); details in the server log."
    # a benchmark pick fills A with the real utterance and B with the foil
    text, a, b = app.on_pick_pair("tsc 1: true ending 1")
    assert text.startswith("A = the real one (true ending 1)")
    assert a[1].shape == (32000,) and b[1].shape == (40000,) and a[1].dtype == np.int16
    ref = sf.read(str(qs / "benchmarks/tSC/1_correct.wav"), dtype="int16")[0]
    assert np.abs(a[1].astype(int) - ref).max() <= 1  # as on disk, not peak-normalised


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_server_api_queue_and_file_serving(qs, tmp_path):
    from gradio_client import Client, handle_file

    backend = DemoBackend(resolve_paths(qs), asr="off")
    page, kwargs, app = build_app(backend, tmp_path / "out", Limits(max_seconds=3.8), max_queue=4)
    heavy = {f.api_name: (f.concurrency_id, f.concurrency_limit) for f in page.fns.values()}
    for name in ("continue", "compare", "resynthesize", "warm_vs_cold"):
        assert heavy[name] == ("model", 1)  # one model request at a time; the rest queue
    assert page._queue.max_size == 4 and kwargs["allowed_paths"] == [str(tmp_path / "out")]
    _, url, _ = page.launch(
        server_name="127.0.0.1",
        server_port=_free_port(),
        prevent_thread_lock=True,
        quiet=True,
        **kwargs,
    )
    try:
        assert httpx.get(url).status_code == 200
        client = Client(url, verbose=False)
        prompt = handle_file(str(qs / "report/samples/prompt_1.wav"))
        msg, cont, full, _, _, details = client.predict(
            prompt, "warm", 0.5, 2.0, 0.8, 0, 1.0, 5, api_name="/continue"
        )
        assert msg == "Done." and "prompt 2.00 s" in details
        info = sf.info(cont)
        assert info.samplerate == 16000 and info.frames > 0
        assert sf.info(full).frames == 32000 + info.frames
        # over the duration limit (3.8 s): a message, no result
        long = tmp_path / "long.wav"
        sf.write(str(long), np.sin(np.arange(4 * 16000) / 7).astype(np.float32) * 0.3, 16000)
        msg, panel = client.predict(prompt, handle_file(str(long)), "warm", api_name="/compare")
        assert "utterance B is 4.0 s long; the limit is 3.8 s" in msg and panel is None
        msg, resynth, _, details = client.predict(prompt, "true", api_name="/resynthesize")
        assert msg == "Done." and sf.info(resynth).frames % 640 == 0 and "units/s" in details
        msg, *rest = client.predict(prompt, 0.5, 2.0, 0.8, 0, 1.0, 0, api_name="/warm_vs_cold")
        assert msg.startswith("**Error:** Warm vs cold needs both") and "--cold-model" in msg
        # the server serves its own outputs, not the model dirs or anything else
        own = next((tmp_path / "out/runs").glob("*/continuation.wav"))
        assert httpx.get(f"{url}gradio_api/file={own}").status_code == 200
        for other in (qs / "models/warm/config.json", qs / "report/samples/prompt_0.wav"):
            r = httpx.get(f"{url}gradio_api/file={other}")
            assert r.status_code in (403, 404), (other, r.status_code)
        assert httpx.get(f"{url}gradio_api/file=/etc/passwd").status_code in (403, 404)
    finally:
        page.close()
