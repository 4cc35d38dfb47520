"""``oddwatch config``, and the settings every sub-command loads from ``--config``."""

from __future__ import annotations

import argparse
import sys

from oddwatch.settings import Settings, as_dict, load_settings, sample_toml, to_toml


def settings_of(args: argparse.Namespace) -> Settings:
    """The settings of ``--config`` (or ``$ODDWATCH_CONFIG``, ``./oddwatch.toml``) and the environment."""
    return load_settings(args.config)


def cmd_config(args: argparse.Namespace) -> int:
    if args.action == "sample":
        print(sample_toml(), end="")
        return 0
    settings = settings_of(args)
    print(to_toml(as_dict(settings, mask=True)), end="")
    print("# config OK", file=sys.stderr)
    return 0
