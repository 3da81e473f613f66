"""No key leaks: keys of three shapes and a URL password, echoed back by a careless server in the
bodies and headers of its 401, 500 and HTTP-200 error replies, reach no byte of the journal, the
terminal, the exports or the figures."""

from __future__ import annotations

import base64
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from cli_helpers import RUN_TIMEOUT, assert_ok, flipbench

from flipbench.testing.fault_server import FaultConfig, FaultServer, running_in_thread

SK_KEY = "sk-or-v1-5ecret0123456789abcdef0123456789"
BARE_KEY = "Zq9xK2mP7vR4tL8wQ1nB"
ENV_FILE_KEY = "envfile_7Hq2Lm9Xc4Rt"
PASSWORD = "S3cretPassw0rd"
SECRETS = (SK_KEY, BARE_KEY, ENV_FILE_KEY, PASSWORD)
ERRORS = {"server_error": 0.1, "server_error_status": 500, "error_200": 0.1,
          "server_error_text": 0.05, "rate_limit": 0.05, "retry_after_s": 0.01}  # fmt: skip


@pytest.fixture
def echoing() -> Iterator[FaultServer]:
    with running_in_thread(FaultConfig(echo_secrets=True, seed=5, **ERRORS)) as server:  # type: ignore[arg-type]
        yield server


def _with_password(url: str) -> str:
    return url.replace("http://", f"http://alice:{PASSWORD}@")


def _scan(outputs: list[subprocess.CompletedProcess[str]], root: Path) -> None:
    """No secret, nor its base64 form in a basic-auth header, in any output or file."""
    forms = {s: {s, base64.b64encode(f"alice:{s}".encode()).decode()} for s in SECRETS}
    texts = [p.stdout + p.stderr for p in outputs]
    files = [p for p in root.rglob("*") if p.is_file() and p.suffix != ".env"]
    assert any(p.suffix == ".png" for p in files) and any(p.suffix == ".csv" for p in files)
    for path in files:
        data = path.read_bytes()
        texts.append(data.decode("latin-1"))
        if path.suffix == ".parquet":
            texts.append(pd.read_parquet(path).to_csv())
    for secret, variants in forms.items():
        for variant in variants:
            for text in texts:
                assert variant not in text, f"{secret!r} leaked"


def _run(model: str, run_id: str, root: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    run = flipbench(
        "run", "single-flip", "--model", model, "--grid", "zoom", "--n", "4", "--timeout", "5",
        "--max-retries", "4", "--run-id", run_id, "--db", str(root / "j.db"), "--no-progress",
        *extra, cwd=root, timeout=RUN_TIMEOUT,
    )  # fmt: skip
    assert_ok(run)
    return run


def test_no_key_of_any_shape_leaks(
    echoing: FaultServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("OPENROUTER_API_KEY", SK_KEY)
    monkeypatch.setenv("OPENROUTER_BASE_URL", echoing.base_url)
    monkeypatch.setenv("BARE_API_KEY", BARE_KEY)
    monkeypatch.setenv("BARE_BASE_URL", _with_password(echoing.base_url))
    monkeypatch.setenv("BASIC_BASE_URL", _with_password(echoing.base_url))
    (tmp_path / "keys.env").write_text(
        f"ENVFILE_API_KEY={ENV_FILE_KEY}\nENVFILE_BASE_URL={echoing.base_url}\n"
    )
    outputs = [
        _run("openrouter/fault/model", "sk", tmp_path),
        _run("openai-api/bare/fault/model", "bare", tmp_path),
        _run("openai-api/basic/fault/model", "basic", tmp_path),
        _run("openai-api/envfile/fault/model", "envfile", tmp_path, "--env-file", "keys.env"),
    ]
    db = str(tmp_path / "j.db")
    for command in (
        ("show", "sk", "--format", "table"), ("show", "bare", "--format", "csv"),
        ("show", "basic", "--format", "json"), ("show", "envfile", "--format", "json"),
        ("runs", "--format", "json"), ("export", "sk", "--format", "csv"),
        ("export", "basic", "--format", "parquet"),
    ):  # fmt: skip
        outputs.append(flipbench(*command, "--db", db, cwd=tmp_path))
        assert_ok(outputs[-1])
    assert echoing.counts.get("server_error", 0) + echoing.counts.get("error_200", 0) > 0
    _scan(outputs, tmp_path)


@pytest.mark.parametrize("which", ["sk", "bare", "envfile", "basic"])
def test_a_rejected_key_echoed_in_a_401_is_not_printed(
    which: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    config = FaultConfig(echo_secrets=True, api_key="the-right-key-0123456789")
    with running_in_thread(config) as server:
        url = server.base_url
        monkeypatch.setenv("OPENROUTER_API_KEY", SK_KEY)
        monkeypatch.setenv("OPENROUTER_BASE_URL", url)
        monkeypatch.setenv("BARE_API_KEY", BARE_KEY)
        monkeypatch.setenv("BARE_BASE_URL", url)
        monkeypatch.setenv("BASIC_BASE_URL", _with_password(url))
        (tmp_path / "keys.env").write_text(
            f"ENVFILE_API_KEY={ENV_FILE_KEY}\nENVFILE_BASE_URL={url}\n"
        )
        model = {"sk": "openrouter/fault/model", "bare": "openai-api/bare/fault/model",
                 "envfile": "openai-api/envfile/fault/model",
                 "basic": "openai-api/basic/fault/model"}[which]  # fmt: skip
        extra = ("--env-file", "keys.env") if which == "envfile" else ()
        db = str(tmp_path / "j.db")
        proc = flipbench(
            "run", "single-flip", "--model", model, "--p", "50", "--n", "3", "--run-id", which,
            "--db", db, "--no-progress", *extra, cwd=tmp_path, timeout=RUN_TIMEOUT,
        )  # fmt: skip
        assert server.counts.get("unauthorized", 0) >= 1
    assert proc.returncode == 2 and "Traceback" not in proc.stdout + proc.stderr
    line = proc.stderr.splitlines()[-1]  # after the plan line
    assert line.startswith("error:") and "rejected the API key" in line
    # The error names the server it came from, not OpenRouter for every API.
    service = "OpenRouter" if which == "sk" else f"the {which} server"
    assert f"{service} rejected the API key" in line
    shown = flipbench("show", which, "--format", "json", "--db", db, cwd=tmp_path)
    runs = flipbench("runs", "--db", db, cwd=tmp_path)
    _scan_text([proc, shown, runs], tmp_path)


def _scan_text(outputs: list[subprocess.CompletedProcess[str]], root: Path) -> None:
    texts = [p.stdout + p.stderr for p in outputs]
    files = [p for p in root.rglob("*") if p.is_file() and p.suffix != ".env"]
    texts += [p.read_bytes().decode("latin-1") for p in files]
    for secret in SECRETS:
        basic = base64.b64encode(f"alice:{secret}".encode()).decode()
        for text in texts:
            assert secret not in text and basic not in text, f"{secret!r} leaked"
