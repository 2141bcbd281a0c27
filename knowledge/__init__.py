"""Knowledge base: documents -> chunks -> embeddings -> FAISS index; dense + keyword search."""
