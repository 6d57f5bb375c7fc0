"""Scale-out helpers: sharding plans for many GPUs, FAISS indexes split across shards, and a streaming
data stage for logs larger than memory. Each submodule imports its heavy dependency (torchrec, faiss)
on its own; importing this package imports nothing heavy."""
