"""Reading the small JSON and YAML files (configs, manifests, reports, recipes) with one message style."""
from __future__ import annotations

import json
from pathlib import Path


def read_document(path: str | Path, missing: str, error: type[Exception] = ValueError,
                  missing_error: type[Exception] | None = None, parse=json.loads, kind: str = 'JSON',
                  parse_errors: tuple[type[Exception], ...] = (ValueError,)):
    """Return `parse(text)` of the file at `path`.

    A missing file raises `missing_error` (default `error`) as '<path>: <missing>'; text that is not UTF-8 or
    does not parse raises `error` as '<path>: not valid <kind> (<reason>)'.
    """
    path = Path(path)
    if not path.is_file():
        raise (missing_error or error)(f'{path}: {missing}')
    try:
        return parse(path.read_text())
    except (UnicodeDecodeError, *parse_errors) as e:
        raise error(f'{path}: not valid {kind} ({e})') from None
