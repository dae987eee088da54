"""Write notebooks/figN.ipynb, one thin notebook per paper figure (outputs stripped).

Each notebook holds one markdown sentence (the figure function's own statement, measured here at reduced
size, so its "agree"/"disagree" is computed, not typed), a parameter cell reading LAZYRICH_SMALL, and a cell
that calls the lazyrich function, shows the PNG and prints the measured max error and the statement.

    .venv/bin/python notebooks/_make_notebooks.py            # all figures
    .venv/bin/python notebooks/_make_notebooks.py fig2 fig5   # some
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from lazyrich.figures import FIGURES, run_figures

HERE = Path(__file__).resolve().parent

PARAMETERS = 'import os\n\nSMALL = os.environ.get("LAZYRICH_SMALL", "0") == "1"'

BODY = """from pathlib import Path

from IPython.display import Image, display

from lazyrich.figures import fig_{n}

result = fig_{n}(Path("figures"), small=SMALL)
display(Image(filename=str(result.path)))
print(f"max theory-vs-simulation error: {{result.max_error:.3g}} (relative to each plotted scale)")
print(result.statement)"""


def notebook(n: int, sentence: str) -> nbformat.NotebookNode:
    """The notebook of figure ``n`` whose markdown cell is ``sentence``."""
    nb = new_notebook(cells=[new_markdown_cell(sentence),
                             new_code_cell(PARAMETERS, metadata={"tags": ["parameters"]}),
                             new_code_cell(BODY.format(n=n))])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    return nb


def main(names: list[str]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        for name, _, result in run_figures(tmp, small=True, only=names or list(FIGURES)):
            path = HERE / f"{name}.ipynb"
            nbformat.write(notebook(int(name.removeprefix("fig")), result.statement), path)
            print(f"wrote {path.relative_to(HERE.parent)}")


if __name__ == "__main__":
    main(sys.argv[1:])
