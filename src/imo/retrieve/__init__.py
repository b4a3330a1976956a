"""Retrieval from a datastore of training text: chunks with exact dense search (faiss Flat) and
BM25 (bm25s), filtered so that a neighbour from the same document or overlapping the query never
helps, and kNN-LM interpolation (Khandelwal et al. 2020) on top of a frozen byte model.

    from imo.retrieve.datastore import Chunks, Retriever
    store = Retriever(Chunks.from_bytes(train, chunk=32), kind="bm25")
    found = store.search(query_chunks, k=2, query_doc=docs)
"""
