"""One GPU recipe (`make gpu-recipe`): CAM-Seg and the baseline from nothing on one GPU machine in 10 minutes.

On one GPU machine with 16 cores it
  1. generates the data with all cores (camseg-synth --workers),
  2. trains the autoencoder, the segmenter (on cached tokens, then on freshly augmented images), its mask
     decoder alone, and the discriminative baseline at the tiny preset's 128x256,
  3. exports the CAM-Seg checkpoint with float16 weights and a vote of 8 (as `make demo-model` ships it),
  4. evaluates both on generated clear / fog (3 betas) / snow / rain / night,
  5. writes the comparison table (camseg-compare),
and logs each stage's wall time and its equivalent command into GPU_RUN/summary.md, its output into
GPU_RUN/logs/<stage>.log. The stages run in this one process (the CLI entry points called in turn), which
saves the 5-15 s that every command spends importing torch and starting CUDA.

Settings are environment (or make command-line) variables, listed in SETTINGS with their GPU and toy values:
`make gpu-recipe VAE_STEPS=2000`. `TOY=1` takes the toy values (8 scenes at 32x64, 2 steps per stage, the
CPU), which test/test_gpu_recipe.py runs. Where diffusers, albumentations or rosbags do not import (the GPU
machine's Python 3.12), the wheels in WHEELS are installed into WHEEL_SITE first (README, "One GPU recipe").

On an NVIDIA H200 with 16 cores these settings took 405 s (2026-11-27, docs/gpu_recipe.md run 3; per stage:
vae 115 s, segmenter 89 s with its caching, segmenter-ft 42 s, decoder 41 s, baseline 48 s, both evaluations
30 s, the rest 36 s).
"""
from __future__ import annotations

import contextlib
import gc
import importlib.util
import os
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
NEEDED = ('diffusers', 'albumentations', 'rosbags')  # not on the GPU machine's Python (carried as wheels)
CORES = len(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity') else (os.cpu_count() or 1)

# name: (GPU value, toy value, meaning)
SETTINGS = {
    'GPU_RUN': ('runs/gpu_recipe', 'runs/gpu_recipe_toy', 'output (replaced if it holds a recipe run)'),
    'WHEELS': ('.whl', '.whl', 'cp312 wheels, installed when one of NEEDED is missing'),
    'WHEEL_SITE': ('/tmp/camseg-site', '/tmp/camseg-site', 'where they are installed (added to sys.path)'),
    'SYNTH_WORKERS': (str(CORES), '2', 'camseg-synth processes'),
    'TRAIN_SCENES': ('2000', '8', 'clear training scenes'),
    'TRAIN_SIZE': ('128x256', '32x64', 'training scene size HxW'),
    'VAL_SCENES': ('60', '2', 'evaluation scenes, each in every condition'),
    'VAL_SIZE': ('256x512', '32x64', 'evaluation scene size HxW'),
    'CONDITIONS': ('clear,fog,snow,rain,night', 'clear,fog,snow,rain,night', 'evaluation conditions'),
    'IMAGE_SIZE': ('128x256', '32x64', 'processing size of the three models'),
    'RECIPE_DEVICE': ('auto', 'cpu', 'training and evaluation device'),
    'RECIPE_PRECISION': ('bf16', 'fp32', 'training and evaluation autocast'),
    'LOADER_WORKERS': ('12', '0', 'DataLoader and latent-caching workers'),
    'VAE_STEPS': ('2000', '2', 'autoencoder steps'),
    'VAE_BATCH': ('32', '2', 'autoencoder batch'),
    'VAE_LR': ('5e-4', '5e-4', 'autoencoder peak learning rate'),
    'VAE_MASK_WEIGHT': ('4', '4', 'weight of the maskige reconstruction error against the images\''),
    'VAE_CLASS_WEIGHT': ('2.0', '2.0', 'weight of the class losses on decoded maskiges'),
    'SEG_STEPS': ('1200', '2', 'segmenter steps'),
    'SEG_BATCH': ('64', '2', 'segmenter batch'),
    'SEG_LR': ('4e-4', '4e-4', 'segmenter peak learning rate'),
    'CACHE_COPIES': ('6', '1', 'augmented copies of every item in the segmenter latent cache'),
    'SEG_FT_STEPS': ('600', '2', 'segmenter steps on freshly augmented images after the cached ones'),
    'DEC_STEPS': ('400', '2', 'decoder-only fine-tuning steps of the segmenter\'s autoencoder'),
    'DEC_GENERATED': ('0.5', '0.5', 'share of decoder-only batches decoded from generated tokens'),
    'EXPORT_ENSEMBLE': ('8', '4', 'samples the exported CAM-Seg votes over (its default sampler)'),
    'BASE_STEPS': ('1500', '2', 'baseline steps'),
    'BASE_BATCH': ('32', '2', 'baseline batch'),
    'BASE_LR': ('1e-3', '1e-3', 'baseline peak learning rate'),
    'WEATHER': ('0.6', '0.6', 'weather augmentation probability of the segmenter, decoder and baseline runs'),
    'JITTER': ('0.5', '0.5', 'colour jitter strength of the segmenter, decoder and baseline runs'),
    'EVAL_BATCH': ('32', '4', 'evaluation batch'),
    'CORRUPTIONS': ('none', 'none', 'camseg-eval --corruptions (all: 8 x VAL_SCENES more images a model)'),
    'SEVERITIES': ('3', '3', 'camseg-eval --severities'),
}


def settings(env=os.environ) -> dict[str, str]:
    """Return the settings: each from the environment, else its GPU value (its toy value with TOY=1)."""
    toy = env.get('TOY', '') not in ('', '0')
    return {name: env.get(name) or values[1 if toy else 0] for name, values in SETTINGS.items()}


def use_checkout() -> None:
    """Import camseg from this checkout where it is not installed (a bare GPU machine), in workers too."""
    if importlib.util.find_spec('camseg_core') is None:
        sys.path.insert(0, str(REPO))
        os.environ['PYTHONPATH'] = os.pathsep.join(p for p in (os.environ.get('PYTHONPATH'), str(REPO)) if p)


def ensure_packages(wheels: Path, site: Path) -> None:
    """Install the carried wheels into `site` (and use it) when one of NEEDED is missing."""
    if all(importlib.util.find_spec(name) for name in NEEDED):
        return
    files = sorted(wheels.glob('*.whl'))
    if not files:
        raise SystemExit(f'gpu-recipe: {" / ".join(NEEDED)} do not import and {wheels} holds no wheels; '
                         "download them as the README's 'One GPU recipe' section says")
    subprocess.run([sys.executable, '-m', 'pip', 'install', '-q', '--no-index', '--no-deps', '--no-compile',
                    '--no-cache-dir', '--upgrade', '--target', str(site), *map(str, files)], check=True)
    sys.path.insert(0, str(site))  # ahead of site-packages, like PYTHONPATH: a carried newer version wins
    os.environ['PYTHONPATH'] = os.pathsep.join(p for p in (str(site), os.environ.get('PYTHONPATH')) if p)
    importlib.invalidate_caches()
    for name in NEEDED:
        importlib.import_module(name)


def stages(s: dict[str, str]) -> list[tuple[str, str, list[str]]]:
    """Return the recipe as (stage name, program, argv) in order; the programs are the camseg commands."""
    run, data = Path(s['GPU_RUN']), Path(s['GPU_RUN']) / 'data'
    device = ['--device', s['RECIPE_DEVICE'], '--precision', s['RECIPE_PRECISION']]
    common = ['--data', f'generated:{data}', '--image-size', s['IMAGE_SIZE'], *device,
              '--workers', s['LOADER_WORKERS'], '--sample-every', '0']

    augment = ['--weather', s['WEATHER'], '--jitter', s['JITTER']]  # as make demo-model's last rounds

    def train(stage, out, steps, batch, lr, warmup_share, *extra):
        return [stage, *common, '--out', str(run / out), '--steps', steps, '--batch-size', batch, '--lr', lr,
                '--warmup', str(int(steps) // warmup_share), '--save-every', steps, *extra]

    evaluate = ['--data', f'generated:{data}', *device, '--batch-size', s['EVAL_BATCH'],
                '--corruptions', s['CORRUPTIONS'], '--severities', s['SEVERITIES']]
    synth = ['--out', str(data), '--workers', s['SYNTH_WORKERS']]
    # the segmenter again on freshly augmented images (weather, low light), like make demo-model's camseg_ll
    tune = train('segmenter', 'camseg_ft', s['SEG_FT_STEPS'], s['SEG_BATCH'], '2e-4', 12, '--init',
                 str(run / 'camseg'), '--image-stem', '2', '--pixel-stem', '128', *augment)
    fine_tune = [('segmenter-ft', 'camseg-train', tune)] if int(s['SEG_FT_STEPS']) else []
    segmenter = 'camseg_ft' if fine_tune else 'camseg'
    return [
        ('synth-train', 'camseg-synth', [*synth, '--num', s['TRAIN_SCENES'], '--split', 'train',
                                         '--seed', '1', '--size', s['TRAIN_SIZE'], '--conditions', 'clear']),
        ('synth-val', 'camseg-synth', [*synth, '--num', s['VAL_SCENES'], '--split', 'val', '--seed', '2',
                                       '--size', s['VAL_SIZE'], '--conditions', s['CONDITIONS']]),
        ('vae', 'camseg-train', train('vae', 'vae', s['VAE_STEPS'], s['VAE_BATCH'], s['VAE_LR'], 20,
                                      '--preset', 'tiny', '--class-weight', s['VAE_CLASS_WEIGHT'],
                                      '--mask-weight', s['VAE_MASK_WEIGHT'])),
        ('segmenter', 'camseg-train', train('segmenter', 'camseg', s['SEG_STEPS'], s['SEG_BATCH'],
                                            s['SEG_LR'], 12, '--init', str(run / 'vae'), '--cache-latents',
                                            '--cache-copies', s['CACHE_COPIES'], '--image-stem', '2',
                                            '--pixel-stem', '128', *augment)),
        *fine_tune,
        ('decoder', 'camseg-train', train('vae', 'camseg_dec', s['DEC_STEPS'], s['VAE_BATCH'], '2e-4', 8,
                                          '--init', str(run / segmenter), '--decoder-only', '--class-weight',
                                          '1.0', '--generated', s['DEC_GENERATED'], *augment)),
        ('baseline', 'camseg-train', train('baseline', 'baseline', s['BASE_STEPS'], s['BASE_BATCH'],
                                           s['BASE_LR'], 20, '--preset', 'tiny', *augment)),
        ('export', 'export-float16', [str(run / 'camseg_dec'), str(run / 'export'), s['EXPORT_ENSEMBLE']]),
        ('eval-camseg', 'camseg-eval', [*evaluate, '--checkpoint', str(run / 'export'),
                                        '--out', str(run / 'eval_camseg')]),
        ('eval-baseline', 'camseg-eval', [*evaluate, '--checkpoint', str(run / 'baseline'),
                                          '--out', str(run / 'eval_baseline')]),
        ('compare', 'camseg-compare', [f'camseg={run / "eval_camseg"}', f'baseline={run / "eval_baseline"}',
                                       '--out', str(run / 'comparison')]),
        # the autoencoder ceiling before the decoder run (the segmenter stages leave the autoencoder alone)
        ('ceiling-vae', 'camseg-eval', ['--data', f'cityscapes:{data}:val', *device, '--batch-size',
                                        s['EVAL_BATCH'], '--corruptions', 'none', '--ensemble', '1',
                                        '--steps', '4', '--checkpoint', str(run / 'vae'),
                                        '--out', str(run / 'ceiling_vae')]),
    ]


def ceiling_line(run: Path) -> str:
    """Return the summary's line on the autoencoder ceiling of the vae stage and of the export (clear)."""
    from camseg_core.evaluation.compare import load_run

    def ceilings(name, subset):
        data = load_run(str(run / name))[1]['datasets'][subset]['ceilings']
        return {k: 100 * data[k]['miou'] for k in ('autoencoder', 'resolution')}

    vae, export = ceilings('ceiling_vae', 'cityscapes:val'), ceilings('eval_camseg', 'clear')
    res = export['resolution']
    return (f'Autoencoder ceiling on clear validation scenes (mIoU, %): {vae["autoencoder"]:.1f} after the '
            f'vae stage, {export["autoencoder"]:.1f} in the export (after the decoder run); resolution '
            f'ceiling {res:.1f}; share of it {100 * vae["autoencoder"] / res:.1f} / '
            f'{100 * export["autoencoder"] / res:.1f} %.\n\n')


def export_float16(argv: list[str]) -> int:
    """Save the checkpoint in argv[0] with float16 weights and a vote of argv[2] samples into argv[1]."""
    from camseg_core.checkpoint import export_pretrained
    export_pretrained(argv[0], argv[1], ensemble=int(argv[2]))
    print(f'export: {argv[1]} (float16 weights, a vote of {argv[2]})')
    return 0


def programs() -> dict:
    """Return the entry point of each program a stage names (imported once the packages are there)."""
    from camseg_core.cli import compare, eval, synth, train
    return {'camseg-synth': synth.main, 'camseg-train': train.main, 'camseg-eval': eval.main,
            'camseg-compare': compare.main, 'export-float16': export_float16}


class Tee:
    """A text stream that writes to a terminal stream and a log file."""

    def __init__(self, stream, log):
        """Write to `stream` and `log`."""
        self.stream, self.log = stream, log

    def write(self, text):
        """Write `text` to both."""
        self.log.write(text)
        return self.stream.write(text)

    def flush(self):
        """Flush both."""
        self.log.flush()
        self.stream.flush()

    def __getattr__(self, name):
        """Answer everything else (encoding, fileno, isatty) as the terminal stream."""
        return getattr(self.stream, name)  # encoding, fileno, ... of the terminal stream


def run_stage(main, argv: list[str], log: Path) -> float:
    """Call one entry point with its output also in `log`; return its wall time in seconds."""
    with open(log, 'w') as f, contextlib.redirect_stdout(Tee(sys.stdout, f)), \
            contextlib.redirect_stderr(Tee(sys.stderr, f)):
        start = time.perf_counter()
        rc = main(argv)
        seconds = time.perf_counter() - start
    if rc:
        raise SystemExit(f'gpu-recipe: stage failed with exit status {rc} (see {log})')
    return seconds


def machine() -> str:
    """Return one line naming the accelerator, torch, the cores and Python."""
    import torch
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'no GPU'
    return f'{gpu} | torch {torch.__version__} | {CORES} cores | Python {sys.version.split()[0]}'


def free_memory() -> None:
    """Drop what the last stage left (models, optimiser state, cached GPU blocks)."""
    import torch
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def main() -> int:
    """Run the whole recipe with the settings of the environment."""
    os.chdir(REPO)
    s = settings()
    run = Path(s['GPU_RUN'])
    if run.exists():
        if not (run / 'summary.md').is_file() and any(run.iterdir()):
            raise SystemExit(f'gpu-recipe: {run} exists and holds no recipe run; choose another GPU_RUN')
        shutil.rmtree(run)
    (run / 'logs').mkdir(parents=True)
    start = time.perf_counter()
    use_checkout()
    ensure_packages(Path(s['WHEELS']), Path(s['WHEEL_SITE']))
    entry = programs()
    summary = run / 'summary.md'
    summary.write_text(f'# gpu-recipe run\n\nMachine: {machine()}\n\nSettings: '
                       + ', '.join(f'{k}={v}' for k, v in s.items())
                       + '\n\n| stage | wall time (s) |\n|---|---|\n'
                       + f'| setup (imports, wheels) | {time.perf_counter() - start:.1f} |\n')
    commands = []
    for name, program, argv in stages(s):
        command = shlex.join([program, *argv])
        print(f'== gpu-recipe: {name}: {command}', flush=True)
        seconds = run_stage(entry[program], argv, run / 'logs' / f'{name}.log')
        free_memory()
        commands.append(command)
        with open(summary, 'a') as f:
            f.write(f'| {name} | {seconds:.1f} |\n')
    total = time.perf_counter() - start
    with open(summary, 'a') as f:
        table = (run / 'comparison' / 'comparison.md').read_text()
        note = 'export-float16 CKPT OUT N: camseg_core.checkpoint.export_pretrained(CKPT, OUT, ensemble=N)'
        f.write(f'| total | {total:.1f} |\n\nCommands ({note}):\n\n```\n' + '\n'.join(commands)
                + '\n```\n\n' + ceiling_line(run)
                + table.replace('](comparison.png)', '](comparison/comparison.png)'))
    print(f'gpu-recipe: done in {total:.0f} s; see {summary}', flush=True)
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
