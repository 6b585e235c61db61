"""`amlscore validate`: the checks a model version passes before it may score.

Each check is pass/fail with its figures next to its limits (:mod:`batch.validation.checks`,
:mod:`.determinism`, :mod:`.performance`, :mod:`.serving`); :func:`validate` runs them all on one
range of alerts and writes ``validation.json``, ``validation.txt`` and plots into the version's
report folder (:mod:`.report`); :mod:`.status` tells promotion whether a version passed.
"""
