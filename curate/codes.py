"""Status, error-code and severity enums (kept free of heavy imports: the decoder child uses them)."""
from __future__ import annotations

import enum


class Status(str, enum.Enum):
    """What the scan could make of one source file."""

    OK = "ok"
    ERROR = "error"
    REMOVED = "removed"  # seen by an earlier scan, gone from the source now


class ErrorCode(str, enum.Enum):
    """Why a file could not be used as an image. Stored in `manifest.error_code`."""

    ZERO_BYTE = "zero_byte"
    NOT_IMAGE = "not_image"
    UNSUPPORTED_CODEC = "unsupported_codec"
    TRUNCATED = "truncated"
    CORRUPT = "corrupt"
    DECOMPRESSION_BOMB = "decompression_bomb"
    UNREADABLE = "unreadable"
    VANISHED = "vanished"
    TIMEOUT = "timeout"  # decoding took longer than scan.timeout_s
    MEMORY_LIMIT = "memory_limit"  # decoding needed more than scan.max_memory_mb
    DECODER_CRASHED = "decoder_crashed"  # the decoder process died on this file
    OUTSIDE_SOURCE = "outside_source"  # a symbolic link (scan.follow_symlinks) to a file or folder outside SRC


class Severity(str, enum.Enum):
    """How bad a fired check is: `error` means the image cannot be used."""

    ERROR = "error"
    WARNING = "warning"
    INFO = "info"
