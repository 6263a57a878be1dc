"""``deepmimic audit``: how fast can a served model be copied? (issue 16)

The DeepMimic paper's point cuts both ways: anyone who can query a model can train a copy
of it from its answers on unlabelled images. An audit measures that for one teacher:
students trained on N answered queries, for a ladder of N, under each answer defence a
server could apply (:mod:`deepmimic.teachers.defences`), with in-domain or out-of-domain
query images; fidelity (agreement with the teacher on the test set) and accuracy against
the number of queries, and the queries needed to reach 90 / 95 / 99% agreement.

:mod:`.options` checks what the command takes, :mod:`.queries` reads the query images,
:mod:`.run` labels and trains; :mod:`deepmimic.report.audit_summary` turns points into
curves and :mod:`deepmimic.report.audit` draws the report (both engine-free).
"""
