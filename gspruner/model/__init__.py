from .gaussians import (
    SH_C0,
    activated,
    create_splats,
    create_optimizers,
    knn_mean_distance,
    random_points,
    rgb_to_sh,
    sh_to_rgb,
)

__all__ = [
    "SH_C0",
    "activated",
    "create_splats",
    "create_optimizers",
    "knn_mean_distance",
    "random_points",
    "rgb_to_sh",
    "sh_to_rgb",
]
