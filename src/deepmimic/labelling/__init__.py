"""Labelling: a teacher's answers for a set of unlabelled images, computed once and kept.

* :mod:`~deepmimic.labelling.white_box`: a model we hold (the mentor) labels normalised
  batches on our device (sharded under torchrun);
* :mod:`~deepmimic.labelling.black_box`: a black box (ONNX, HTTP, predictions file) is asked
  about raw images in batches, answers validated, with progress;
* :mod:`~deepmimic.labelling.black_box_job`: the resumable, budgeted job around it (``deepmimic
  label``, ``deepmimic mimic``), writing through the append-only
  :mod:`~deepmimic.labelling.query_log`;
* :mod:`~deepmimic.labelling.soft_label_cache`: the DeepMimic pipeline's mentor soft labels,
  keyed by the mentor's weights and the images, computed once per key.
"""
