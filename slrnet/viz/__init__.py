"""Figures, one module per subject; every function draws into the axes it is given (``ax=None`` / ``axes=None``
make new ones) and returns the Figure, so it works headless (Agg) and inline in JupyterLab.

    common            pyplot on demand, axes grids, the one palette and image de-normalisation
    dataset           samples, class frequency, object sizes, augmented crops (notebook 00)
    factorization     code maps, atoms, objectives, sweeps, the CVLR explorer (notebook 01)
    training          training snapshots and curves (the trainer, notebooks 02 and 03)
    label_efficiency  label-efficiency curves, predictions per setting, split examples (notebook 03)
    factors           the low-rank factors of a trained model (notebook 04)
    evaluation        per-class IoU, confusion matrix, predictions, best / worst images (notebooks 02 and 05)

    >>> from slrnet.viz import training
    >>> training.plot_history(history).savefig("curves.png")
"""
