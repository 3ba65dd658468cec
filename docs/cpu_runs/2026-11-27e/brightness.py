"""Mean brightness (0-1) of the generated training and evaluation images (run from the repository root)."""
import numpy as np

from camseg_core.data.datasets import open_dataset

SPECS = {'train': 'cityscapes:runs/dm/data:train', 'clear': 'cityscapes:runs/dm/data:val'}
for cond in ['train', 'clear', 'fog_beta0.005', 'fog', 'fog_beta0.02', 'snow', 'rain', 'night']:
    ds = open_dataset(SPECS.get(cond, f'acdc:runs/dm/data:{cond}:val'))
    step = max(1, len(ds) // 200)
    m = np.array([ds[i]['image'].astype(np.float32).mean() / 255 for i in range(0, len(ds), step)])
    print(f'{cond:14s} n={len(m)} mean {m.mean():.3f} min {m.min():.3f} p5 {np.percentile(m, 5):.3f} '
          f'max {m.max():.3f}')
