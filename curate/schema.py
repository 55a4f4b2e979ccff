"""The one place that owns every table's columns, Arrow types and enum values.

Writers always pass one of these schemas explicitly; nothing is inferred from a first batch.
"""
from __future__ import annotations

import json

import pyarrow as pa

from curate.codes import ErrorCode, Severity, Status

__all__ = ["ErrorCode", "Severity", "Status", "SPLITS", "MANIFEST", "SCAN_LISTING", "SCAN_PLAN", "ISSUES",
           "DUPLICATES", "PLAN", "SHARD", "INDEX", "hf_metadata"]


SPLITS = ("train", "val", "test")

MANIFEST = pa.schema(
    [
        pa.field("sample_id", pa.string(), nullable=False),
        pa.field("path", pa.string(), nullable=False),  # relative to SRC, POSIX
        pa.field("label", pa.string()),
        pa.field("split", pa.string()),
        pa.field("size_bytes", pa.int64()),
        pa.field("mtime", pa.float64()),
        pa.field("format", pa.string()),  # detected from the bytes
        pa.field("extension", pa.string()),  # lower-case suffix without the dot
        pa.field("width", pa.int32()),  # after EXIF orientation
        pa.field("height", pa.int32()),
        pa.field("mode", pa.string()),
        pa.field("bit_depth", pa.int16()),
        pa.field("n_frames", pa.int32()),
        pa.field("exif_orientation", pa.int16()),
        pa.field("exif_error", pa.string()),
        pa.field("has_alpha", pa.bool_()),
        pa.field("icc_profile", pa.bool_()),
        pa.field("decode_scale", pa.int16()),  # 1, 2, 4 or 8: JPEG reduced-scale decode
        pa.field("bytes_hash", pa.string()),
        pa.field("pixel_hash", pa.string()),
        pa.field("phash", pa.int64()),
        pa.field("dhash", pa.int64()),
        pa.field("phash_d8", pa.list_(pa.int64(), 8)),  # pHash of the 8 flips/rotations
        pa.field("brightness_p05", pa.float32()),
        pa.field("brightness_p50", pa.float32()),
        pa.field("brightness_p95", pa.float32()),
        pa.field("contrast", pa.float32()),
        pa.field("entropy", pa.float32()),
        pa.field("sharpness", pa.float32()),  # variance of the Laplacian of the 64x64 thumbnail
        pa.field("edge_sharpness", pa.float32()),  # steepest edges for their height, at <= 512 px; low = blurry
        pa.field("channel_spread", pa.float32()),
        pa.field("recoverable", pa.bool_()),  # truncated, but a lenient decode works
        pa.field("status", pa.string(), nullable=False),
        pa.field("error_code", pa.string()),
        pa.field("error_message", pa.string()),
        pa.field("structure_warnings", pa.list_(pa.string())),  # format rules broken in ways decoders tolerate
    ]
)

# The scan's working tables (`OUT/scan.work/`, removed when the scan ends): the listing of SRC as
# listed on the workers (`curate.scan.listed`), each part sorted by `key` (xxh3-64 of the path,
# which groups it: `curate.scan.plan`), and per group, every path to write a manifest row for and
# how (decode it, keep its previous row, or keep that row as `removed`).
SCAN_LISTING = pa.schema(
    [
        pa.field("key", pa.uint64(), nullable=False),
        pa.field("path", pa.string(), nullable=False),
        pa.field("size", pa.int64()),
        pa.field("mtime", pa.float64()),
        pa.field("error", pa.string()),  # why it could not even be listed
        pa.field("error_code", pa.string()),
    ]
)
SCAN_PLAN = pa.schema(
    [
        *[SCAN_LISTING.field(n) for n in ("path", "size", "mtime")],
        pa.field("label", pa.string()),
        pa.field("split", pa.string()),
        *[SCAN_LISTING.field(n) for n in ("error", "error_code")],
        pa.field("reuse", pa.bool_(), nullable=False),  # the previous row still holds
        pa.field("removed", pa.bool_(), nullable=False),  # gone from SRC: the previous row, as removed
    ]
)

ISSUES = pa.schema(
    [
        pa.field("sample_id", pa.string()),  # null for collection-level checks
        pa.field("path", pa.string()),
        pa.field("label", pa.string()),
        pa.field("check", pa.string(), nullable=False),
        pa.field("severity", pa.string(), nullable=False),
        pa.field("score", pa.float64()),
        pa.field("threshold", pa.float64()),
        pa.field("message", pa.string()),
        pa.field("suggested", pa.string()),  # the label a check suggests instead (label_suspect)
    ]
)

DUPLICATES = pa.schema(
    [
        pa.field("sample_id", pa.string(), nullable=False),
        pa.field("path", pa.string(), nullable=False),
        pa.field("label", pa.string()),
        pa.field("split", pa.string()),
        pa.field("cluster_id", pa.int64(), nullable=False),
        pa.field("kind", pa.string(), nullable=False),  # bytes / pixels / phash / near / semantic
        pa.field("distance", pa.int16(), nullable=False),  # pHash bits to the anchor (keeper, else centre)
        pa.field("similarity", pa.float32()),  # embedding cosine similarity to the anchor (semantic dedup)
        pa.field("keep", pa.bool_(), nullable=False),
        pa.field("reason", pa.string(), nullable=False),
        pa.field("leak", pa.bool_(), nullable=False),  # cluster spans splits
        pa.field("label_conflict", pa.bool_(), nullable=False),
    ]
)

PLAN = pa.schema(
    [
        pa.field("sample_id", pa.string(), nullable=False),
        pa.field("path", pa.string(), nullable=False),
        pa.field("label", pa.string()),
        pa.field("split", pa.string()),
        pa.field("keep", pa.bool_(), nullable=False),
        pa.field("reason", pa.string()),  # why excluded; null when kept
        pa.field("copies", pa.int32(), nullable=False),
        pa.field("augment_copies", pa.int32(), nullable=False),
        pa.field("weight", pa.float64()),
        pa.field("cluster_id", pa.int64()),
    ]
)


# A shard row. Each column has the Arrow type of its Hugging Face `datasets` feature in
# `hf_metadata` (`image`: Image's struct, `label`: ClassLabel's int64): `datasets` takes a feature
# from the metadata only where the column's type is exactly the feature's.
SHARD = pa.schema(
    [
        pa.field("image", pa.struct([pa.field("bytes", pa.binary()), pa.field("path", pa.string())])),
        pa.field("label", pa.int64()),
        pa.field("label_name", pa.string()),
        pa.field("sample_id", pa.string()),
        pa.field("source_path", pa.string()),
        pa.field("width", pa.int32()),
        pa.field("height", pa.int32()),
        pa.field("copy_index", pa.int32()),  # 0..copies-1 for repeated samples
        pa.field("source_sample_id", pa.string()),  # augmented variants: the image they come from
        pa.field("augment_ops", pa.string()),  # augmented variants: JSON list of ops with sampled parameters
        pa.field("augment_seed", pa.int64()),
    ]
)

def embeddings_schema(dim: int, model: str) -> pa.Schema:
    """`OUT/embeddings/`: one row per ok image: its L2-normalised embedding (null, with `error`,
    when it could not be decoded any more); the model's id in the schema metadata (b"model")."""
    return pa.schema([
        pa.field("sample_id", pa.string(), nullable=False),
        pa.field("embedding", pa.list_(pa.float16(), dim)),
        pa.field("error", pa.string()),
    ], metadata={b"model": model.encode()})


INDEX = pa.schema(
    [
        pa.field("sample_id", pa.string(), nullable=False),
        pa.field("split", pa.string(), nullable=False),
        pa.field("label", pa.int64()),
        pa.field("copy_index", pa.int32()),
        pa.field("shard", pa.string(), nullable=False),  # path relative to OUT
        pa.field("row_group", pa.int32(), nullable=False),
        pa.field("row", pa.int32(), nullable=False),  # row within the row group
    ]
)


def hf_metadata(classes: list[str]) -> dict[bytes, bytes]:
    """Schema metadata that makes Hugging Face `datasets` read `image` as Image, `label` as ClassLabel
    (with `classes`, in order: label i is classes[i]) and the other columns as their own types."""
    special = {"image": {"_type": "Image"}, "label": {"_type": "ClassLabel", "names": classes}}
    features = {f.name: special.get(f.name) or {"dtype": str(f.type), "_type": "Value"} for f in SHARD}
    return {b"huggingface": json.dumps({"info": {"features": features}}).encode()}
