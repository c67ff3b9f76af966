"""YAML reading that refuses what PyYAML silently accepts or chokes on.

Refused with a message naming the file: duplicate keys, files over MAX_FILE_BYTES,
documents that expand (through aliases) to more than MAX_VALUES values or nest deeper than
MAX_DEPTH. Accepted: merge keys (`<<: *defaults`), where an explicit key overrides a
merged one, as YAML defines.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from adaptive_snakemake.errors import ConfigError

MAX_FILE_BYTES = 16 * 1024 * 1024
# Values after alias expansion: a billion-laughs file of a few hundred bytes expands to
# billions, which every later step (schema check, copies, hashes) would walk.
MAX_VALUES = 2_000_000
MAX_DEPTH = 64


# libyaml's parser when PyYAML has it (the wheels do): ~100x faster, and it refuses deep
# nesting with an error where the pure-Python parser recurses for seconds.
class _StrictLoader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):
    pass


def _construct_mapping(loader, node, deep=False):
    seen = {}
    for key_node, _ in node.value:
        if key_node.tag == "tag:yaml.org,2002:merge":
            continue  # `<<`: flatten_mapping below merges it; explicit keys win
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            error = yaml.constructor.ConstructorError(
                None,
                None,
                f"duplicate key {key!r} (first on line {seen[key]})",
                key_node.start_mark,
            )
            error.duplicate_key = key
            raise error
        seen[key] = key_node.start_mark.line + 1
    loader.flatten_mapping(node)
    return loader.construct_mapping(node, deep=deep)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def _check_size(path: Path, document) -> None:
    """Refuse documents too large or too deep once aliases are expanded.

    Each container is measured once (by identity) and its size reused wherever an alias
    repeats it, so a billion-laughs document is refused after a few thousand steps.
    """
    measured: dict[int, tuple[int, int]] = {}  # id -> (values, depth) when expanded
    stack = [(document, False)]
    while stack:
        value, children_done = stack.pop()
        if id(value) in measured or not isinstance(value, dict | list):
            continue
        children = list(value.values() if isinstance(value, dict) else value)
        if not children_done:
            stack.append((value, True))
            stack.extend((child, False) for child in children if id(child) not in measured)
            continue
        values, depth = 1, 1
        for child in children:
            child_values, child_depth = measured.get(id(child), (1, 0))
            values += child_values
            depth = max(depth, child_depth + 1)
        if values > MAX_VALUES:
            raise ConfigError(
                f"{path}: the document expands to more than {MAX_VALUES:,} values "
                "(through YAML aliases?); refusing to read it"
            )
        if depth > MAX_DEPTH:
            raise ConfigError(f"{path}: nested deeper than {MAX_DEPTH} levels")
        measured[id(value)] = (values, depth)


def _sweep_at(text: str, line: int) -> str | None:
    """The sweep whose definition holds `line` (0-based), for messages; None if none."""
    try:  # nodes only: no duplicate check
        root = yaml.compose(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except (yaml.YAMLError, RecursionError):
        return _sweep_by_indentation(text, line)
    if not isinstance(root, yaml.MappingNode):
        return None
    for key, value in root.value:
        if key.value == "sweeps" and isinstance(value, yaml.MappingNode):
            for sweep, body in value.value:
                if sweep.start_mark.line <= line <= body.end_mark.line:
                    return sweep.value
    return None


def _sweep_by_indentation(text: str, line: int) -> str | None:
    """The sweep around `line` by the usual block layout (`sweeps:` then indented names),
    for documents that cannot even be composed."""
    sweep, in_sweeps, indent = None, False, None
    for row in text.splitlines()[: line + 1]:
        stripped = row.lstrip(" ")
        if not stripped or stripped.startswith("#"):
            continue
        depth = len(row) - len(stripped)
        if depth == 0:
            in_sweeps, sweep, indent = stripped.startswith("sweeps:"), None, None
        elif in_sweeps and (indent is None or depth == indent) and ":" in stripped:
            indent, sweep = depth, stripped.split(":", 1)[0].strip("'\" ")
    return sweep


def load_yaml(path: str | Path):
    """The YAML document in `path`; ConfigError naming the file (and line) if it is refused."""
    path = Path(path)
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise ConfigError(f"{path}: {size:,} bytes; the limit is {MAX_FILE_BYTES:,}")
        text = path.read_text()
    except OSError as error:
        raise ConfigError(f"{path}: cannot read the file: {error.strerror}") from None
    except UnicodeDecodeError as error:
        raise ConfigError(f"{path}: not UTF-8 text ({error.reason})") from None
    try:
        document = yaml.load(text, Loader=_StrictLoader)
    except RecursionError:
        raise ConfigError(f"{path}: nested too deeply to read") from None
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f", line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(error, "problem", None) or str(error)
        sweep = _sweep_at(text, mark.line) if mark else None
        if sweep is not None and hasattr(error, "duplicate_key"):
            raise ConfigError(
                f"{path}{where}: sweep {sweep!r}, key {error.duplicate_key!r}: {problem}"
            ) from None
        if sweep is not None:
            where += f": sweep {sweep!r}"
        raise ConfigError(f"{path}{where}: malformed YAML: {problem}") from None
    _check_size(path, document)
    return document
