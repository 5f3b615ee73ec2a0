"""Paper-table reproductions: the pipelines behind ``reproductions/*.py`` and ``nox -s reproduce-*``.

- :mod:`lsd.reproduction.runner`: the phases every table runs (data, train, evaluate, extras,
  report) and :class:`~lsd.reproduction.runner.TableSpec`, a table's description.
- :mod:`lsd.reproduction.tables`: the segmentation tables (MOVi-C, MOVi-E, CLEVR, CLEVRTex,
  FFHQ, COCO); :mod:`lsd.reproduction.generation_table`: the compositional-generation table.
- :mod:`lsd.reproduction.cli`: the shared command line (``python -m lsd.reproduction --list``).
- :mod:`lsd.reproduction.movi_e`: :func:`reproduce_movi_e`, the main job.
- :mod:`lsd.reproduction.paper`: the paper's numbers with provenance (``paper_numbers.json``).
- :mod:`lsd.reproduction.table`: the tables written and printed.
"""
