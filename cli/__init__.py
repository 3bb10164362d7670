"""The ``tdw`` command line and what serves it: the command (``main``), the Prefect server
(``server``), deployments (``deploy``) and the terminal progress bar (``terminal``). Flows live
in ``flows/``; nothing here imports Prefect, torch or TransformerLens before work starts."""
