"""Many models in one command (`flipbench sweep`): the catalogue filtered (`catalogue`), the
plan and its cost (`plan`), a shared budget and concurrency cap (`pool`), the runs side by side
(`runner`, recorded by `journal`), the ranking with intervals (`ranking`, `figure`), and the
Python API over them (`api`). Nothing is imported here, so `import flipbench.sweep` is free."""
