"""Sample grids as pixels: nearest-neighbour upscaled cells, 1-pixel separators, no figure.

A matplotlib figure resamples an 8x8 digit into a blur and draws thick axes around 64 tiny
cells; here every data pixel becomes an exact ``scale x scale`` block and cells are parted by
one light-grey line, so what the report shows is what the model drew.
"""

from __future__ import annotations

import io
import math

import numpy as np

CELL_PX = 32  # each image is upscaled by an integer factor to at least this many pixels
SEPARATOR = 200  # grey level (0-255) of the 1-pixel lines between cells


def grid_array(samples: np.ndarray, shape: tuple[int, ...], cols: int | None = None) -> np.ndarray:
    """Images ``samples`` [n, *shape] on [0, 1] -> one uint8 RGB canvas [H, W, 3].

    ``shape`` is (H, W) (grey, drawn dark on white as ink) or (C, H, W). ``cols`` defaults to a
    square grid. Example::

        grid_array(np.zeros((4, 64)), (8, 8)).shape   # (65, 65, 3): 2x2 cells of 32 px + lines
    """
    x = np.asarray(samples, dtype=np.float32).reshape(-1, *shape)
    n = x.shape[0]
    if len(shape) == 3:  # C, H, W -> H, W, C
        x = x.transpose(0, 2, 3, 1)
        if x.shape[-1] == 1:
            x = x[..., 0]
    if x.ndim == 3:  # grey: ink is dark, as on paper
        x = np.repeat((1.0 - x)[..., None], 3, axis=-1)
    h, w = x.shape[1], x.shape[2]
    scale = max(1, math.ceil(CELL_PX / max(h, w)))
    cols = cols or max(1, math.ceil(math.sqrt(n)))
    rows = max(1, math.ceil(n / cols))
    ch, cw = h * scale, w * scale
    canvas = np.full((rows * (ch + 1) - 1, cols * (cw + 1) - 1, 3), SEPARATOR, dtype=np.uint8)
    pix = (np.clip(x, 0, 1) * 255 + 0.5).astype(np.uint8)
    pix = pix.repeat(scale, axis=1).repeat(scale, axis=2)
    for i in range(n):
        r, c = divmod(i, cols)
        canvas[r * (ch + 1) : r * (ch + 1) + ch, c * (cw + 1) : c * (cw + 1) + cw] = pix[i]
    return canvas


def grid_png(samples: np.ndarray, shape: tuple[int, ...], cols: int | None = None) -> bytes:
    """:func:`grid_array` encoded as PNG bytes."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(grid_array(samples, shape, cols)).save(buf, format="PNG", optimize=True)
    return buf.getvalue()



def sample_grid_png(samples, shape: tuple[int, ...]) -> bytes:
    """A PNG grid of samples: images for 2-D/3-D shapes, a scatter for 2-D points, else lines."""
    if len(shape) >= 2:  # pixels, not a figure: nearest-neighbour upscaled, 1-px separators
        return grid_png(samples, shape)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if shape == (2,):
        fig, ax = plt.subplots(figsize=(3, 3), dpi=100)
        ax.scatter(samples[:, 0], samples[:, 1], s=2)
    else:
        fig, ax = plt.subplots(figsize=(4, 3), dpi=100)
        for row in samples[:16]:
            ax.plot(row.reshape(-1), lw=0.8)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


__all__ = ["grid_array", "grid_png", "sample_grid_png"]
