"""Fuzzing the front door: random option values, ``--set`` overrides and config files through
the CLI parser (``run --dry-run``, so nothing trains) and random dicts through the config models.

The only acceptable outcomes are success or a clean usage error: exit 2, one line starting with
``error:``, no traceback. A config that is accepted must survive the trip through JSON (records
and checkpoints store it so) and through the printed YAML unchanged.
"""

from __future__ import annotations

import json
import os
import string
from pathlib import Path

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError
from typer.testing import CliRunner

from sslbench.bench.resolve import parse_sets, validation_message
from sslbench.cli import app
from sslbench.core.config import RunConfig
from sslbench.errors import UsageError

runner = CliRunner()
# a few seconds in the suite; SSLBENCH_FUZZ_EXAMPLES=1000 for a deeper search
FUZZ = settings(max_examples=int(os.environ.get("SSLBENCH_FUZZ_EXAMPLES", 40)), deadline=None,
                suppress_health_check=[HealthCheck.too_slow])

KEYS = ["seed", "pretrain.epochs", "pretrain.batch_size", "pretrain.log_every",
        "pretrain.optimizer.name", "pretrain.optimizer.lr", "pretrain.optimizer.momentum",
        "pretrain.optimizer.weight_decay", "pretrain.optimizer.options.eta",
        "pretrain.schedule.name", "pretrain.schedule.warmup_epochs", "pretrain.views",
        "eval.knn_k", "eval.train_subset", "eval.linear.epochs", "eval.linear.cached",
        "data.image_size", "data.train_subset", "data.hflip", "runtime.precision",
        "runtime.channels_last", "method.temperature", "method.proj_dim", "backbone.width",
        "pretrain", "method", "data.name", "nosuch.key", "pretrain.epoch"]
SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**40), 2**40),
    st.floats(allow_nan=True, allow_infinity=True), st.sampled_from([float("inf"), float("nan")]),
    st.text(string.printable, max_size=8),
    st.sampled_from(["sgd", "lars", "cosine", "fp32", "bf16", "auto", "simclr", "1e-3", "[]"]),
)
VALUES = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=3)
                      | st.dictionaries(st.sampled_from(["scale", "count", "lr", "x"]), inner,
                                        max_size=2), max_leaves=4)


def check_clean(result) -> None:
    """Success, or a usage error as one line; never an exception or a traceback."""
    assert result.exception is None or isinstance(result.exception, SystemExit), (
        repr(result.exception))
    assert "Traceback" not in result.output
    if result.exit_code == 0:
        printed = RunConfig.model_validate(yaml.safe_load(result.stdout))
        assert RunConfig.model_validate_json(printed.model_dump_json()) == printed
        return
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output


def dry_run(*args: str):
    return runner.invoke(app, ["run", "simclr", "resnet18", "digits", "--dry-run", *args])


def set_text(value) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def number_or_junk(numbers):
    special = st.sampled_from(["inf", "-inf", "nan", "1e400", "-0", "0x10", "1_000"])
    return numbers.map(repr) | special | st.text(string.printable, max_size=4)


OPTIONS = {  # a few of these at a time, so that most examples get past the parser
    "--epochs": number_or_junk(st.integers(-2, 10**6)),
    "--batch-size": number_or_junk(st.integers(-2, 10**6)),
    "--lr": number_or_junk(st.floats()),
    "--seed": number_or_junk(st.integers(-2, 2**33)),
    "--checkpoint-every": number_or_junk(st.integers(-2, 10**6)),
    "--resume": st.sampled_from(["auto", "yes", "never", ""]),
    "--config": st.sampled_from(["", ".", "missing.toml"]),
}
OPTION_SETS = st.lists(st.sampled_from(sorted(OPTIONS)), unique=True, max_size=3).flatmap(
    lambda names: st.tuples(*[st.tuples(st.just(n), OPTIONS[n]) for n in names]))


@FUZZ
@given(OPTION_SETS)
def test_random_option_values(options):
    check_clean(dry_run(*[f"{name}={value}" for name, value in options]))


@FUZZ
@given(st.lists(st.tuples(st.sampled_from(KEYS), VALUES), max_size=4),
       st.lists(st.text(string.printable, max_size=12), max_size=2))
def test_random_set_overrides(pairs, raw):
    sets = [f"{key}={set_text(value)}" for key, value in pairs] + raw
    check_clean(dry_run(*[arg for s in sets for arg in ("--set", s)]))


def nested(pairs) -> dict:
    tree: dict = {}
    for key, value in pairs:
        node = tree
        *parents, leaf = key.split(".")
        for part in parents:
            node = node.setdefault(part, {}) if isinstance(node.get(part, {}), dict) else {}
        node[leaf] = value
    return tree


def toml_text(tree: dict) -> str:
    """A rough TOML writer (values that JSON spells as TOML does; the rest makes bad TOML)."""
    lines = [f"{k} = {json.dumps(v)}" for k, v in tree.items() if not isinstance(v, dict)]
    for section, body in tree.items():
        if isinstance(body, dict):
            lines.append(f"[{section}]")
            lines += [f"{k} = {json.dumps(v)}" for k, v in body.items()]
    return "\n".join(lines) + "\n"


@FUZZ
@given(st.lists(st.tuples(st.sampled_from(KEYS), VALUES), max_size=5),
       st.sampled_from([".toml", ".yaml", ".json", ".yml"]),
       st.one_of(st.none(), st.text(max_size=40), st.binary(max_size=20)))
def test_random_config_files(pairs, suffix, garbage):
    tree = nested(pairs)
    path = Path(f"fuzz{suffix}")
    if garbage is not None:
        path.write_bytes(garbage if isinstance(garbage, bytes) else garbage.encode())
    elif suffix == ".toml":
        path.write_text(toml_text(tree))
    elif suffix == ".json":
        path.write_text(json.dumps(tree, allow_nan=True))
    else:
        path.write_text(yaml.safe_dump(tree))
    check_clean(dry_run("--config", str(path)))


@FUZZ
@given(st.dictionaries(st.sampled_from(["method", "backbone", "data", "pretrain", "eval",
                                        "runtime", "seed", "extra"]),
                       VALUES | st.dictionaries(st.sampled_from(["name", "epochs", "lr",
                                                                 "image_size", "precision"]),
                                                VALUES, max_size=3), max_size=6))
def test_config_model_accepts_or_names_one_field(raw):
    try:
        cfg = RunConfig.model_validate(raw)
    except ValidationError as exc:
        message = validation_message(exc)
        assert "\n" not in message and message.startswith(("invalid ", "unknown setting "))
        return
    assert RunConfig.model_validate_json(cfg.model_dump_json()) == cfg


@FUZZ
@given(st.lists(st.text(string.printable, max_size=20), max_size=4))
def test_parse_sets_gives_a_dict_or_a_usage_error(items):
    try:
        parsed = parse_sets(items)
    except UsageError as exc:
        assert "\n" not in str(exc) and "--set expects section.key=value" in str(exc)
        return
    assert isinstance(parsed, dict)


def test_seed_from_set_or_config_file_is_kept_unless_seed_is_given():
    Path("seed.toml").write_text("seed = 7\n")
    printed = [yaml.safe_load(dry_run(*args).stdout)["seed"] for args in
               ([], ["--set", "seed=3"], ["--config", "seed.toml"], ["--set", "seed=3", "--seed",
                                                                     "5"])]
    assert printed == [0, 3, 7, 5]
