"""The pure rules of `hf/…` (no torch): backend options and model names as a user types them
(Hypothesis: anything is either accepted as valid or refused with flipbench's error), the
prefix-free check, choice readings, the conversion cache's location and key."""

from __future__ import annotations

import math
import os
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flipbench.cli.common import parse_model_options
from flipbench.errors import FlipbenchError
from flipbench.providers.hf_choices import (
    DTYPES,
    MAX_BATCH,
    ChoiceReading,
    HFOptions,
    cache_root,
    check_prefix_free,
    converted_key,
    parse_hf_options,
    resolve_source,
    split_trailing_space,
)

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner),
    max_leaves=5,
)
option_keys = st.sampled_from(["dtype", "device", "batch_size"]) | st.text(max_size=12)


@given(st.dictionaries(option_keys, json_values | st.sampled_from([*DTYPES, "cuda:1", 8])))
def test_backend_options_are_valid_or_refused_clearly(options: dict[str, object]) -> None:
    try:
        parsed = parse_hf_options(options)
    except FlipbenchError as exc:
        assert str(exc).startswith(("unknown hf/… backend option", "hf/… "))
        return
    assert set(options) <= {"dtype", "device", "batch_size"}
    assert parsed.dtype in DTYPES and 1 <= parsed.batch_size <= MAX_BATCH
    assert parsed.device in (None, "cpu", "mps") or parsed.device.startswith("cuda")


def test_backend_options_defaults_and_values() -> None:
    assert parse_hf_options({}) == HFOptions("float32", None, 16)
    got = parse_hf_options({"dtype": "bfloat16", "device": "cuda:0", "batch_size": 4})
    assert got == HFOptions("bfloat16", "cuda:0", 4)
    assert parse_hf_options({"device": "auto"}).device is None
    for bad in ({"batch_size": True}, {"batch_size": 0}, {"device": "gpu"}, {"threads": 2}):
        with pytest.raises(FlipbenchError):
            parse_hf_options(bad)


def test_backend_option_flag_is_named_in_its_errors() -> None:
    assert parse_model_options(["dtype=float16", "batch_size=8"], flag="-B") == {
        "dtype": "float16",
        "batch_size": 8,
    }
    with pytest.raises(FlipbenchError, match=r"^-B expects NAME=VALUE"):
        parse_model_options(["dtype"], flag="-B")


@settings(max_examples=200)
@given(st.text(max_size=120))
def test_model_names_resolve_or_are_refused_clearly(name: str) -> None:
    try:
        source = resolve_source(f"hf/{name}")
    except FlipbenchError:
        return
    assert source.kind in ("gguf", "directory", "hub")
    if source.kind == "hub":
        assert ".." not in source.location and not source.location.startswith("/")


def test_model_names(tmp_path: Path) -> None:
    assert resolve_source("hf/HuggingFaceTB/SmolLM2-135M-Instruct").kind == "hub"
    assert resolve_source("hf/smollm2").path.name == "SmolLM2-135M-Instruct.Q4_1.gguf"
    with pytest.raises(FlipbenchError, match="no GGUF file"):
        resolve_source(f"hf/{tmp_path}/missing.gguf")
    with pytest.raises(FlipbenchError, match=r"no config\.json"):
        resolve_source(f"hf/{tmp_path}")
    (tmp_path / "config.json").write_text("{}")
    assert resolve_source(f"hf/{tmp_path}").kind == "directory"
    for bad in ("hf/", "hf/a b", "hf/../x", "hf/a/b/c"):
        with pytest.raises(FlipbenchError):
            resolve_source(bad)


tokens = st.lists(st.integers(0, 3), min_size=1, max_size=4)


@given(st.dictionaries(st.text(max_size=3), tokens, min_size=1, max_size=5))
def test_prefix_free_check_matches_its_definition(choices: dict[str, list[int]]) -> None:
    clash = any(
        a != b and choices[b][: len(choices[a])] == choices[a] for a in choices for b in choices
    )
    if clash:
        with pytest.raises(FlipbenchError, match="not prefix-free"):
            check_prefix_free(choices)
    else:
        check_prefix_free(choices)


def test_prefix_free_check_names_the_pair() -> None:
    with pytest.raises(FlipbenchError, match="'1' is a prefix of '10'"):
        check_prefix_free({"10": [16, 15], "1": [16]})
    check_prefix_free({"1,": [16, 11], "10,": [16, 15, 11]})


@given(st.lists(st.floats(-50, 0), min_size=1, max_size=6))
def test_choice_reading_renormalises_and_reports_coverage(logprobs: list[float]) -> None:
    reading = ChoiceReading.from_logprobs({str(i): lp for i, lp in enumerate(logprobs)})
    assert math.isclose(sum(reading.renormalised.values()), 1.0, rel_tol=1e-9)
    assert math.isclose(reading.coverage, sum(math.exp(x) for x in logprobs), rel_tol=1e-9)


def test_choice_reading_of_impossible_choices() -> None:
    reading = ChoiceReading.from_logprobs({"a": -math.inf, "b": -math.inf})
    assert reading.coverage == 0 and all(math.isnan(v) for v in reading.renormalised.values())


@given(st.text(max_size=30))
def test_trailing_space_moves_to_the_choice(prompt: str) -> None:
    context, space = split_trailing_space(prompt)
    assert context + space == prompt and context == context.rstrip() and not space.strip()


def test_cache_location_and_key(tmp_path: Path) -> None:
    assert cache_root({"FLIPBENCH_CACHE": "/c", "XDG_CACHE_HOME": "/x"}) == Path("/c")
    assert cache_root({"XDG_CACHE_HOME": "/x"}) == Path("/x/flipbench")
    assert cache_root({}) == Path.home() / ".cache" / "flipbench"
    gguf = tmp_path / "m odel.gguf"
    gguf.write_bytes(b"GGUF")
    key = converted_key(gguf, "5.24.0")
    assert key.startswith("m_odel-") and key == converted_key(gguf, "5.24.0")
    assert key != converted_key(gguf, "5.25.0")
    os.utime(gguf, ns=(1, 1))
    assert key != converted_key(gguf, "5.24.0")
