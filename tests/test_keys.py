"""Several API keys (`OPENROUTER_API_KEY`, `_0` … `_9`): requests spread over the live keys, a key
out of credit (a real 402 from the loopback fault server) is retired for the whole process and
the request goes on another, every key spent stops the run or sweep with a message that names
the keys and leaves it resumable; the label of the key that served each reply is journaled, and
no key value is written anywhere."""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import string
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from cli_helpers import flipbench
from fault_helpers import BODY, post, serving
from hypothesis import given
from hypothesis import strategies as st

from flipbench.api import RunOutcome, export, start_run
from flipbench.config import RunConfig
from flipbench.errors import BackendFatalError, FlipbenchError
from flipbench.providers.keys import ApiKey, KeyRing, KeysExhausted, key_variables, read_keys
from flipbench.sweep import api as sweep_api
from flipbench.sweep.runner import SweepOptions
from flipbench.testing.fault_server import (
    FaultConfig,
    FaultServer,
    ModelScript,
    running_in_thread,
)

BASE = "OPENROUTER_API_KEY"
VALUES = {
    "OPENROUTER_API_KEY_0": "sk-or-v1-keytest-alpha-0123456789abcdef",
    "OPENROUTER_API_KEY_1": "sk-or-v1-keytest-bravo-0123456789abcdef",
    "OPENROUTER_API_KEY_2": "sk-or-v1-keytest-charlie-0123456789abcd",
}
FRESH = "sk-or-v1-keytest-fresh-0123456789abcdef0"
A, B, C = VALUES.values()


def credits(**per_key: int) -> str:
    """The fault server's `key_credits` for keys named by their label's last digit (k0=5)."""
    labels = {f"k{i}": value for i, value in enumerate(VALUES.values())}
    return ",".join(
        f"{labels.get(k, FRESH if k == 'fresh' else k)}={n}" for k, n in per_key.items()
    )


@pytest.fixture
def no_keys(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No key of the developer's own environment leaks into a test."""
    for name in key_variables(BASE):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("OPENROUTER_BASE_URL", raising=False)
    yield


def _set_keys(monkeypatch: pytest.MonkeyPatch, **labelled: str) -> None:
    for name, value in labelled.items():
        monkeypatch.setenv(name, value)


def _samples(db: Path) -> list[dict[str, Any]]:
    with sqlite3.connect(db) as conn:
        rows = conn.execute(
            "SELECT run_id, condition, sample_index, valid, meta_json FROM samples"
        ).fetchall()
    return [
        {"run": r, "condition": c, "index": i, "valid": v, "meta": json.loads(m or "{}")}
        for r, c, i, v, m in rows
    ]


def _assert_no_key_values(*places: Path | str, values: tuple[str, ...] = (A, B, C, FRESH)) -> None:
    """No key value in any file under the given folders (raw bytes: the SQLite file, its WAL,
    exports, figures) nor in the given texts (stdout, stderr, messages)."""
    for place in places:
        if isinstance(place, Path):
            files = [place] if place.is_file() else [p for p in place.rglob("*") if p.is_file()]
            assert files, place
            for path in files:
                data = path.read_bytes()
                for value in values:
                    assert value.encode() not in data, path
        else:
            for value in values:
                assert value not in place


# --- reading the keys ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, []),
        ({BASE: "  "}, []),
        ({BASE: "sk-one"}, [(BASE, "sk-one")]),
        ({BASE: " sk-one\n"}, [(BASE, "sk-one")]),
        (
            {f"{BASE}_3": "sk-3", f"{BASE}_0": "sk-0"},
            [(f"{BASE}_0", "sk-0"), (f"{BASE}_3", "sk-3")],
        ),
        ({BASE: "sk-x", f"{BASE}_0": "sk-x", f"{BASE}_1": " sk-x "}, [(BASE, "sk-x")]),
        (
            {f"{BASE}_9": "sk-9", f"{BASE}_10": "sk-10", f"{BASE}_A": "sk-a"},
            [(f"{BASE}_9", "sk-9")],
        ),
        ({f"{BASE}_1": "", f"{BASE}_2": "\t", f"{BASE}_4": "sk-4"}, [(f"{BASE}_4", "sk-4")]),
    ],
    ids=["none", "blank", "one", "padded", "order", "duplicates", "only-0-to-9", "blanks"],
)
def test_keys_are_read_in_order_stripped_and_deduplicated(
    env: dict[str, str], expected: list[tuple[str, str]]
) -> None:
    assert [(k.label, k.value) for k in read_keys(env, BASE)] == expected


@pytest.mark.parametrize("value", ["sk-a b", "sk-a\nb", "sk-\x00ab", "sk-a\tb"])
def test_a_key_with_whitespace_inside_is_refused_by_name_not_value(value: str) -> None:
    with pytest.raises(FlipbenchError) as caught:
        read_keys({f"{BASE}_2": value}, BASE)
    assert f"{BASE}_2" in str(caught.value) and value.strip() not in str(caught.value)


_VALUE = st.text(alphabet=" \t\nsk-ab", max_size=6)


@given(st.dictionaries(st.sampled_from(key_variables(BASE)), _VALUE, max_size=11))
def test_reading_keys_from_any_environment(env: dict[str, str]) -> None:
    stripped = {name: value.strip() for name, value in env.items()}
    if any(any(ch.isspace() for ch in v) for v in stripped.values()):
        with pytest.raises(FlipbenchError):
            read_keys(env, BASE)
        return
    keys = read_keys(env, BASE)
    order = list(key_variables(BASE))
    labels = [k.label for k in keys]
    assert labels == sorted(labels, key=order.index)  # in the documented order
    assert len({k.value for k in keys}) == len(keys)  # one key per value
    assert all(k.value and k.value == stripped[k.label] for k in keys)
    assert {k.value for k in keys} == {v for v in stripped.values() if v}  # none dropped
    for key in keys:  # a value is labelled by the first variable that holds it
        first = next(n for n in order if stripped.get(n) == key.value)
        assert key.label == first
        assert repr(key) == f"ApiKey(label={key.label!r})" and str(key) == key.label


def test_the_ring_spreads_over_live_keys_and_retires_for_good() -> None:
    keys = [ApiKey(f"K{i}", f"value-{i}-{s}") for i, s in enumerate(string.ascii_lowercase[:3])]
    ring = KeyRing(keys, base=BASE)
    assert Counter(ring.pick().label for _ in range(300)) == {"K0": 100, "K1": 100, "K2": 100}  # type: ignore[union-attr]
    assert ring.retire(keys[1], "402") and not ring.retire(keys[1], "again")
    assert {ring.pick().label for _ in range(50)} == {"K0", "K2"}  # type: ignore[union-attr]
    ring.retire(keys[0], "402")
    ring.retire(keys[2], "402")
    assert ring.exhausted and ring.pick() is None and list(ring.retired) == ["K1", "K0", "K2"]
    error = ring.exhausted_error("continue with --resume R")
    assert isinstance(error, BackendFatalError) and error.labels == ["K1", "K0", "K2"]
    text = str(error)
    assert "K1, K0, K2 retired (out of credit, HTTP 402)" in text and "--resume R" in text
    assert not any(k.value in text for k in keys)
    mixed = KeyRing(keys, base=BASE)
    mixed.retire(keys[2], "401", "bad_key")
    mixed.retire(keys[0], "402")
    mixed.retire(keys[1], "401", "bad_key")
    text = str(mixed.exhausted_error("continue with --resume R"))
    assert "K2, K1 retired (OpenRouter rejected the API key, HTTP 401); K0 retired (out" in text
    assert not KeyRing([]).exhausted  # no keys at all: a keyless server, never "spent"


# --- the fault server's per-key credit -------------------------------------------------------


def test_the_fault_server_answers_402_once_a_keys_credit_is_spent() -> None:
    async def go() -> list[tuple[str, int, dict[str, Any]]]:
        seen = []
        async with serving(key_credits=credits(k0=2, k1=0)) as (server, url):
            async with aiohttp.ClientSession() as session:
                for value in (A, A, B, A, "sk-unknown-key-000", A):
                    headers = {"Authorization": f"Bearer {value}"}
                    status, _, raw = await post(session, url, BODY, headers)
                    seen.append((value, status, json.loads(raw)))
            assert server.key_counts == {A: 4, B: 1}
            assert server.key_refused == {A: 2, B: 1}
        return seen

    seen = asyncio.run(go())
    assert [s for _, s, _ in seen] == [200, 200, 402, 402, 401, 402]
    refused = seen[2][2]["error"]  # OpenRouter's wire format for an account out of credit
    assert refused["code"] == 402 and refused["message"].startswith("Insufficient credits")
    assert refused["metadata"] == {"limit_source": "openrouter_credits"}
    assert "choices" in seen[0][2] and seen[4][2]["error"]["code"] == 401
    for bad in ("sk-a=x", "sk-a", "=3", "sk-a=-1"):
        with pytest.raises(ValueError, match="key_credits"):
            FaultServer(FaultConfig(key_credits=bad))


# --- an ordinary run -------------------------------------------------------------------------


def _key_labels(rows: list[dict[str, Any]]) -> Counter[str]:
    return Counter(r["meta"].get("key") for r in rows)


def _run_on_three_keys(
    monkeypatch: pytest.MonkeyPatch, db: Path, key_credits: str, *, n: int, cap: int, run: str
) -> tuple[RunOutcome, FaultServer]:
    """A fair-coin run on the fault server with the three keys of VALUES set, each given the
    credit `key_credits` says (a key it does not list meets a 401)."""
    faults = FaultConfig(latency_s=0.005, key_credits=key_credits)
    with running_in_thread(faults) as server:
        monkeypatch.setenv("OPENROUTER_BASE_URL", server.base_url)
        _set_keys(monkeypatch, **VALUES)
        outcome = start_run(
            RunConfig(experiment="fair-coin", model="openrouter/fault/model", n=n,
                      max_concurrency=cap, run_id=run), db,
        )  # fmt: skip
    return outcome, server


def test_a_run_moves_to_the_next_key_when_one_runs_out(
    no_keys: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    db, n, cap = tmp_path / "j.db", 120, 8
    outcome, server = _run_on_three_keys(
        monkeypatch, db, credits(k0=5, k1=40, k2=1000), n=n, cap=cap, run="keys"
    )
    used, refused, ok = server.key_counts, server.key_refused, server.counts["ok"]
    assert outcome.status == "complete"
    rows = _samples(db)
    assert len(rows) == n == ok and all(r["valid"] for r in rows)  # nothing lost, no extra
    assert len({(r["condition"], r["index"]) for r in rows}) == n
    labels = _key_labels(rows)
    # Each reply journaled under the key that served it: exactly what each key paid for.
    assert labels == {"OPENROUTER_API_KEY_0": 5, "OPENROUTER_API_KEY_1": 40,
                      "OPENROUTER_API_KEY_2": n - 45}  # fmt: skip
    # Retired keys are not used again: past their credit, only the requests already in
    # flight when the first 402 came back met one.
    assert used[A] == 5 + refused[A] and 1 <= refused[A] <= cap
    assert used[B] == 40 + refused[B] and 1 <= refused[B] <= cap
    assert refused.get(C, 0) == 0
    retried = [a for r in rows for a in r["meta"].get("attempts", [])]
    assert {a["key"] for a in retried if a["failure"] == "key_retired"} == {
        "OPENROUTER_API_KEY_0", "OPENROUTER_API_KEY_1"
    }  # fmt: skip
    assert outcome.retries["key_retired"] == refused[A] + refused[B]
    export("keys", "csv", tmp_path / "keys.csv", db)
    _assert_no_key_values(tmp_path)
    name = {value: label for label, value in VALUES.items()}
    print(
        f"requests per key { ({name[k]: v for k, v in used.items()}) }, refused"
        f" { ({name[k]: v for k, v in refused.items()}) }, journaled by label {dict(labels)}"
    )


def test_a_rejected_key_is_retired_and_the_run_goes_on_with_the_others(
    no_keys: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A revoked or mistyped key (the service answers 401) belongs to the key, not the model:
    one bad key among several must not stop the run (nor every model of a sweep it is dealt
    to); the requests that met it go on the good keys and nothing is lost."""
    db, n, cap = tmp_path / "j.db", 60, 8
    # The fault server accepts only the keys it gives credit to: key 0 gets a real 401.
    outcome, server = _run_on_three_keys(
        monkeypatch, db, credits(k1=1000, k2=1000), n=n, cap=cap, run="revoked"
    )
    requests, ok = server.counts["requests"], server.counts["ok"]
    assert outcome.status == "complete"
    rows = _samples(db)
    assert len(rows) == n == ok and all(r["valid"] for r in rows)
    labels = _key_labels(rows)
    assert "OPENROUTER_API_KEY_0" not in labels and sum(labels.values()) == n
    assert labels["OPENROUTER_API_KEY_1"] > 0 and labels["OPENROUTER_API_KEY_2"] > 0
    refused = [a for r in rows for a in r["meta"].get("attempts", [])]
    assert refused and {(a["key"], a["http_status"]) for a in refused} == {
        ("OPENROUTER_API_KEY_0", 401)
    }  # fmt: skip
    # Retired at its first 401: only the requests already in flight then met it.
    assert 1 <= requests - ok <= cap and outcome.retries["key_retired"] == requests - ok
    _assert_no_key_values(tmp_path)


@pytest.mark.parametrize(
    ("run_id", "faults", "why"),
    [
        ("spent", credits(k0=0), "out of credit, HTTP 402"),
        # the fault server accepts only keys it gives credit to: key 0 meets a real 401
        ("rejected", credits(k1=1000), "OpenRouter rejected the API key, HTTP 401"),
    ],
)
def test_a_single_spent_or_rejected_key_stops_the_run_after_a_handful_naming_it(
    no_keys: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, run_id: str, faults: str,
    why: str,
) -> None:  # fmt: skip
    with running_in_thread(FaultConfig(key_credits=faults)) as server:
        monkeypatch.setenv("OPENROUTER_BASE_URL", server.base_url)
        monkeypatch.setenv(BASE, A)
        with pytest.raises(KeysExhausted) as caught:
            start_run(RunConfig(model="openrouter/fault/model", n=100, max_concurrency=16,
                                run_id=run_id), tmp_path / "j.db")  # fmt: skip
        requests = server.counts["requests"]
    assert requests <= 4  # slow start: 4 in flight, none retried on the spent key
    text = str(caught.value)
    assert caught.value.labels == [BASE] and f"--resume {run_id}" in text
    assert f"{BASE} retired ({why})" in text
    _assert_no_key_values(tmp_path, text)


def test_an_openai_compatible_server_rotates_its_numbered_keys_too(
    no_keys: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    db = tmp_path / "j.db"
    with running_in_thread(FaultConfig(key_credits=credits(k0=3, k1=100))) as server:
        monkeypatch.setenv("FAULTY_BASE_URL", server.base_url)
        monkeypatch.setenv("FAULTY_API_KEY_0", A)
        monkeypatch.setenv("FAULTY_API_KEY_1", B)
        outcome = start_run(
            RunConfig(experiment="fair-coin", model="openai-api/faulty/fault/model", n=20,
                      max_concurrency=2, run_id="compat"), db,
        )  # fmt: skip
    assert outcome.status == "complete"
    assert _key_labels(_samples(db)) == {"FAULTY_API_KEY_0": 3, "FAULTY_API_KEY_1": 17}
    _assert_no_key_values(tmp_path)


def _cli_env(server_url: str, **labelled: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(BASE)}
    return {**env, "OPENROUTER_BASE_URL": server_url, **labelled}


def _run_cli(env: dict[str, str], *args: str, cwd: Path) -> Any:
    import subprocess

    from cli_helpers import FLIPBENCH

    return subprocess.run(
        [str(FLIPBENCH), *args], cwd=cwd, env=env, stdin=subprocess.DEVNULL,
        capture_output=True, text=True, timeout=180, check=False,
    )  # fmt: skip


def test_every_key_spent_stops_the_run_cleanly_and_a_fresh_key_resumes_it(
    no_keys: None, tmp_path: Path
) -> None:
    work = tmp_path / "work"  # all flipbench writes; the env file lies beside it
    work.mkdir()
    db, n = work / "j.db", 60
    faults = FaultConfig(latency_s=0.005, key_credits=credits(k0=7, k1=9, fresh=1000))
    with running_in_thread(faults) as server:
        two = {"OPENROUTER_API_KEY_0": A, "OPENROUTER_API_KEY_1": B}
        run_args = ("run", "fair-coin", "--model", "openrouter/fault/model", "--n", str(n),
                    "--max-concurrency", "4", "--run-id", "spent", "--db", str(db),
                    "--no-progress")  # fmt: skip
        stopped = _run_cli(_cli_env(server.base_url, **two), *run_args, cwd=work)
        errors = [line for line in stopped.stderr.splitlines() if line.startswith("error:")]
        assert stopped.returncode == 2 and len(errors) == 1, stopped.stderr
        line = errors[0]
        assert "OPENROUTER_API_KEY_0, OPENROUTER_API_KEY_1 retired" in line
        assert "out of credit" in line and "--resume spent" in line
        assert "Traceback" not in stopped.stderr
        assert len(_samples(db)) == 16  # every call a key paid for, journaled
        # A fresh key in an env file: the spent ones are met once more, then left alone.
        env_file = tmp_path / "more.env"
        env_file.write_text(f"OPENROUTER_API_KEY_2={FRESH}\n")
        resumed = _run_cli(_cli_env(server.base_url, **two), "run", "--resume", "spent",
                           "--env-file", str(env_file), "--db", str(db), "--no-progress",
                           cwd=work)  # fmt: skip
        assert resumed.returncode == 0, resumed.stderr
        ok = server.counts["ok"]
    rows = _samples(db)
    assert len(rows) == n == ok and all(r["valid"] for r in rows)
    assert _key_labels(rows) == {"OPENROUTER_API_KEY_0": 7, "OPENROUTER_API_KEY_1": 9,
                                 "OPENROUTER_API_KEY_2": n - 16}  # fmt: skip
    shown = flipbench("export", "spent", "--format", "csv", "--db", str(db), cwd=work)
    assert shown.returncode == 0, shown.stderr
    _assert_no_key_values(
        work, stopped.stdout, stopped.stderr, resumed.stdout, resumed.stderr, shown.stdout,
        shown.stderr,
    )  # fmt: skip


# --- a sweep ---------------------------------------------------------------------------------


def _world(count: int) -> tuple[list[dict[str, Any]], dict[str, ModelScript]]:
    entries: list[dict[str, Any]] = [
        {"id": f"lab{i % 3}/model-{i:02d}",
         "pricing": {"prompt": "0.0000001", "completion": "0.0000002"},
         "supported_parameters": ["temperature", "max_tokens"],
         "architecture": {"output_modalities": ["text"]}}
        for i in range(count)
    ]  # fmt: skip
    scripts = {
        e["id"]: ModelScript(fatal="404") if i == 3 else ModelScript(p_one=0.6)
        for i, e in enumerate(entries)
    }
    return entries, scripts


def test_a_sweep_shares_one_key_ring_across_its_models(
    no_keys: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    db, n, models = tmp_path / "j.db", 10, 12
    entries, scripts = _world(models)
    faults = FaultConfig(latency_s=0.005, key_credits=credits(k0=15, k1=30, k2=1000))
    with running_in_thread(faults, models=entries, scripts=scripts) as server:
        monkeypatch.setenv("OPENROUTER_BASE_URL", server.base_url)
        _set_keys(monkeypatch, **VALUES)
        selection, chosen = sweep_api.choose_models()
        options = SweepOptions(n=n, global_cap=8, per_model=4)
        outcome = sweep_api.start_sweep(options, selection, chosen, db)
        used, refused, ok = server.key_counts, server.key_refused, server.counts["ok"]
    assert outcome.status == "complete"
    ranking = sweep_api.sweep_ranking(outcome.sweep_id or "", db)
    assert len(ranking.ranked) == models - 1 and all(r.valid == n for r in ranking.ranked)
    assert [u.state for u in ranking.unranked] == ["skipped"]  # the dead model, not a key
    rows = _samples(db)
    assert len(rows) == (models - 1) * n == ok
    labels = _key_labels(rows)
    assert labels["OPENROUTER_API_KEY_0"] == 15 and labels["OPENROUTER_API_KEY_1"] == 30
    # One ring for all models: a spent key is retired once for the whole sweep, so only the
    # requests in flight over all models (the global cap) meet its 402.
    assert 1 <= refused[A] <= 8 and 1 <= refused[B] <= 8 and used[A] == 15 + refused[A]
    assert used[B] == 30 + refused[B] and refused.get(C, 0) == 0
    _assert_no_key_values(tmp_path)


def test_a_sweep_stops_when_every_key_is_spent_and_resumes_with_a_fresh_one(
    no_keys: None, tmp_path: Path
) -> None:
    db, n, models = tmp_path / "j.db", 10, 8
    entries, scripts = _world(models)
    faults = FaultConfig(latency_s=0.005, key_credits=credits(k0=12, k1=8, k2=11, fresh=1000))
    with running_in_thread(faults, models=entries, scripts=scripts) as server:
        env = _cli_env(server.base_url, **VALUES)
        args = ("sweep", "--n", str(n), "--max-concurrency", "6", "--db", str(db))
        stopped = _run_cli(env, *args, cwd=tmp_path)
        errors = [line for line in stopped.stderr.splitlines() if line.startswith("error:")]
        assert stopped.returncode == 2 and len(errors) == 1, stopped.stderr + stopped.stdout
        sweep_id = next(w for w in stopped.stdout.split() if w.startswith("sweep-")).rstrip(":")
        line = errors[0]
        assert ("OPENROUTER_API_KEY_0" in line and "OPENROUTER_API_KEY_1" in line
                and "OPENROUTER_API_KEY_2" in line and f"--resume {sweep_id}" in line)  # fmt: skip
        assert len(_samples(db)) == 12 + 8 + 11  # every paid call journaled
        sweep = sweep_api.sweep_ranking(sweep_id, db)
        assert sweep.status == "stopped" and sweep.message and "out of credit" in sweep.message
        states = Counter(u.state for u in sweep.unranked) + Counter(
            "ranked" for _ in sweep.ranked
        )  # fmt: skip
        # Only the dead model is skipped: no model is blamed for the keys, the rest resume.
        assert states["skipped"] <= 1
        assert all("HTTP 404" in (u.reason or "") for u in sweep.unranked if u.state == "skipped")
        resumed = _run_cli({**env, "OPENROUTER_API_KEY": FRESH}, "sweep", "--resume", sweep_id,
                           "--db", str(db), cwd=tmp_path)  # fmt: skip
        assert resumed.returncode == 0, resumed.stderr
        assert f"sweep {sweep_id}: complete" in resumed.stdout
        ok = server.counts["ok"]
    final = sweep_api.sweep_ranking(sweep_id, db)
    assert len(final.ranked) == models - 1 and all(r.valid == n for r in final.ranked)
    rows = _samples(db)
    assert len(rows) == (models - 1) * n == ok  # nothing lost, nothing asked twice
    assert _key_labels(rows)[BASE] == len(rows) - 31
    _assert_no_key_values(tmp_path, stopped.stdout, stopped.stderr, resumed.stdout,
                          resumed.stderr)  # fmt: skip
