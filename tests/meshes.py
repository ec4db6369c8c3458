"""Tiny readers of the mesh files the package writes (PLY, STL, OBJ), for the tests (a plain module)."""
from __future__ import annotations

from pathlib import Path

import numpy as np


def read_ply(path) -> dict:
    """Vertices (x, y, z), faces, colours (or None) and header comments of a binary little-endian PLY."""
    raw = Path(path).read_bytes()
    end = raw.index(b"end_header\n") + len(b"end_header\n")
    header = raw[:end].decode("ascii").splitlines()
    assert header[0] == "ply" and header[1] == "format binary_little_endian 1.0", header[:2]
    counts, props, element = {}, {"vertex": [], "face": []}, None
    for line in header:
        words = line.split()
        if words[0] == "element":
            element = words[1]
            counts[element] = int(words[2])
        elif words[0] == "property":
            props[element].append(tuple(words[1:]))
    types = {"float": "<f4", "uchar": "u1", "int": "<i4"}
    vertex_dtype = [(p[-1], types[p[0]]) for p in props["vertex"]]
    assert props["face"] == [("list", "uchar", "int", "vertex_indices")], props["face"]
    vertices = np.frombuffer(raw, dtype=vertex_dtype, count=counts["vertex"], offset=end)
    offset = end + vertices.nbytes
    faces = np.frombuffer(raw, dtype=[("n", "u1"), ("abc", "<i4", (3,))], count=counts["face"], offset=offset)
    assert offset + faces.nbytes == len(raw), "bytes left after the faces"
    assert (faces["n"] == 3).all()
    xyz = np.stack([vertices[a] for a in "xyz"], axis=1)
    names = [p[-1] for p in props["vertex"]]
    colors = np.stack([vertices[c] for c in ("red", "green", "blue")], axis=1) if "red" in names else None
    comments = [line[len("comment "):] for line in header if line.startswith("comment ")]
    return {"vertices": xyz, "faces": faces["abc"].astype(np.int64), "colors": colors, "comments": comments}


def read_stl(path) -> dict:
    """Triangles (M, 3, 3), normals and header of a binary STL."""
    raw = Path(path).read_bytes()
    (n,) = np.frombuffer(raw, "<u4", count=1, offset=80)
    assert len(raw) == 84 + 50 * int(n), "a binary STL is 84 bytes plus 50 per triangle"
    tri = np.frombuffer(raw, dtype=[("normal", "<f4", (3,)), ("v", "<f4", (3, 3)), ("attr", "<u2")], offset=84)
    return {"triangles": tri["v"], "normals": tri["normal"], "header": raw[:80].decode("ascii").strip()}


def read_obj(path) -> dict:
    """Vertices, per-vertex colours (or None), faces (0-based) and comments of an OBJ."""
    vertices, colors, faces, comments = [], [], [], []
    for line in Path(path).read_text(encoding="ascii").splitlines():
        words = line.split()
        if not words:
            continue
        if words[0] == "v":
            vertices.append([float(w) for w in words[1:4]])
            if len(words) == 7:
                colors.append([float(w) for w in words[4:7]])
        elif words[0] == "f":
            faces.append([int(w.split("/")[0]) - 1 for w in words[1:]])
        elif words[0] == "#":
            comments.append(line[1:].strip())
    return {"vertices": np.array(vertices), "faces": np.array(faces, dtype=np.int64),
            "colors": np.array(colors) if colors else None, "comments": comments}


def read_mesh(path) -> dict:
    """Any of the three, as vertices, faces and colours (0..255 or None); STL vertices are merged back."""
    suffix = Path(path).suffix.lower()
    if suffix == ".ply":
        return read_ply(path)
    if suffix == ".obj":
        out = read_obj(path)
        if out["colors"] is not None:
            out["colors"] = np.rint(out["colors"] * 255)
        return out
    stl = read_stl(path)
    flat = stl["triangles"].reshape(-1, 3)
    vertices, faces = np.unique(flat, axis=0, return_inverse=True)
    return {"vertices": vertices, "faces": faces.reshape(-1, 3), "colors": None, "normals": stl["normals"]}
