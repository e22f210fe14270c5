"""Unit shards on disk (Parquet) and their packing into training blocks."""
