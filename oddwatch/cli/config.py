"""``oddwatch config``, and the settings every sub-command loads from ``--config``."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from oddwatch.settings import Settings, as_dict, default_config_path, load_settings, sample_toml, to_toml


def settings_of(args: argparse.Namespace) -> Settings:
    """The settings of ``--config`` (or ``$ODDWATCH_CONFIG``, ``./oddwatch.toml``) and the environment."""
    return load_settings(args.config)


def model_problem(settings: Settings) -> str | None:
    """Why the log flow would stop at start for want of its embedding model, or None."""
    from detectors.embedders import DEFAULT_MODEL, default_model_path, in_hf_cache, offline_message

    p = settings.log_detector
    if p.model == "hashing" or (p.allow_download and p.model != DEFAULT_MODEL):
        return None
    try:
        source = default_model_path() if p.model == DEFAULT_MODEL else Path(p.model).expanduser()
    except RuntimeError as exc:
        return str(exc)
    if source.exists():
        return None
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if in_hf_cache(p.model, p.revision or None):
        return None
    return offline_message(p.model)


def cmd_config(args: argparse.Namespace) -> int:
    if args.action == "sample":
        print(sample_toml(), end="")
        return 0
    path = Path(args.config) if args.config else default_config_path()
    origin = (f"read {path.absolute()}" if path else
              "no config file ($ODDWATCH_CONFIG unset, no ./oddwatch.toml): the defaults")
    settings = settings_of(args)
    overrides = sorted(k for k in os.environ if k.startswith("ODDWATCH_") and "__" in k)
    print(to_toml(as_dict(settings, mask=True)), end="")
    print(f"# {origin}" + (f", overridden by {', '.join(overrides)}" if overrides else ""), file=sys.stderr)
    problem = model_problem(settings)
    if problem:
        print(f"oddwatch: config error: [log_detector] model: {problem}", file=sys.stderr)
        return 2
    print("# config OK", file=sys.stderr)
    return 0
