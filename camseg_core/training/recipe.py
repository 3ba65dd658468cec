"""Recipe files: the stages of a training recipe with their settings, read from YAML (recipes/*.yaml).

    name: demo                      # the run directory defaults to runs/<name>
    vars:                           # ${name} in any setting; ${run} is the run directory, ${cores} the CPUs
      data: ${run}/data
    toy:                            # overrides taken with --toy: variables, or STAGE.SETTING / *.SETTING
      train_scenes: 8
    stages:
      - {name: data-train, kind: synth, settings: {out: '${data}', num: 1000, split: train, seed: 1}}
      - name: vae
        kind: vae                   # see KINDS; a stage's settings are the names of its command's flags
        settings: {data: 'generated:${data}', steps: 1200}      # out defaults to ${run}/<name>
      - repeat:                     # these stages once per entry; each entry's variables keep the values
          - {round: 2, prev: 1}     # of the entry before it unless it sets them again
          - {round: 3, prev: 2}
        stages: [...]

A string that is one whole ${var} takes the variable's value and type (in a list, a list variable's items are
spliced in); ${var} inside a string is replaced by its text. Overrides (`--set`, and `toy` with --toy) are
`var=value`, `stage.setting=value` or `*.setting=value`
(every stage that has that setting); values are read as YAML (2000, 0.5, true, [a, b]).
"""
from __future__ import annotations

import copy
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from ..documents import read_document

KINDS = ('synth', 'vae', 'segmenter', 'baseline', 'export', 'eval', 'compare')
TRAIN_KINDS = ('vae', 'segmenter', 'baseline')
OUT_KINDS = ('vae', 'segmenter', 'baseline', 'export', 'eval', 'compare')  # out defaults to ${run}/<name>
NAME = re.compile(r'^[A-Za-z0-9][A-Za-z0-9_.-]*$')
VAR = re.compile(r'\$\{([A-Za-z_][A-Za-z0-9_]*)\}')


@dataclass
class Stage:
    """One stage of a recipe with its settings resolved."""

    name: str  # unique in the recipe; its done marker is RUN/stages/<name>.json
    kind: str  # one of KINDS
    settings: dict  # the names of its command's flags ('_' for '-'), values resolved


@dataclass
class Recipe:
    """A recipe file expanded into its stages."""

    name: str
    path: Path
    run: Path  # the run directory
    stages: list[Stage]
    description: str = ''
    variables: dict = field(default_factory=dict)  # resolved top-level variables
    overrides: list[str] = field(default_factory=list)  # what --set / --toy changed


def _parse_override(text: str) -> tuple[str, object]:
    key, sep, value = text.partition('=')
    if not sep or not key.strip():
        raise ValueError(f'an override looks like name=value or stage.setting=value, got {text!r}')
    return key.strip(), yaml.safe_load(value) if value.strip() else ''


def _resolve(value, variables: dict, seen: tuple = ()):
    """Replace ${var} in value (strings, lists, mappings) by the variables, recursively."""
    if isinstance(value, dict):
        return {k: _resolve(v, variables, seen) for k, v in value.items()}
    if isinstance(value, list):  # an item that is one whole ${var} holding a list is spliced in
        items = []
        for v in value:
            r = _resolve(v, variables, seen)
            items += r if isinstance(r, list) and isinstance(v, str) and VAR.fullmatch(v) else [r]
        return items
    if not isinstance(value, str):
        return value

    def lookup(name):
        if name not in variables:
            raise ValueError(f'unknown variable ${{{name}}}; the recipe defines '
                             f'{", ".join(sorted(variables))}')
        if name in seen:
            raise ValueError(f'variables refer to each other in a circle: {" -> ".join(seen + (name,))}')
        return _resolve(variables[name], variables, seen + (name,))

    whole = VAR.fullmatch(value)
    if whole:
        return lookup(whole.group(1))
    return VAR.sub(lambda m: str(lookup(m.group(1))), value)


def _mapping(value, what: str) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ValueError(f'{what} must be a mapping, got {type(value).__name__}')
    return value


def _expand(entries: list, variables: dict, path: str) -> list[tuple[dict, dict]]:
    """Flatten stage entries and repeats into (raw stage, its variables) pairs."""
    if not isinstance(entries, list):
        raise ValueError(f'{path} must be a list of stages')
    out = []
    for i, entry in enumerate(entries):
        where = f'{path}[{i}]'
        entry = _mapping(entry, where)
        if 'repeat' in entry:
            extra = set(entry) - {'repeat', 'stages'}
            if extra:
                raise ValueError(f'{where}: a repeat holds only repeat and stages, not '
                                 f'{", ".join(sorted(extra))}')
            current = dict(variables)
            for j, values in enumerate(entry['repeat'] or []):
                current.update(_mapping(values, f'{where}.repeat[{j}]'))
                out += _expand(entry.get('stages') or [], dict(current), f'{where}.stages')
            continue
        unknown = set(entry) - {'name', 'kind', 'settings'}
        if unknown:
            raise ValueError(f'{where}: unknown field(s) {", ".join(sorted(unknown))} '
                             '(a stage has name, kind, settings)')
        out.append((entry, variables))
    return out


def load_recipe(path: str | Path, overrides: list[str] = (), toy: bool = False,
                out: str | Path | None = None, scale: float = 1.0) -> Recipe:
    """Read a recipe file, apply the toy values (with `toy`) and then `overrides`, and resolve its stages.

    `out`: the run directory (default runs/<name>). `scale`: every training stage's steps and warmup times
    this factor (rounded, at least 1), after the overrides. ValueError naming the problem on a bad recipe.
    """
    if not 0 < scale <= 1e3:
        raise ValueError(f'scale must be in (0, 1000], got {scale}')
    path = Path(path)
    doc = read_document(path, 'recipe file not found', missing_error=FileNotFoundError, parse=yaml.safe_load,
                        kind='YAML', parse_errors=(yaml.YAMLError,))
    doc = _mapping(doc, f'{path}')
    unknown = set(doc) - {'name', 'description', 'vars', 'toy', 'stages'}
    if unknown:
        raise ValueError(f'{path}: unknown top-level field(s) {", ".join(sorted(unknown))}')
    name = str(doc.get('name') or path.stem)
    run = Path(out) if out is not None else Path('runs') / name
    variables = {'run': str(run), 'cores': len(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity')
                 else (os.cpu_count() or 1)}
    variables.update(copy.deepcopy(_mapping(doc.get('vars'), f'{path}: vars')))
    pairs = [(str(k), v) for k, v in _mapping(doc.get('toy'), f'{path}: toy').items()] if toy else []
    pairs += [_parse_override(text) for text in overrides]
    stage_sets, overridden = [], set()
    for key, value in pairs:
        if '.' in key:
            stage_sets.append((key, value))
        elif key in variables and key != 'run':
            variables[key] = value
            overridden.add(key)
        else:
            raise ValueError(f'override {key}={value!r}: no variable {key!r} in {path} (variables: '
                             f'{", ".join(sorted(k for k in variables if k != "run"))}; a stage setting is '
                             'STAGE.SETTING)')
    stages, names = [], set()
    for entry, scope in _expand(doc.get('stages') or [], variables, 'stages'):
        scope = {**scope, **{k: variables[k] for k in overridden}}  # an override beats a repeat's value
        stage = _stage(entry, scope, run)
        if stage.name in names:
            raise ValueError(f'{path}: two stages are named {stage.name!r}')
        names.add(stage.name)
        stages.append(stage)
    if not stages:
        raise ValueError(f'{path}: no stages')
    for key, value in stage_sets:
        target, _, setting = key.partition('.')
        hits = [s for s in stages if (target == '*' and setting in s.settings) or s.name == target]
        if not hits:
            raise ValueError(f'override {key}: no stage {target!r} '
                             f'(stages: {", ".join(s.name for s in stages)})'
                             if target != '*' else f'override {key}: no stage has the setting {setting!r}')
        for s in hits:
            s.settings[setting] = _resolve(value, variables)
    if scale != 1:
        for s in stages:
            for key in ('steps', 'warmup') if s.kind in TRAIN_KINDS else ():
                if key in s.settings:
                    s.settings[key] = max(1, round(float(s.settings[key]) * scale))
    return Recipe(name, path, run, stages, str(doc.get('description') or '').strip(),
                  {k: _resolve(v, variables) for k, v in variables.items()},
                  (['toy values'] if toy else []) + list(overrides)
                  + ([f'scale {scale:g}'] if scale != 1 else []))


def _stage(entry: dict, variables: dict, run: Path) -> Stage:
    name = _resolve(entry.get('name'), variables)
    kind = entry.get('kind')
    if not isinstance(name, str) or not NAME.match(name):
        raise ValueError(f'stage name {name!r}: letters, digits, ".", "_" and "-" only')
    if kind not in KINDS:
        raise ValueError(f'stage {name}: unknown kind {kind!r}; choose from {", ".join(KINDS)}')
    settings = _resolve(_mapping(entry.get('settings'), f'stage {name}: settings'), variables)
    if kind in OUT_KINDS:
        settings.setdefault('out', str(run / name))
    return Stage(name, kind, settings)


def describe(recipe: Recipe) -> str:
    """Return the plan as text: each stage with its kind and settings."""
    lines = [f'recipe {recipe.name} ({recipe.path}): {len(recipe.stages)} stages into {recipe.run}']
    if recipe.overrides:
        lines.append('overrides: ' + ', '.join(recipe.overrides))
    for i, stage in enumerate(recipe.stages, 1):
        settings = ' '.join(f'{k}={_text(v)}' for k, v in stage.settings.items())
        lines.append(f'{i:3d}. {stage.name} [{stage.kind}] {settings}')
    return '\n'.join(lines)


def _text(value) -> str:
    if isinstance(value, (list, dict)):
        return yaml.safe_dump(value, default_flow_style=True, width=10 ** 6).strip()
    return str(value)
