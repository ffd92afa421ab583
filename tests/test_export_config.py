"""`po-tui export config`: the consuming pipeline's block, for a name the server really serves.

The fake OpenAI-compatible server lists models at GET /v1/models as Ollama, vLLM and llama-server
do (Ollama as `NAME:latest` for `ollama create NAME`).
"""

from __future__ import annotations

import contextlib
import io
import socket

import pytest
import yaml

from engine.cli import main
from tests.fakes.llm_servers import FakeOpenAI


def run_cli(argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main(argv)
    return rc, out.getvalue(), err.getvalue()


def test_export_config_checks_the_name_against_the_server(tmp_path):
    server = FakeOpenAI()
    server.models = ["qwen2.5:7b-instruct", "po-student-v2:latest"]  # how Ollama lists `ollama create po-student-v2`
    with server:
        rc, stdout, err = run_cli(["export", "config", "--name", "po-student-v2", "--check", server.url + "/v1"])
        assert rc == 0, err
        assert yaml.safe_load(stdout) == {"roles": {"product_owner": {
            "provider": "ollama", "model": "po-student-v2", "temperature": 0.4, "max_tokens": 4096}}}
        assert "po-student-v2 is served at" in err
        rc, stdout, err = run_cli(["export", "config", "--name", "po-student-v1", "--check", server.url])
        assert rc == 2 and stdout == "" and len(err.strip().splitlines()) == 1
        assert "'po-student-v1' is not served" in err and "po-student-v2:latest" in err and "--name" in err
        assert server.gets == ["/v1/models", "/v1/models"]  # a bare host is asked at /v1 too
        # a vLLM-served LoRA module under its own name, for another provider of the consumer
        server.models = ["Qwen/Qwen2.5-7B-Instruct", "student"]
        rc, stdout, err = run_cli(["export", "config", "--name", "student", "--provider", "openai", "--check", server.url])
        assert rc == 0, err
        assert yaml.safe_load(stdout)["roles"]["product_owner"]["provider"] == "openai"


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("case", ["unreachable", "no_list", "bad_url", "bad_provider", "bad_name"])
def test_export_config_refusals_are_one_line(case):
    server = FakeOpenAI()  # no .models: GET answers 404
    with server:
        argv = {
            "unreachable": ["--check", f"http://127.0.0.1:{_closed_port()}/v1"],
            "no_list": ["--check", server.url + "/v1"],
            "bad_url": ["--check", "127.0.0.1:11434"],
            "bad_provider": ["--provider", "ollama: x"],
            "bad_name": ["--name", "po student"],
        }[case]
        rc, stdout, err = run_cli(["export", "config", *argv])
    expect = {"unreachable": "cannot reach", "no_list": "HTTP 404", "bad_url": "expected an http(s) URL",
              "bad_provider": "--provider", "bad_name": "--name"}[case]
    assert rc == 2 and stdout == "" and len(err.strip().splitlines()) == 1, err
    assert expect in err and "Traceback" not in err
