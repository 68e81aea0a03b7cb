"""Clinical building blocks shared by ``cohort/`` and ``endpoints/`` (pure pandas): the
derived columns of the patients, medications and surgeries tables (``records``), the
time-point windows (``windows``, STUDY.md "Time points and windows") and the lab
comparisons with detection-limit qualifiers (``labs``). Nothing here imports cohort/ or
endpoints/: the arrows point down (docs/ARCHITECTURE.md, "Dependency rule")."""
