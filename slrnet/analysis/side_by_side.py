"""Training several runs at once on a CPU: each in its own spawned process with the threads shared out.

A run's result depends only on its thread count, not on its neighbours, so two runs side by side on 2 cores give
what they give one after the other, in about half the time. From a script, call :func:`run_side_by_side` under
``if __name__ == "__main__":`` (the workers are spawned processes).

    >>> rows = run_side_by_side(train_one, [("shapes", "weak"), ("shapes", "full")], options, workers=2,
    ...                         prepare=lambda: make_datasets_once())
"""
from __future__ import annotations

from typing import Callable, Sequence

import torch


def _in_worker(function: Callable, key: tuple, options: dict, threads: int):
    torch.set_num_threads(threads)
    return function(*key, **options)


def run_side_by_side(function: Callable, keys: Sequence[tuple], options: dict, workers: int = 1,
                     prepare: Callable | None = None, on_row: Callable | None = None) -> list:
    """``[function(*key, **options) for key in keys]``, ``workers`` at a time; rows come back in ``keys`` order.

    ``prepare()`` runs once in this process before any worker starts (make the datasets and pretrained files the
    workers would otherwise race to make); ``on_row(rows, row)`` after each finished run, ``rows`` the finished
    ones in ``keys`` order (to save partial results). ``function`` must be importable (a module-level function).
    """
    keys = list(keys)
    rows: list = []
    if workers <= 1 or len(keys) <= 1:
        for key in keys:
            rows.append(function(*key, **options))
            if on_row is not None:
                on_row(rows, rows[-1])
        return rows
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    if prepare is not None:
        prepare()
    workers = min(int(workers), len(keys))
    threads = max(1, torch.get_num_threads() // workers)
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = {pool.submit(_in_worker, function, key, options, threads): key for key in keys}
        done = {}
        for future in as_completed(futures):
            row = done[futures[future]] = future.result()
            rows = [done[key] for key in keys if key in done]
            if on_row is not None:
                on_row(rows, row)
    return rows
