"""The CLI only parses and prints: its option sets are the package's dataclasses, option for field.

A field added to TrainConfig or BuildOptions without an option (or an option without a field) fails
here, instead of being silently unreachable from the command line or dropped on the way in.
"""

from __future__ import annotations

import dataclasses
import inspect

from inti_edge.build import BuildOptions
from inti_edge.commands import build as build_cmd
from inti_edge.commands import train as train_cmd
from inti_edge.train import TrainConfig


def _params(fn) -> set[str]:
    return set(inspect.signature(fn).parameters)


def _fields(cls) -> set[str]:
    return {f.name for f in dataclasses.fields(cls)}


def test_train_options_are_the_train_config_fields():
    # set in a --config YAML only: how often to log, and the floor of the cosine schedule
    yaml_only = {"log_every", "min_lr_ratio"}
    assert _params(train_cmd.train) - {"config", "resume"} == _fields(TrainConfig) - yaml_only


def test_build_options_are_the_build_options_fields():
    # the CLI's shorter names for three fields; the rest are the same names
    renamed = {"clips": "gate_clips", "split": "gate_split", "workspace": "workspace_mib"}
    cli_only = {"ctx", "model", "out", "as_json"}  # the positional model, -o, --json, the command's name
    mapped = {renamed.get(p, p) for p in _params(build_cmd.build) - cli_only}
    assert mapped == _fields(BuildOptions)
