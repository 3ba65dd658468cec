"""Autoencoder and resolution ceilings of a checkpoint per evaluation subset, without running the generator.

    python scripts/ceilings.py --checkpoint runs/vq/kl --data generated:runs/dm/data \
        --out runs/vq/ceil_kl.json

The same measurement as the 'ceilings' of camseg-eval's metrics.json (`measure_ceilings`): every ground-truth
label map letterboxed to the processing size, drawn as a maskige, encoded, decoded to classes exactly as
predictions are, restored and scored: mIoU and mean per-class precision (the CAM-Seg paper's "AP"), per
subset. For comparing autoencoders (e.g. KL against VQ mask tokens) at a fraction of camseg-eval's cost.
For a VQ autoencoder it also counts the codebook entries the subset's mask tokens use.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from camseg_core import Segmenter
from camseg_core.data.datasets import open_dataset
from camseg_core.evaluation.report import expand_data_spec, image_batches, measure_ceilings
from camseg_core.imageops import letterbox_labels
from camseg_core.labels import encode_maskige


@torch.no_grad()
def codes_used(segmenter: Segmenter, dataset, batch_size: int) -> int:
    """Count the distinct codebook entries of a VQ model's mask tokens of every label map in `dataset`."""
    ae, codes = segmenter.model.autoencoder, set()
    for batch in image_batches(dataset, len(dataset), batch_size):
        size = segmenter.model.config.image_size
        labels, _ = letterbox_labels([b[2] for b in batch], size, segmenter.device)
        codes.update(ae.quantize(ae.vae.encode(encode_maskige(labels)).latents)[2].tolist())
    return len(codes)


def main(argv=None) -> int:
    """Measure the ceilings, write them as JSON and print one line per subset."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--checkpoint', required=True, help='checkpoint of a model with a mask autoencoder')
    p.add_argument('--data', action='append', required=True, help='dataset spec as camseg-eval takes it')
    p.add_argument('--out', type=Path, required=True, help='JSON file to write')
    p.add_argument('--device', default='cpu')
    p.add_argument('--batch-size', type=int, default=8)
    args = p.parse_args(argv)
    segmenter = Segmenter.from_pretrained(args.checkpoint, device=args.device)
    if not segmenter.has_mask_autoencoder:
        p.error(f'{args.checkpoint} has no mask autoencoder')
    autoencoder = segmenter.model.config.autoencoder
    result = {'checkpoint': str(args.checkpoint), 'quantizer': autoencoder.quantizer,
              'codebook_size': autoencoder.codebook_size if autoencoder.quantizer == 'vq' else None,
              'image_size': list(segmenter.model.config.image_size), 'subsets': {}}
    for spec in args.data:
        for name, dataset_spec in expand_data_spec(spec):
            dataset = open_dataset(dataset_spec)
            c = measure_ceilings(segmenter, dataset, len(dataset), args.batch_size, name)
            result['subsets'][name] = dict(c, num_images=len(dataset))
            if autoencoder.quantizer == 'vq':
                result['subsets'][name]['codes_used'] = codes_used(segmenter, dataset, args.batch_size)
                print(f'{name}: the mask tokens use {result["subsets"][name]["codes_used"]} of '
                      f'{autoencoder.codebook_size} codebook entries', flush=True)
            ae, res = c['autoencoder'], c['resolution']
            print(f'{name}: {len(dataset)} images; autoencoder ceiling mIoU {100 * ae["miou"]:.1f} mean '
                  f'precision {100 * ae["mean_precision"]:.1f}; resolution ceiling mIoU '
                  f'{100 * res["miou"]:.1f} mean precision {100 * res["mean_precision"]:.1f}', flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1))
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
