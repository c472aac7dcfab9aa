"""Command-line flags built from the metadata of the configuration dataclasses.

- Training settings: one flag per field of :class:`~sparker.config.TrainingConfig`
  (``n_kernels`` -> ``--n-kernels``, booleans as ``--reseed/--no-reseed``), with the
  field's ``help`` and default; ``layers`` is ``--layers``, a JSON list of per-block
  overrides.  A flag left out keeps the default.
- Null-toy and execution options: one flag per field of
  :class:`~sparker.config.NullConfig` and :class:`~sparker.config.RunConfig`; the
  field's ``kind`` says what the flag parses (:data:`FLAG_KINDS`), its other metadata
  the choices, metavar, shown default and the commands that have it.
"""

from __future__ import annotations

import argparse
import json
import sys
import typing
from dataclasses import Field, fields
from pathlib import Path

from ..config import REFERENCE_BATCH_WORDS, LayerConfig, NullConfig, RunConfig, TrainingConfig, validate_config

__all__ = [
    "training_flags", "add_training_flags", "training_settings", "parse_layers", "add_option_flags",
    "given_options", "tty_options", "tty_default", "flag_name", "positive_int", "FLAG_KINDS",
    "OPTION_GROUPS",
]

#: The setting with a flag of its own kind: nested per-block overrides, given as JSON.
LAYERS = "layers"


def flag_name(name: str) -> str:
    """``n_null`` -> ``--n-null``."""
    return "--" + name.replace("_", "-")


def positive_int(text: str) -> int:
    """argparse type: an integer of at least 1."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def tty_default(value: bool | None) -> bool:
    """A flag that defaults to whether stderr is a terminal (progress bars)."""
    return sys.stderr.isatty() if value is None else value


# ------------------------------------------------------------------ training settings
def training_flags() -> dict[str, str]:
    """Training setting -> its flag, one per field of TrainingConfig (``layers`` aside: ``--layers``)."""
    return {f.name: flag_name(f.name) for f in fields(TrainingConfig) if f.name != LAYERS}


def rows(text: str):
    """argparse type of ``--reference-batch``: a positive number of rows, ``auto`` or ``all``."""
    if text in REFERENCE_BATCH_WORDS:
        return None if text == "all" else text
    return int(text)


#: argparse types named by a setting's ``flag_type`` metadata
_FLAG_TYPES = {"rows_or_auto": rows}


def _flag_type(hint) -> type:
    """The scalar type behind a field annotation such as ``float | None``."""
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    return args[0] if args else hint


def _shown_default(f: Field):
    """What ``--help`` gives as a field's default (None: nothing)."""
    if "default_text" in f.metadata:
        return f.metadata["default_text"]
    return f.default


class _Values:
    """argparse type: one value, or a comma-separated list of distinct values.

    A list such as ``4,8`` becomes ``[4, 8]``: one training configuration per value,
    run on the same null toys and aggregated (:func:`sparker.test`).
    """

    def __init__(self, kind: type, choices: typing.Iterable[str] | None = None):
        self.kind = kind
        self.choices = None if choices is None else sorted(choices)

    def _one(self, item: str):
        if self.choices is not None and item not in self.choices:
            raise argparse.ArgumentTypeError(
                f"invalid choice: {item!r} (choose from {', '.join(self.choices)})")
        try:
            return self.kind(item)
        except ValueError:
            raise argparse.ArgumentTypeError(f"invalid {self.kind.__name__} value: {item!r}") from None

    def __call__(self, text: str):
        items = [item.strip() for item in text.split(",")]
        if not all(items):
            raise argparse.ArgumentTypeError(f"empty value in the list {text!r}")
        values = [self._one(item) for item in items]
        if len(set(values)) < len(values):
            raise argparse.ArgumentTypeError(f"repeated value in the list {text!r}")
        return values[0] if len(values) == 1 else values


def parse_layers(text: str) -> list[dict]:
    """argparse type of ``--layers``: a JSON list of per-block override objects, each checked.

    Every block's overrides are checked as :func:`~sparker.config.validate_config`
    checks them, so that a bad block is reported as ``argument --layers: block K: ...``
    before any work.
    """
    example = '[{"n_kernels": 2}, {"n_kernels": 4, "sigma_end_quantile": 0.01}]'
    try:
        layers = json.loads(text)
    except json.JSONDecodeError as error:
        raise argparse.ArgumentTypeError(f"not valid JSON ({error}); expected a list of objects, "
                                         f"e.g. '{example}'") from None
    if not isinstance(layers, list) or not all(isinstance(block, dict) for block in layers):
        raise argparse.ArgumentTypeError(f"expected a JSON list of objects (one per block), e.g. "
                                         f"'{example}', got {text!r}")
    known = {f.name for f in fields(LayerConfig)}
    for k, block in enumerate(layers):
        unknown = sorted(set(block) - known)
        if unknown:
            raise argparse.ArgumentTypeError(f"block {k} has unknown settings {unknown}; "
                                             f"allowed: {sorted(known)}")
        try:
            validate_config(TrainingConfig(layers=(LayerConfig(**block),)))
        except (TypeError, ValueError) as error:
            raise argparse.ArgumentTypeError(f"block {k}: {error}") from None
    return layers


def _setting_flag(f: Field, hint, lists: bool) -> dict:
    """argparse options of the flag of one scalar training setting."""
    kind = _FLAG_TYPES[f.metadata["flag_type"]] if "flag_type" in f.metadata else _flag_type(hint)
    choices = f.metadata.get("choices")
    default = _shown_default(f)
    text = f"{f.metadata['help']} (default: {'automatic' if default is None else default})"
    options: dict = {"dest": f.name, "default": argparse.SUPPRESS}
    if kind is bool:
        options["action"] = argparse.BooleanOptionalAction
    elif lists:
        options["type"] = _Values(kind, choices)
        metavar = "NAME" if choices is not None else kind.__name__.upper()
        options["metavar"] = f"{metavar}[,{metavar}...]"
        if choices is not None:
            text = f"{text}; one of {', '.join(sorted(choices))}"
    elif choices is not None:
        options["choices"] = sorted(choices)
    else:
        options["type"] = kind
        options["metavar"] = kind.__name__.upper()
    return {"help": text.replace("%", "%%"), **options}


def add_training_flags(parser: argparse.ArgumentParser, *, lists: bool = False) -> None:
    """Add one flag per training setting; an absent flag keeps the estimator default.

    With ``lists``, every non-boolean flag but ``--layers`` also takes a
    comma-separated list of values (several configurations, aggregated by the
    calibrated test).
    """
    description = "fields of sparker.TrainingConfig; omitted flags keep the defaults"
    if lists:
        description += ("; a comma-separated list (--n-kernels 4,8) runs one configuration "
                        "per value (every combination when several flags have lists), "
                        "calibrated together and aggregated with --aggregation")
    group = parser.add_argument_group("training settings", description)
    hints = typing.get_type_hints(TrainingConfig)
    by_name = {f.name: f for f in fields(TrainingConfig)}
    for name, flag in training_flags().items():
        group.add_argument(flag, **_setting_flag(by_name[name], hints[name], lists))
    layers = by_name[LAYERS]
    group.add_argument(flag_name(LAYERS), dest=LAYERS, type=parse_layers, default=argparse.SUPPRESS,
                       metavar="JSON", help=f"{layers.metadata['help']} (default: {_shown_default(layers)})")


def training_settings(args: argparse.Namespace) -> dict:
    """The training settings given on the command line (absent flags are left out)."""
    return {name: getattr(args, name) for name in [*training_flags(), LAYERS] if hasattr(args, name)}


# ------------------------------------------------------------------ null-toy and execution options
#: option ``kind`` (:data:`sparker.config.OPTION_CHECKS`) -> how its flag parses a value
FLAG_KINDS: dict[str, dict] = {
    "count": {"type": positive_int},
    "seed": {"type": int},
    "positive": {"type": float},
    "non_negative": {"type": float},
    "switch": {"action": argparse.BooleanOptionalAction},
    "display": {"action": argparse.BooleanOptionalAction},
    "choice": {},
    "text": {},
    "path": {"type": Path},
}

#: the option dataclasses, one argument group each: (dataclass, title, description)
OPTION_GROUPS = (
    (NullConfig, "null toys", "samples drawn under the null hypothesis and refitted with the same settings"),
    (RunConfig, "execution", None),
)


def _option_flag(f: Field) -> dict:
    """argparse options of the flag of one null-toy or execution option."""
    shown = _shown_default(f)
    text = f.metadata["help"] if shown is None else f"{f.metadata['help']} (default: {shown})"
    options = {"help": text.replace("%", "%%"), **FLAG_KINDS[f.metadata["kind"]]}
    if "choices" in f.metadata:
        options["choices"] = sorted(f.metadata["choices"])
    if "metavar" in f.metadata:
        options["metavar"] = f.metadata["metavar"]
    return options


def add_option_flags(parser: argparse.ArgumentParser, command: str) -> None:
    """Flags of the null toys (how many, how drawn) and of where they run, for ``command``."""
    for options, title, description in OPTION_GROUPS:
        group = parser.add_argument_group(title, description)
        for f in fields(options):
            if command in f.metadata.get("commands", (command,)):
                group.add_argument(flag_name(f.name), **_option_flag(f))


def _option_fields() -> list[Field]:
    return [f for options, _, _ in OPTION_GROUPS for f in fields(options)]


def given_options(args: argparse.Namespace) -> dict:
    """The null-toy and execution options given on the command line, as keyword arguments.

    Options whose default is whether stderr is a terminal are left to
    :func:`tty_options`.

    Raises
    ------
    ValueError
        If an option of one back end is given with another.
    """
    options = {f.name: getattr(args, f.name) for f in _option_fields()
               if not f.metadata.get("tty") and getattr(args, f.name, None) is not None}
    backend = options.get("backend", RunConfig().backend)
    for f in fields(RunConfig):
        needs = f.metadata.get("backend")
        if needs is not None and f.name in options and backend != needs:
            raise ValueError(f"{flag_name(f.name)}: only used with --backend {needs}")
    return options


def tty_options(args: argparse.Namespace) -> dict:
    """The options whose default is whether stderr is a terminal (``progress``), resolved."""
    return {f.name: tty_default(getattr(args, f.name, None)) for f in _option_fields() if f.metadata.get("tty")}
