"""The sample fields curate publishes to FiftyOne: name, kind, app sidebar group and meaning.

The one place that names them: the table builder fills them, the loader declares them on the
dataset (explicit types, nothing inferred from a first batch) and the app groups them.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Field:
    name: str
    kind: str  # str | int | float | bool | strings (list of str) | label (a Classification)
    group: str  # sidebar group in the app
    help: str


FIELDS: tuple[Field, ...] = (
    Field("ground_truth", "label", "labels", "the class label"),
    Field("sample_id", "str", "curation", "curate's id of the image, stable across runs"),
    Field("path", "str", "curation", "path relative to the source root (originals)"),
    Field("split", "str", "curation", "split as curated (the plan's; the scanned one when there is no plan)"),
    Field("source_split", "str", "curation", "split the image came with"),
    Field("keep", "bool", "curation", "in the curated set (the plan)"),
    Field("reason", "str", "curation", "why the plan leaves the image out"),
    Field("copies", "int", "curation", "times the image is written to the shards"),
    Field("augment_copies", "int", "curation", "augmented variants the plan asks for"),
    Field("weight", "float", "curation", "class weight of the image's class"),
    Field("status", "str", "issues", "scan status: ok or error"),
    Field("error_code", "str", "issues", "why the file is not a usable image"),
    Field("error_message", "str", "issues", "the decoder's message"),
    Field("issues", "strings", "issues", "checks that fired on the image"),
    Field("severities", "strings", "issues", "severities of those checks"),
    Field("cluster_id", "int", "duplicates", "duplicate cluster the image belongs to"),
    Field("dup_kind", "str", "duplicates", "how the image matched its cluster's anchor: bytes, pixels, phash, near "
                                           "or semantic"),
    Field("dup_distance", "int", "duplicates", "pHash bits to the cluster's anchor (its keeper, else its centre)"),
    Field("dup_similarity", "float", "duplicates", "embedding cosine similarity to the cluster's anchor (semantic "
                                                   "dedup)"),
    Field("dup_keep", "bool", "duplicates", "the member dedup keeps"),
    Field("dup_reason", "str", "duplicates", "why dedup keeps or drops it"),
    Field("leak", "bool", "duplicates", "the cluster spans splits"),
    Field("label_conflict", "bool", "duplicates", "the cluster's members carry different labels"),
    Field("outlier_score", "float", "embeddings", "similarity to its nearest classmates over the class's typical "
                                                  "(the outlier check; low = far from its class)"),
    Field("label_confidence", "float", "embeddings", "out-of-fold probability of its label from the embeddings "
                                                     "(the label_suspect check; low = suspect)"),
    Field("suggested_label", "str", "embeddings", "the label its embedding suggests, when label_suspect fired"),
    Field("width", "int", "quality", "width after EXIF orientation"),
    Field("height", "int", "quality", "height after EXIF orientation"),
    Field("format", "str", "quality", "format detected from the bytes"),
    Field("size_bytes", "int", "quality", "file size"),
    Field("brightness_p05", "float", "quality", "5th luma percentile"),
    Field("brightness_p50", "float", "quality", "median luma"),
    Field("brightness_p95", "float", "quality", "95th luma percentile"),
    Field("contrast", "float", "quality", "luma standard deviation"),
    Field("entropy", "float", "quality", "luma histogram entropy (bits)"),
    Field("sharpness", "float", "quality", "variance of the Laplacian of the 64x64 thumbnail"),
    Field("edge_sharpness", "float", "quality", "steepest edges for their height (~1 sharp, ~0.5 blurred)"),
    Field("channel_spread", "float", "quality", "colourfulness; 0 = grayscale"),
    Field("shard", "str", "shard", "shard file holding the image, relative to OUT"),
    Field("shard_row_group", "int", "shard", "row group within the shard"),
    Field("shard_row", "int", "shard", "row within the row group"),
    Field("augmented", "bool", "augment", "an augmented variant written by `curate augment`"),
    Field("source_sample_id", "str", "augment", "the image a variant was made from"),
    Field("augment_ops", "str", "augment", "the variant's ops with their sampled parameters (JSON)"),
    Field("curate_hash", "str", "internal", "fingerprint of the fields above: a re-publish rewrites a sample "
                                            "only when it changes"),
)

NAMES: tuple[str, ...] = tuple(f.name for f in FIELDS)
