"""Paper-table reproductions: the pipelines behind ``reproductions/*.py`` and ``nox -s reproduce-*``.

- :mod:`lsd.reproduction.movi_e`: :func:`reproduce_movi_e` (train or load, evaluate beside
  baselines, tables, figures, ``results.json``).
- :mod:`lsd.reproduction.paper`: the paper's numbers with provenance (``paper_numbers.json``).
- :mod:`lsd.reproduction.table`, :mod:`lsd.reproduction.figures`: the outputs.
"""
