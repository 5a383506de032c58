"""Clear notebook outputs before committing, except in cells tagged ``nbval-check-output``.

Those cells' outputs are deterministic (an electron count, a parameter count) and
nbval compares them on every test run, so they are kept (nbval needs their execution counts too).

    python scripts/clear_outputs.py notebooks/*.ipynb
"""

import sys

import nbformat


def clear(path: str) -> None:
    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        cell.metadata.pop("execution", None)
        if "nbval-check-output" not in cell.metadata.get("tags", []) or not cell.outputs:
            cell.outputs = []
            cell.execution_count = None
    nbformat.write(nb, path)


if __name__ == "__main__":
    for p in sys.argv[1:]:
        clear(p)
        print("cleared", p)
