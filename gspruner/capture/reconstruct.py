"""Structure from motion with pycolmap: SIFT features, matching of chosen image pairs, a mapper.

The only module that imports pycolmap (lazily, so `--help` stays fast and a missing package fails in one
line). The steps follow COLMAP's automatic reconstructor (`colmap automatic_reconstructor`) and nerfstudio's
`ns-process-data`:
  1. `extract`: SIFT on each image (at most `max_image_size` px, `max_features`), one camera per image size
     (`shared`, COLMAP's single_camera per size group), per image, or one for all;
  2. `image_pairs` + `match`: which pairs to match is ours to choose (exhaustive for small sets, sequential
     with overlap for video, sequential + retrieval for large photo sets; see `image_pairs`), then COLMAP's
     SIFT matcher and geometric verification on those pairs;
  3. `map_images`: COLMAP's incremental mapper (default) or the global mapper (GLOMAP); the largest model.
     `map_checked` asks second opinions (other mappers, other starts) until two mappings agree, and keeps that model;
  4. `refine_intrinsics`: a last bundle adjustment that also refines each shared camera's principal point, as
     instant-ngp's colmap2nerf does after COLMAP's mapper (`bundle_adjuster --refine_principal_point 1`).
Each long pycolmap call runs in a worker thread with a cancellation token, so Ctrl-C stops it promptly.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import InputError

EXHAUSTIVE_MAX_IMAGES = 80  # above this, exhaustive matching grows past ~6 min on 2 cores (n² pairs)
AGREE_ROTATION_DEG = 1.0  # two mappings agree: median rotation difference after a Sim(3) fit of the centres ...
AGREE_CENTRE_FRACTION = 0.02  # ... and median centre difference, as a fraction of the cameras' spread
# the second opinions `map_checked` asks in turn, until two mappings agree: (label, mapper, initial-pair options
# of the incremental mapper (COLMAP: 16°, 100 inliers; it relaxes them itself when no pair qualifies), seed)
SECOND_OPINIONS = (
    ("global", "global", {}, 0),
    ("incremental, strict start", "incremental", {"init_min_tri_angle": 24.0, "init_min_num_inliers": 200}, 0),
    ("global, seed 1", "global", {}, 1),
    ("incremental, stricter start", "incremental", {"init_min_tri_angle": 32.0, "init_min_num_inliers": 400}, 0),
)


@dataclass
class SfmOptions:
    camera_model: str = "OPENCV"
    camera_mode: str = "shared"  # shared | per-image | single
    matcher: str = "auto"  # auto | exhaustive | sequential | retrieval
    mapper: str = "incremental"  # incremental | global
    max_image_size: int = 1600
    max_features: int = 8192
    overlap: int = 10  # sequential neighbours matched on each side
    retrieval_neighbors: int = 12  # most similar images matched per image (retrieval)
    seed: int = 0


def pycolmap_module():
    import PIL.Image  # noqa: F401  before pycolmap: its wheel's zlib corrupts Pillow's PNG writes otherwise

    try:
        import pycolmap
    except ImportError as exc:
        raise InputError(f"`gspruner process` needs pycolmap ({exc}); install it with `pip install pycolmap==4.2.1` "
                         "(a dependency of gspruner: `make setup` installs it)") from None
    pycolmap.logging.minloglevel = 2  # COLMAP's INFO/WARNING lines would bury the progress bars
    pycolmap.set_random_seed(0)
    return pycolmap


def run_cancellable(fn, *args, **kwargs):
    """`fn(*args, cancellation_token=token, **kwargs)` in a worker thread; Ctrl-C cancels it and re-raises."""
    pycolmap = pycolmap_module()
    token = pycolmap.CancellationToken()
    result: dict = {}

    def work():
        try:
            result["value"] = fn(*args, cancellation_token=token, **kwargs)
        except BaseException as exc:  # noqa: BLE001  handed to the caller's thread
            result["error"] = exc

    worker = threading.Thread(target=work, daemon=True)
    worker.start()
    try:
        while worker.is_alive():
            worker.join(0.2)
    except KeyboardInterrupt:
        token.cancel()
        worker.join(30.0)
        raise
    if "error" in result:
        raise result["error"]
    return result.get("value")


def extract(database: Path, image_dir: Path, names: list[str], sizes: dict[str, tuple[int, int]],
            options: SfmOptions, progress: bool = True) -> None:
    """SIFT features of `names` into `database`, cameras as `options.camera_mode` says."""
    from tqdm import tqdm

    pycolmap = pycolmap_module()
    extraction = pycolmap.FeatureExtractionOptions()
    extraction.max_image_size = options.max_image_size
    extraction.sift.max_num_features = options.max_features
    extraction.use_gpu = False
    groups: dict[tuple[int, int], list[str]] = {}
    for name in names:
        key = (0, 0) if options.camera_mode in ("single", "per-image") else sizes[name]
        groups.setdefault(key, []).append(name)
    if options.camera_mode == "single" and len(set(sizes.values())) > 1:
        raise InputError(f"--camera-mode single needs images of one size; these have {len(set(sizes.values()))} "
                         "sizes (use --camera-mode shared: one camera per size)")
    mode = pycolmap.CameraMode.PER_IMAGE if options.camera_mode == "per-image" else pycolmap.CameraMode.SINGLE
    chunk = 4
    with tqdm(total=len(names), desc="SIFT features", unit="img", disable=not progress) as bar:
        for group in groups.values():
            camera_id = -1
            for start in range(0, len(group), chunk):
                reader = pycolmap.ImageReaderOptions()
                reader.camera_model = options.camera_model
                if camera_id >= 0 and mode == pycolmap.CameraMode.SINGLE:
                    reader.existing_camera_id = camera_id
                part = group[start:start + chunk]
                run_cancellable(pycolmap.extract_features, database, image_dir, image_names=part, camera_mode=mode,
                                reader_options=reader, extraction_options=extraction, device=pycolmap.Device.cpu)
                if camera_id < 0:
                    with pycolmap.Database.open(database) as db:
                        camera_id = db.read_image_with_name(part[0]).camera_id
                bar.update(len(part))


def image_pairs(database: Path, names: list[str], matcher: str, options: SfmOptions) -> list[tuple[str, str]]:
    """The image pairs to match (names sorted, so sequential means capture order for photos and video).

    - exhaustive: every pair, n(n-1)/2;
    - sequential: each image with its `overlap` successors and with successors 2^k apart (COLMAP's
      quadratic overlap), for video frames;
    - retrieval: sequential pairs plus each image's `retrieval_neighbors` most similar images by a VLAD
      vector of its SIFT descriptors over a 64-word vocabulary fitted on this capture (Jégou et al. 2010),
      the role COLMAP's vocabulary-tree matcher plays, without a vocabulary file to download.
    """
    n = len(names)
    if matcher == "exhaustive":
        return [(names[i], names[j]) for i in range(n) for j in range(i + 1, n)]
    pairs = set()
    for i in range(n):
        for j in range(i + 1, min(n, i + options.overlap + 1)):
            pairs.add((i, j))
        step = 1
        while i + step < n:  # quadratic overlap: 1, 2, 4, 8, ... images ahead
            pairs.add((i, i + step))
            step *= 2
    if matcher == "retrieval":
        vectors = vlad_vectors(database, names, seed=options.seed)
        similarity = vectors @ vectors.T
        np.fill_diagonal(similarity, -np.inf)
        k = min(options.retrieval_neighbors, n - 1)
        for i, row in enumerate(similarity):
            for j in np.argpartition(-row, k - 1)[:k]:
                pairs.add((min(i, int(j)), max(i, int(j))))
    return [(names[i], names[j]) for i, j in sorted(pairs)]


def vlad_vectors(database: Path, names: list[str], words: int = 64, per_image: int = 300, seed: int = 0) -> np.ndarray:
    """[n, words*128] L2-normalised VLAD vectors (intra-normalised, signed square root) of each image's SIFT."""
    from scipy.cluster.vq import kmeans2

    pycolmap = pycolmap_module()
    rng = np.random.default_rng(seed)
    descriptors = []
    with pycolmap.Database.open(database) as db:
        for name in names:
            d = np.asarray(db.read_descriptors(db.read_image_with_name(name).image_id).data, dtype=np.float32)
            descriptors.append(d / np.maximum(np.linalg.norm(d, axis=1, keepdims=True), 1e-6))
    sample = np.concatenate([d[rng.choice(len(d), min(len(d), per_image), replace=False)] for d in descriptors if len(d)])
    words = min(words, max(1, len(sample) // 4))
    centres, _ = kmeans2(sample.astype(np.float64), words, iter=15, minit="++", seed=seed)
    vectors = np.zeros((len(names), words, sample.shape[1]))
    for i, d in enumerate(descriptors):
        if not len(d):
            continue
        nearest = np.argmin(((d[:, None, :] - centres[None].astype(np.float32)) ** 2).sum(-1), axis=1)
        np.add.at(vectors[i], nearest, d - centres[nearest])
    vectors /= np.maximum(np.linalg.norm(vectors, axis=2, keepdims=True), 1e-12)  # intra-normalisation
    vectors = vectors.reshape(len(names), -1)
    vectors = np.sign(vectors) * np.sqrt(np.abs(vectors))
    return vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)


def match(database: Path, pairs: list[tuple[str, str]], work_dir: Path, progress: bool = True) -> None:
    """COLMAP's SIFT matching and geometric verification of `pairs`, in chunks for the progress bar."""
    from tqdm import tqdm

    pycolmap = pycolmap_module()
    matching = pycolmap.FeatureMatchingOptions()
    matching.use_gpu = False
    chunk = 256
    pair_file = work_dir / "pairs.txt"
    with tqdm(total=len(pairs), desc="matching pairs", unit="pair", disable=not progress) as bar:
        for start in range(0, len(pairs), chunk):
            part = pairs[start:start + chunk]
            pair_file.write_text("".join(f"{a} {b}\n" for a, b in part))
            pairing = pycolmap.ImportedPairingOptions()
            pairing.match_list_path = pair_file
            run_cancellable(pycolmap.match_image_pairs, database, matching_options=matching, pairing_options=pairing,
                            device=pycolmap.Device.cpu)
            bar.update(len(part))
    pair_file.unlink()


def map_images(database: Path, image_dir: Path, model_root: Path, names: list[str], mapper: str,
               progress: bool = True, init: dict | None = None, seed: int = 0):
    """The largest reconstruction (pycolmap.Reconstruction) of the incremental or global mapper, or None.
    `init`: options of the incremental mapper's initial pair (IncrementalMapperOptions.init_*)."""
    from tqdm import tqdm

    pycolmap = pycolmap_module()
    model_root.mkdir(parents=True, exist_ok=True)
    if mapper == "global":
        options = pycolmap.GlobalPipelineOptions()
        options.random_seed = seed
        print("global mapping (rotation averaging, global positioning, bundle adjustment) ...", flush=True)
        # the global mapper takes no cancellation token: it runs in this thread, Ctrl-C waits for it
        models = pycolmap.global_mapping(database, image_dir, model_root, options)
    else:
        options = pycolmap.IncrementalPipelineOptions()
        options.random_seed = seed
        for name, value in (init or {}).items():
            setattr(options.mapper, name, value)
        with tqdm(total=len(names), desc="registering images", unit="img", disable=not progress) as bar:
            def registered():
                if bar.n < bar.total:  # the mapper also reports images it re-registers in a second model
                    bar.update()

            models = run_cancellable(pycolmap.incremental_mapping, database, image_dir, model_root, options,
                                     initial_image_pair_callback=lambda: bar.update(min(2, bar.total - bar.n)), next_image_callback=registered)
    if not models:
        return None
    return max(models.values(), key=lambda r: r.num_reg_images())


def camera_poses(model) -> dict[str, np.ndarray]:
    """image name -> [4,4] OpenCV camera-to-world pose of each registered image of a pycolmap.Reconstruction."""
    poses = {}
    for image in model.images.values():
        if image.has_pose:
            poses[image.name] = np.linalg.inv(np.vstack([image.cam_from_world().matrix(), [0.0, 0.0, 0.0, 1.0]]))
    return poses


def mappings_agree(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> tuple[bool, dict]:
    """Whether two mappings of the same images (`camera_poses`) place the cameras alike: over the images both
    registered (at least half of the smaller), median rotation and centre differences after a Sim(3) fit
    within AGREE_ROTATION_DEG / AGREE_CENTRE_FRACTION. Also returns the figures."""
    from .align import pose_errors

    common = sorted(set(a) & set(b))
    if len(common) < max(3, 0.5 * min(len(a), len(b))):
        return False, {"common_images": len(common)}
    errors = pose_errors(np.stack([a[n] for n in common]), np.stack([b[n] for n in common]))
    figures = {"common_images": len(common), "median_rotation_deg": round(errors["median_rotation_deg"], 4),
               "median_centre_percent": round(100 * errors["median_centre_fraction"], 4)}
    agree = errors["median_rotation_deg"] <= AGREE_ROTATION_DEG and errors["median_centre_fraction"] <= AGREE_CENTRE_FRACTION
    return agree, figures


def map_checked(database: Path, image_dir: Path, work: Path, names: list[str], mapper: str,
                progress: bool = True, check: bool = True) -> tuple[object, dict]:
    """(model, report): `mapper`'s model, checked by second opinions from the same matches (SECOND_OPINIONS, in
    turn: the other mapper, the incremental mapper from stricter initial pairs, the global mapper again with
    another seed) until two mappings agree (`mappings_agree`); the agreeing model is kept, `mapper`'s own when
    it is one of the two. When no two agree, `mapper`'s model is kept and the report says so.

    The incremental mapper can join part of a capture wrongly from a bad initial pair while every image
    registers at a low reprojection error; the global mapper is off by degrees on some runs of the same
    matches. Nothing inside one model shows either; a second opinion does (docs/benchmarks.md#gspruner-process)."""
    import shutil
    import time

    first = map_images(database, image_dir, work / "sparse", names, mapper, progress)
    if not check or first is None:
        return first, {"checked": False}
    tic = time.perf_counter()
    candidates = [(mapper, first, camera_poses(first))]  # (label, model, poses) of each mapping so far
    report: dict = {"checked": True, "comparisons": {}}
    opinions = [o for o in SECOND_OPINIONS if o[0] != mapper]
    for k, (label, kind, init, seed) in enumerate(opinions):
        print(f"checking the cameras: {label} mapper ({k + 2} of at most {len(opinions) + 1}) ...", flush=True)
        copy = work / f"check-{k}.db"  # the mappers may write to the database: each gets its own copy
        shutil.copy(database, copy)
        model = map_images(copy, image_dir, work / f"check-{k}", names, kind, progress, init=init, seed=seed)
        if model is None:
            report["comparisons"][f"{label}: no model"] = {"agree": False}
            continue
        new = camera_poses(model)
        for earlier_label, earlier_model, earlier in candidates:
            agree, figures = mappings_agree(earlier, new)
            report["comparisons"][f"{earlier_label} vs {label}"] = {"agree": agree, **figures}
            if agree:
                report["seconds"] = round(time.perf_counter() - tic, 2)
                return earlier_model, report | {"kept": earlier_label}
        candidates.append((label, model, new))
    report["seconds"] = round(time.perf_counter() - tic, 2)
    return first, report | {"kept": mapper, "warning": "no two mappings agree; check the cameras (gspruner view)"}


def refine_intrinsics(model, refine_principal_point: bool) -> None:
    """A last global bundle adjustment of `model` (in place) that also refines the principal point of its
    cameras when asked: instant-ngp's colmap2nerf runs COLMAP's bundle_adjuster with
    --BundleAdjustment.refine_principal_point 1 after the mapper. COLMAP's mapper keeps it at the image centre,
    which turns every camera by the angle to the true one (0.6° on the fox; docs/benchmarks.md)."""
    pycolmap = pycolmap_module()
    options = pycolmap.BundleAdjustmentOptions()
    options.refine_principal_point = refine_principal_point
    options.print_summary = False
    run_cancellable(pycolmap.bundle_adjustment, model, options)
