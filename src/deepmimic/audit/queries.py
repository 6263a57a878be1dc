"""The images an audit's attacker sends: the data set's own unlabelled images, or another image set.

An attacker without in-domain data queries with whatever images they have (the DeepMimic
paper's out-of-domain student sets, section 4.3). Such a set rarely has the teacher's
input shape, so it is converted the way an attacker would
(:func:`deepmimic.data.convert.to_shape`).
"""

from __future__ import annotations

from pathlib import Path

import torch

from deepmimic.data.convert import to_shape
from deepmimic.data.registry import load_dataset, read_image_pool
from deepmimic.data.rows import cat_rows, is_streamed, row_chunks
from deepmimic.data.spec import parse_data_spec

__all__ = ["read_query_images", "to_shape"]


def read_query_images(spec: str, shape: tuple[int, int, int]) -> tuple[torch.Tensor, str]:
    """(uint8 (N, *shape) images, a line saying what was read) for a ``--query-data`` spec.

    An ``.npz`` path is read as an image pool (every image in it); any other spec is a data
    set (``NAME:ROOT``) whose training and test images are all used. Labels are never read.
    """
    if spec.endswith(".npz") and ":" not in spec:
        pool = read_image_pool(spec)
        images, name = pool.images, Path(spec).name
    else:
        name, root = parse_data_spec(spec)
        data = load_dataset(name, root)
        images = cat_rows([data.train.images, data.test.images])  # a streamed store stays a row table here
    source = tuple(images.shape[1:])
    note = f"{len(images):,} query images from {name}"
    if source != shape:  # converted a chunk at a time (a store may be streamed); the converted pool is held
        images = torch.cat([to_shape(chunk, shape) for chunk in row_chunks(images)])
        note += f", converted from {'x'.join(map(str, source))} to {'x'.join(map(str, shape))}"
    elif is_streamed(images):  # the audit asks for rows in any order: its query pool is held in memory
        images = torch.cat(list(row_chunks(images)))
    return images, note
