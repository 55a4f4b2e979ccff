"""Deduplicate: exact (bytes, pixels, pHash) and near-duplicate clusters with a keep policy."""
