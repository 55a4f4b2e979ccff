"""Shards: Parquet training shards, their index and dataset.json; verification."""
