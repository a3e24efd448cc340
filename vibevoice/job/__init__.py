"""Jobs: what a render is (``model``), how it is cut and keyed (``chunks``), what it must pass first
(``admission``), how it runs and resumes (``runner``), and the one flow every front end uses
(``service``: submit → direct → render → export, in worker threads or in the caller's own).

Nothing is imported here, so importing ``vibevoice.job.model`` never pulls in the runner or engines.
"""
