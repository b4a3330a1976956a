"""Plot helpers shared by the claims: a headless backend and one way to save a figure.

    fig, ax = plt.subplots(); ...; save_figure(fig, path)
"""

import matplotlib

matplotlib.use("Agg")  # headless machines and CI have no display

import matplotlib.pyplot as plt  # noqa: E402


def save_figure(fig, path) -> None:
    """Lay out, write as PNG and close (the runner renames the file into place)."""
    try:
        fig.tight_layout()
        fig.savefig(path, format="png")
    finally:
        plt.close(fig)
