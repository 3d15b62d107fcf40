r"""DFAUST reader: registered meshes of 10 people in motion (Bogo et al., CVPR 2017), for APEN's experiments.

Reads the official registrations (``registrations_m.hdf5`` and ``registrations_f.hdf5``: one dataset per
``<subject>_<sequence>``, of shape ``(6890, 3, T)``, plus ``faces``) and a per-vertex part map supplied by
the user (DFAUST ships none; APEN used the 24 SMPL body parts). The files are licensed by the MPI and are
not downloaded here; ``datasets/README.md`` gives the layout.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch

from .._checks import check_choice, check_int, check_real
from ._base import PointCloudDataset, SegmentationMixin
from ._generated import check_split
from ._io import CorruptFileError, as_root, cache_key, empty_split, load_cached, missing, source_fingerprint
from .articulated import part_offsets

__all__ = ["DFAUST", "DFAUST_SUBJECTS", "DFAUST_SEQUENCES", "DFAUST_PROTOCOLS", "DFAUST_NUM_VERTICES"]

_VERSION = 1

#: The ten DFAUST subjects (ids as in the HDF5 keys), index = subject label; 5 male then 5 female.
DFAUST_SUBJECTS: list[str] = ["50002", "50007", "50009", "50026", "50027", "50004", "50020", "50021", "50022", "50025"]
#: The fourteen motion sequences of DFAUST (not every subject performed every one).
DFAUST_SEQUENCES: list[str] = [
    "chicken_wings", "hips", "jiggle_on_toes", "jumping_jacks", "knees", "light_hopping_loose",
    "light_hopping_stiff", "one_leg_jump", "one_leg_loose", "punching", "running_on_spot", "shake_arms",
    "shake_hips", "shake_shoulders",
]  # fmt: skip
#: The split protocols, named as the splits of APEN's release (``*_random_pose``, ``*_unseen_random_pose``,
#: ``*_unseen_same_pose``); definitions in :class:`DFAUST`.
DFAUST_PROTOCOLS: tuple[str, ...] = ("random_pose", "unseen_random_pose", "unseen_same_pose")
#: Vertices of a registration (the SMPL template).
DFAUST_NUM_VERTICES = 6890
_FILES = ("registrations_m.hdf5", "registrations_f.hdf5")


def _h5py():
    try:
        import h5py
    except ImportError as e:
        raise ImportError("the DFAUST reader needs the package 'h5py' (pip install h5py) to read the registrations "
                          "HDF5 files") from e
    return h5py


def read_part_map(path: Path, num_vertices: int = DFAUST_NUM_VERTICES) -> np.ndarray:
    """Per-vertex part ids from ``.npy`` (any integer array of ``num_vertices`` entries) or text (whitespace or
    comma separated integers), as int64 in ``[0, P)``; errors name ``part_map``, the file and what is wrong."""
    path = Path(path)
    if not path.is_file():
        raise missing("DFAUST part_map", [path], "the part map is a .npy or .txt file of one part id per vertex; ")
    try:
        if path.suffix == ".npy":
            raw = np.load(path, allow_pickle=False)
        else:
            raw = np.array(path.read_text().replace(",", " ").split(), dtype=float)
    except ValueError as e:
        raise ValueError(f"part_map {path}: cannot read it as integers ({e})") from e
    raw = np.asarray(raw).reshape(-1)
    if raw.shape[0] != num_vertices:
        raise ValueError(f"part_map {path} must hold one part id per vertex ({num_vertices}), got {raw.shape[0]}")
    if raw.size and not np.issubdtype(raw.dtype, np.integer):
        if not np.issubdtype(raw.dtype, np.floating) or not np.all(np.isfinite(raw)) or np.any(raw != np.round(raw)):
            raise ValueError(f"part_map {path} must hold integer part ids, got values such as {raw[:3].tolist()}")
    out = raw.astype(np.int64)
    if out.min() < 0:
        raise ValueError(f"part_map {path} must hold part ids >= 0, got {int(out.min())}")
    return out


def vertex_normals(verts: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Area-weighted vertex normals of triangle meshes: ``verts`` ``(V, 3)`` or ``(T, V, 3)``, ``faces`` ``(F, 3)``.

    The normal of vertex ``v`` is the normalised sum of ``(b - a) x (c - a)`` (twice the area times the unit
    normal) over the faces ``(a, b, c)`` that contain it; zero for a vertex in no (non-degenerate) face.
    """
    v = verts[None] if verts.ndim == 2 else verts
    a, b, c = (v[:, faces[:, k]] for k in range(3))
    fn = np.cross(b - a, c - a)
    out = np.zeros_like(v)
    for k in range(3):
        np.add.at(out, (slice(None), faces[:, k]), fn)
    norm = np.linalg.norm(out, axis=-1, keepdims=True)
    out = np.divide(out, norm, out=np.zeros_like(out), where=norm > 0)
    return out[0] if verts.ndim == 2 else out


def _parse_key(path: Path, key: str) -> tuple[str, str]:
    subject, _, sequence = key.partition("_")
    if subject not in DFAUST_SUBJECTS or not sequence:
        raise ValueError(f"{path}: dataset {key!r} is not named <subject>_<sequence> with a DFAUST subject id "
                         f"({', '.join(DFAUST_SUBJECTS)})")
    return subject, sequence


def _scan(files: list[Path]) -> tuple[list[tuple[Path, str, str, str, int]], np.ndarray]:
    """Every registration sequence ``(file, key, subject, sequence, T)`` in key order, and the faces."""
    h5py = _h5py()
    seqs, faces = [], None
    for path in files:
        try:
            with h5py.File(path, "r") as f:
                keys = sorted(k for k in f.keys() if k != "faces")
                if "faces" not in f:
                    raise CorruptFileError(f"HDF5 file {path} has no dataset 'faces'; it has {sorted(f.keys())[:5]}")
                fc = np.asarray(f["faces"][()])
                for key in keys:
                    subject, sequence = _parse_key(path, key)
                    shape = f[key].shape
                    if len(shape) != 3 or shape[0] != DFAUST_NUM_VERTICES or shape[1] != 3 or shape[2] < 1:
                        raise ValueError(f"{path}: dataset {key!r} should have shape ({DFAUST_NUM_VERTICES}, 3, T) "
                                         f"with T >= 1, got {shape}")
                    seqs.append((path, key, subject, sequence, int(shape[2])))
        except OSError as e:
            raise CorruptFileError(f"cannot read HDF5 file {path} (truncated or corrupt?): {e}") from e
        if fc.ndim != 2 or fc.shape[1] != 3 or fc.size == 0 or fc.min() < 0 or fc.max() >= DFAUST_NUM_VERTICES:
            raise ValueError(f"{path}: 'faces' should be (F, 3) vertex ids in [0, {DFAUST_NUM_VERTICES}), got shape "
                             f"{fc.shape}")
        faces = fc.astype(np.int64) if faces is None else faces
    if not seqs:
        raise ValueError(f"DFAUST: no <subject>_<sequence> registrations in {', '.join(map(str, files))}")
    return seqs, faces


class DFAUST(SegmentationMixin, PointCloudDataset):
    r"""DFAUST registrations with a user part map: body-part segmentation or subject classification.

    Layout (``datasets/README.md``)::

        root/dfaust/registrations_m.hdf5   # <subject>_<sequence>: (6890, 3, T) float; faces: (13776, 3)
        root/dfaust/registrations_f.hdf5
        root/dfaust/part_map.npy           # or part_map.txt, or any path given as part_map=

    Every frame ``t`` of every sequence is one item (every ``frame_step``-th frame), ``num_points`` vertices
    drawn without replacement (fixed per frame and ``seed``; all 6890 in file order when ``num_points`` is
    ``None``), centred at their centroid (no rescaling: metres). Items, in the order of the sorted keys of
    the male then the female file and of time:

    * ``pos`` ``(N, 3)``, ``x`` ``(N, 3)`` area-weighted unit vertex normals of the registered mesh;
    * ``vertex`` ``(N,)`` the registration's vertex ids of the points (dense correspondence across
      frames and subjects), ``part`` ``(N,)`` their ids in the part map, ``part_offset`` ``(N, 3)``
      (part centroid of the sampled vertices minus the vertex), ``subject`` ``(1,)`` (index in
      :data:`DFAUST_SUBJECTS`), ``category`` ``(1,)`` (0: one "body" category), ``frame`` ``(1, 2)``
      (the sequence's index in key order, the frame number);
    * ``y``: ``part`` (``task="seg"``) or ``subject`` (``task="cls"``).

    **Splits** (``protocol``; named after the splits of APEN's release, whose split files are not
    published, so these are this library's definitions):

    * ``"random_pose"``: every frame goes to ``test`` with probability ``test_fraction`` (seeded), so
      test poses are frames of sequences seen in training ("random split");
    * ``"unseen_random_pose"``: for each subject one of its sequences, drawn with ``seed``, is held out
      for ``test`` (its motion was performed by other subjects in training: "unseen random sequence");
    * ``"unseen_same_pose"`` (default): the sequences ``test_sequences`` (default ``one_leg_jump`` and
      ``punching``) are held out for every subject ("unseen sequence"; with ``task="cls"`` this is the
      disjoint-pose subject classification of APEN's Table 3).

    Each split is processed on its own (the files are read once per split) and cached under
    ``root/dfaust/processed/<key>/`` with a fingerprint of the source files; it is rebuilt when the files
    or the parameters change.

    Args:
        root: data root (holding ``dfaust/``).
        split: ``"train"`` or ``"test"``.
        task: ``"seg"`` or ``"cls"``.
        num_points: vertices per item, or ``None`` for all 6890.
        part_map: path of the per-vertex part ids (default ``root/dfaust/part_map.npy``, else ``.txt``).
        protocol: one of :data:`DFAUST_PROTOCOLS`.
        test_sequences: the held-out sequences of ``"unseen_same_pose"``.
        test_fraction: the test share of ``"random_pose"``, in ``(0, 1)``.
        frame_step: keep every ``frame_step``-th frame.
        seed: seed of the vertex subsets and the random protocols.
        transform: applied to every item on access.
        force_reload: rebuild the cache.

    Example:
        >>> DFAUST_PROTOCOLS, len(DFAUST_SUBJECTS), len(DFAUST_SEQUENCES)
        (('random_pose', 'unseen_random_pose', 'unseen_same_pose'), 10, 14)
    """

    task = None  # set per instance by the task argument
    up_axis = "y"
    extra_vector_keys = ("part_offset",)
    categories = ["body"]

    def __init__(
        self,
        root: str | Path = "datasets",
        split: str = "train",
        *,
        task: str = "seg",
        num_points: int | None = 2048,
        part_map: str | Path | None = None,
        protocol: str = "unseen_same_pose",
        test_sequences: Sequence[str] = ("one_leg_jump", "punching"),
        test_fraction: float = 0.2,
        frame_step: int = 4,
        seed: int = 0,
        transform: Callable | None = None,
        force_reload: bool = False,
    ) -> None:
        super().__init__(transform)
        root = as_root(root)
        check_split(split)
        self.task = check_choice(task, "task", ("seg", "cls"))
        num_points = check_int(num_points, "num_points", 1, allow_none=True)
        if num_points is not None and num_points > DFAUST_NUM_VERTICES:
            raise ValueError(f"num_points must be at most {DFAUST_NUM_VERTICES} (the vertices of a registration) or "
                             f"None, got {num_points}")
        protocol = check_choice(protocol, "protocol", DFAUST_PROTOCOLS)
        if isinstance(test_sequences, str) or not isinstance(test_sequences, (list, tuple)) or not test_sequences:
            raise TypeError(f"test_sequences must be a non-empty list of sequence names, got {test_sequences!r}")
        for s in test_sequences:
            if s not in DFAUST_SEQUENCES:
                raise ValueError(f"test_sequences entries must be DFAUST sequences ({', '.join(DFAUST_SEQUENCES)}), "
                                 f"got {s!r}")
        test_fraction = check_real(test_fraction, "test_fraction", 0.0)
        if not 0.0 < test_fraction < 1.0:
            raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction!r}")
        frame_step = check_int(frame_step, "frame_step", 1)
        seed = check_int(seed, "seed", 0)
        folder = root / "dfaust"
        files = [folder / f for f in _FILES if (folder / f).is_file()]
        if not files:
            raise missing("DFAUST", [folder / f for f in _FILES])
        if part_map is None:
            cands = [folder / "part_map.npy", folder / "part_map.txt"]
            part_map = next((p for p in cands if p.is_file()), None)
            if part_map is None:
                raise missing("DFAUST part_map", cands, "pass part_map= or place one id per vertex there; ")
        elif not isinstance(part_map, (str, Path)):
            raise TypeError(f"part_map must be a path (str or os.PathLike) or None, got {type(part_map).__name__}")
        part_map = Path(part_map)
        pmap = read_part_map(part_map)
        params = dict(num_points=num_points, protocol=protocol, test=sorted(test_sequences), fraction=test_fraction,
                      step=frame_step, seed=seed, version=_VERSION)
        sources = source_fingerprint([*files, part_map], folder)
        key = cache_key({k: ("+".join(v) if isinstance(v, list) else v) for k, v in params.items()})
        out = load_cached(folder / "processed" / key, split,
                          lambda: {split: self._build(files, pmap, num_points, protocol, test_sequences,
                                                      test_fraction, frame_step, seed)[split]},
                          params={"dataset": "dfaust", **params}, sources=sources, force_reload=force_reload,
                          what="DFAUST")
        if out["pos"].shape[0] == 0:
            raise empty_split("DFAUST", split, folder, f"protocol {protocol!r} leaves no frames for it")
        self.root, self.split, self.protocol = root, split, protocol
        P = int(pmap.max()) + 1
        self.part_names = [f"part{k}" for k in range(P)]
        self.category_parts = [list(range(P))]
        self.subject_names = list(DFAUST_SUBJECTS)
        self.classes = self.part_names if self.task == "seg" else self.subject_names
        labels = out["part"] if self.task == "seg" else out["subject"]
        M = out["pos"].shape[0]
        self._set(out["pos"], out["normal"], labels, part=out["part"], part_offset=out["part_offset"],
                  subject=out["subject"], category=torch.zeros(M, dtype=torch.long), frame=out["frame"],
                  vertex=out["vertex"])
        self.per_point_extra = ("part", "part_offset", "vertex")

    @staticmethod
    def _build(files, pmap, num_points, protocol, test_sequences, test_fraction, frame_step, seed):
        h5py = _h5py()
        seqs, faces = _scan(files)
        rng = np.random.default_rng([seed, 17])
        held: dict[str, str] = {}
        if protocol == "unseen_random_pose":
            for subject in DFAUST_SUBJECTS:
                mine = sorted({s for _, _, subj, s, _ in seqs if subj == subject})
                if mine:
                    held[subject] = mine[int(rng.integers(len(mine)))]
        P = int(pmap.max()) + 1
        buckets = {"train": [], "test": []}
        for q, (path, key, subject, sequence, T) in enumerate(seqs):
            with h5py.File(path, "r") as f:
                v = np.asarray(f[key][:, :, ::frame_step], dtype=np.float64).transpose(2, 0, 1)  # (T', V, 3)
            if not np.isfinite(v).all():
                raise ValueError(f"{path}: dataset {key!r} holds NaN or infinite coordinates")
            nrm = vertex_normals(v, faces)
            frames = np.arange(0, T, frame_step)
            if protocol == "random_pose":
                to_test = np.random.default_rng([seed, 29, q]).random(len(frames)) < test_fraction
            elif protocol == "unseen_random_pose":
                to_test = np.full(len(frames), held.get(subject) == sequence)
            else:
                to_test = np.full(len(frames), sequence in test_sequences)
            for j, t in enumerate(frames):
                if num_points is None:
                    idx = np.arange(DFAUST_NUM_VERTICES)
                else:
                    idx = np.random.default_rng([seed, 31, q, int(t)]).choice(DFAUST_NUM_VERTICES, num_points,
                                                                               replace=False)
                p = v[j, idx] - v[j, idx].mean(0)
                k = pmap[idx]
                buckets["test" if to_test[j] else "train"].append(
                    (p, nrm[j, idx], k, part_offsets(p, k, P), DFAUST_SUBJECTS.index(subject), q, int(t), idx))
        out = {}
        n = DFAUST_NUM_VERTICES if num_points is None else num_points
        for split, items in buckets.items():
            M = len(items)
            out[split] = {
                "pos": torch.from_numpy(np.array([it[0] for it in items], np.float32).reshape(M, n, 3)),
                "normal": torch.from_numpy(np.array([it[1] for it in items], np.float32).reshape(M, n, 3)),
                "part": torch.from_numpy(np.array([it[2] for it in items], np.int64).reshape(M, n)),
                "part_offset": torch.from_numpy(np.array([it[3] for it in items], np.float32).reshape(M, n, 3)),
                "subject": torch.tensor([it[4] for it in items], dtype=torch.long),
                "frame": torch.tensor([[it[5], it[6]] for it in items], dtype=torch.long).reshape(M, 2),
                "vertex": torch.from_numpy(np.array([it[7] for it in items], np.int64).reshape(M, n)),
            }
        return out
