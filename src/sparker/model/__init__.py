"""The model and its training.

- :mod:`~sparker.model.stack`: :class:`~sparker.model.stack.KernelStack`, the fitted
  model (centres, amplitudes and width of every layer) and its log ratio.
- :mod:`~sparker.model.trainer`: the batched full-batch trainer of one layer.
- :mod:`~sparker.model.reseed`: re-seeding of idle kernels during training.
- :mod:`~sparker.model.ensemble`: widths, starting centres and the layers of a stack.

See ``docs/method.md``, sections "The model" to "Re-seeding".
"""
