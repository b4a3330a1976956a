"""`imo corpora`: the registered corpora and their sizes."""

from imo.console import print_table


def corpora_command() -> None:
    """List the built-in corpora (prepared and cached on first use) with their sizes."""
    from imo.data.corpora import CORPORA, load_corpus

    rows = []
    for name in CORPORA:
        meta = load_corpus(name).meta
        doc = (CORPORA.get(name).__doc__ or "").strip().splitlines()
        rows.append([name, f"{meta['bytes']:,}", f"{meta['train_bytes']:,}", f"{meta['val_bytes']:,}", doc[0] if doc else ""])
    rows.append(["file:PATH", "", "", "", "one text file of yours"])
    rows.append(["dir:PATH", "", "", "", "every file under a directory, in sorted order"])
    print_table(["corpus", "bytes", "train", "val", "what"], rows)
