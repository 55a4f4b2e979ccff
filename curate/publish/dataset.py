"""The FiftyOne dataset curate owns for one OUT: open or create it, declare its fields, describe it.

A dataset records the OUT it mirrors in `info["curate"]["out"]`; publishing another OUT (or
into a dataset curate did not create) under the same name is refused, so a name clash never
overwrites someone else's samples.
"""
from __future__ import annotations

import os.path
import re
from types import ModuleType
from typing import Any

import xxhash

from curate.errors import CurateError
from curate.publish.fields import FIELDS
from curate.workspace import local_path

INFO_KEY = "curate"


def default_name(out: str) -> str:
    """"curate-", OUT's last folder name (characters FiftyOne drops from names replaced) and six
    hex digits of OUT's full location, so two OUT folders with the same name never collide."""
    base = out.rstrip("/").rpartition("/")[2] or "out"
    tag = xxhash.xxh3_64_hexdigest(out_id(out).encode())[:6]
    return "curate-" + (re.sub(r"[^A-Za-z0-9_-]+", "-", base).strip("-") or "out") + "-" + tag


def out_id(out: str) -> str:
    """OUT as recorded in the dataset: an absolute path, or the URL."""
    if "://" in out and not out.startswith("file://"):
        return out
    local = local_path(out)
    return os.path.abspath(local) if local is not None else out


def open_dataset(fo: ModuleType, name: str, out: str) -> Any:
    """The persistent dataset `name` for OUT, created when missing, with curate's fields declared."""
    if fo.dataset_exists(name):
        ds = fo.load_dataset(name)
        owner = (ds.info or {}).get(INFO_KEY, {}).get("out")
        if owner != out_id(out):
            holder = f"holds {owner}" if owner else "was not published by curate"
            raise CurateError(f"FiftyOne dataset {name!r} {holder}: publish {out} under another name with "
                              f"--name, or delete that dataset first")
    else:
        ds = fo.Dataset(name, persistent=True)
        ds.media_type = "image"
        ds.info = {INFO_KEY: {"out": out_id(out)}}
        ds.save()
    declare_fields(fo, ds)
    ds.create_index("sample_id", unique=True)
    return ds


def _field_type(fo: ModuleType, kind: str) -> tuple[type, dict[str, Any]]:
    """FiftyOne's field class and its arguments for a field kind of `curate.publish.fields`."""
    if kind == "label":
        return fo.EmbeddedDocumentField, {"embedded_doc_type": fo.Classification}
    if kind == "strings":
        return fo.ListField, {"subfield": fo.StringField}
    return {"str": fo.StringField, "int": fo.IntField, "float": fo.FloatField, "bool": fo.BooleanField}[kind], {}


def _same_type(field: Any, ftype: type, args: dict[str, Any]) -> bool:
    if "subfield" in args and type(getattr(field, "field", None)) is not args["subfield"]:
        return False
    if "embedded_doc_type" in args and getattr(field, "document_type", None) is not args["embedded_doc_type"]:
        return False
    return type(field) is ftype


def declare_fields(fo: ModuleType, ds: Any) -> None:
    """Add curate's fields with explicit types and descriptions; check those already there."""
    present = ds.get_field_schema()
    for f in FIELDS:
        ftype, args = _field_type(fo, f.kind)
        field = present.get(f.name)
        if field is None:
            ds.add_sample_field(f.name, ftype, description=f.help, **args)
        elif not _same_type(field, ftype, args):
            raise CurateError(f"FiftyOne dataset {ds.name!r} has a field {f.name!r} of another type "
                              f"({type(field).__name__}): delete the dataset or publish under another --name")
        elif field.description != f.help:
            field.description = f.help
            field.save()


def describe(fo: ModuleType, ds: Any, out: str, src: str, classes: list[str], info: dict[str, Any]) -> None:
    """Dataset-level facts: description, class list, `info["curate"]` and, unless the user
    arranged them already, the app's sidebar groups."""
    views = ", ".join(info.get("views", {}))
    ds.description = (f"Curated by curate from {src}; decisions in {out_id(out)}. Published: {info.get('selected')}. "
                      f"Saved views: {views}")
    ds.default_classes = classes
    merged = dict(ds.info or {})
    merged[INFO_KEY] = {"out": out_id(out), "source": src, **info}
    ds.info = merged
    if ds.app_config.sidebar_groups is None:
        ds.app_config.sidebar_groups = sidebar_groups(fo, ds)
    ds.save()


def sidebar_groups(fo: ModuleType, ds: Any) -> list[Any]:
    """FiftyOne's default groups with the plain fields regrouped by what they are about."""
    ours: dict[str, list[str]] = {}
    for f in FIELDS:
        if f.kind != "label":
            ours.setdefault(f.group, []).append(f.name)
    taken = {p for paths in ours.values() for p in paths}
    groups: list[Any] = []
    for group in fo.DatasetAppConfig.default_sidebar_groups(ds):
        if group.name == "primitives":
            groups.extend(fo.SidebarGroupDocument(name=name, paths=paths,
                                                  expanded=False if name == "internal" else None)
                          for name, paths in ours.items())
        group.paths = [p for p in group.paths if p not in taken]
        if group.paths or group.name == "tags":
            groups.append(group)
    return groups
